// Counters shared by all sessions of one server or client, and the latency histogram
// they are kept in (written from several loops, read by stats()).
#pragma once

#include <msgtrans/stats.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace msgtrans::detail {

/// A latency histogram updated from several loops.
struct atomic_histogram {
  std::array<std::atomic<std::uint64_t>, latency_histogram::buckets> counts{};
  std::atomic<std::uint64_t> sum_ns{0};
  void record(std::chrono::nanoseconds d) noexcept;
  latency_histogram snapshot() const noexcept;
};

/// Counters shared by all sessions of one server or client.
struct host_counters {
  std::atomic<std::uint64_t> packets_in{0}, packets_out{0}, bytes_in{0}, bytes_out{0};
  std::atomic<std::uint64_t> requests_in_flight{0}, request_timeouts{0}, queue_full{0};
  std::atomic<std::uint64_t> protocol_errors{0}, unhandled{0}, inbound_requests_open{0};
  std::atomic<std::uint64_t> rate_limited_closes{0}, rate_limited_pauses{0};  // session_options rate limits
  atomic_histogram request_latency;   // requests this side sent, until their response
  atomic_histogram response_latency;  // requests this side answered, receipt to respond
};

/// The process's resident set size now (not its peak), in bytes; 0 if unknown.
std::uint64_t resident_memory_bytes() noexcept;

}  // namespace msgtrans::detail

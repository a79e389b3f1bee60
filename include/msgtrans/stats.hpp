/// @file stats.hpp
/// Counters of a server (server_stats) or a client (client_stats), read at any time from
/// any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace msgtrans {

/// Request latency histogram: log-linear buckets (4 per power of two) in microseconds.
struct latency_histogram {
  static constexpr std::size_t buckets = 128;
  std::array<std::uint64_t, buckets> counts{};
  std::uint64_t total = 0;
  double sum_us = 0;  ///< sum of all samples
  /// Upper bound in microseconds of bucket i.
  static double upper_bound_us(std::size_t i) noexcept;
  /// The value below which `q` (0..1) of the samples fall, in microseconds.
  double quantile_us(double q) const noexcept;
  /// The mean of the samples in microseconds (0 when there are none).
  double mean_us() const noexcept { return total ? sum_us / static_cast<double>(total) : 0.0; }
};

struct server_stats {
  std::map<std::string, std::uint64_t> active_by_protocol;  ///< open connections per protocol
  std::uint64_t active = 0;
  std::uint64_t accepted_total = 0;
  std::uint64_t rejected_by_limit = 0;  ///< by max_connections (server-wide or a listener's)
  /// Connections refused by the per-address limits, by reason: "per_ip"
  /// (max_connections_per_ip, server-wide or a listener's) and "handshake_rate"
  /// (max_handshakes_per_second_per_ip). Both keys are always present.
  std::map<std::string, std::uint64_t> refused;
  /// Connections closed (rate_limit_action::close) or paused (rate_limit_action::pause)
  /// for going over session_options::max_messages_per_second / max_bytes_per_second.
  std::uint64_t rate_limited_closes = 0, rate_limited_pauses = 0;
  std::uint64_t packets_in = 0, packets_out = 0, bytes_in = 0, bytes_out = 0;
  std::uint64_t requests_in_flight = 0;  ///< requests this side sent, awaiting a response
  std::uint64_t request_timeouts = 0;
  std::uint64_t queue_full_rejections = 0;
  std::uint64_t protocol_errors = 0;
  std::uint64_t unhandled = 0;  ///< packets with neither a handler nor an event stream
  /// Notices by kind name ("upgrade_refused", "fd_exhausted", ...), each counted even when
  /// its report was rate-limited; kinds never seen are absent.
  std::map<std::string, std::uint64_t> notices;
  std::uint64_t inbound_budget_used = 0;   ///< bytes of the inbound decoding budget in use
  std::uint64_t inbound_budget_limit = 0;  ///< its size (0 = none)
  std::uint64_t inbound_budget_waits = 0;  ///< times a connection paused for it
  latency_histogram request_latency;   ///< requests this side sent, until their response
  latency_histogram response_latency;  ///< requests this side answered, from receipt to respond
  double request_latency_mean_us = 0;   ///< request_latency.mean_us()
  double response_latency_mean_us = 0;  ///< response_latency.mean_us()
  /// The process's resident memory now (not its peak), in bytes (0 where unknown).
  std::uint64_t resident_memory_bytes = 0;
  // ---- rooms and the cluster (docs/scaling.md) ----
  std::uint64_t rooms = 0;              ///< rooms with at least one member on this node
  std::uint64_t room_memberships = 0;   ///< (session, room) pairs on this node
  std::uint64_t room_deliveries = 0;    ///< packets handed to members by publish()
  std::string cluster_state = "none";   ///< "none" (no cluster), or the bus_state name
  std::uint64_t cluster_messages_out = 0;     ///< envelopes published to the bus
  std::uint64_t cluster_messages_in = 0;      ///< envelopes received from other nodes
  /// Cross-node publishes the bus refused (broker away): each is a lost cross-node
  /// delivery, reported here rather than queued.
  std::uint64_t cluster_publish_errors = 0;
  std::uint64_t cluster_malformed = 0;        ///< envelopes from the bus that failed to decode
  std::uint64_t cluster_reconnects = 0;       ///< times the bus came back after a loss
  // ---- authentication (server_builder::on_authenticate) ----
  std::uint64_t auth_accepted = 0;      ///< connections the hook accepted
  std::uint64_t auth_rejected = 0;      ///< rejected: by the hook, a timeout or "server busy"
  std::uint64_t auth_timeouts = 0;      ///< of those, by auth_timeout
  std::uint64_t auth_refused_busy = 0;  ///< of those, past max_pending_auth
  std::uint64_t auth_pending = 0;       ///< connections waiting for the hook now
};

/// Counters of a client (its current connection and the ones before it).
struct client_stats {
  bool connected = false;  ///< a connection is established now
  std::uint64_t packets_in = 0, packets_out = 0, bytes_in = 0, bytes_out = 0;
  std::uint64_t requests_in_flight = 0;  ///< requests this side sent, awaiting a response
  std::uint64_t request_timeouts = 0;
  std::uint64_t queue_full_rejections = 0;
  std::uint64_t protocol_errors = 0;
  std::uint64_t unhandled = 0;  ///< packets with neither a handler nor an event stream
  latency_histogram request_latency;   ///< requests this side sent, until their response
  latency_histogram response_latency;  ///< requests from the server this side answered
  double request_latency_mean_us = 0;   ///< request_latency.mean_us()
  double response_latency_mean_us = 0;  ///< response_latency.mean_us()
  /// The process's resident memory now (not its peak), in bytes (0 where unknown).
  std::uint64_t resident_memory_bytes = 0;
};

/// The stats in the Prometheus text exposition format (version 0.0.4), names prefixed
/// with `prefix`: connections by protocol, packets and bytes in and out, request and
/// response latency histograms and their means, errors and limit rejections, and the
/// process's resident memory under Prometheus's usual `process_resident_memory_bytes`.
std::string to_prometheus(const server_stats& s, std::string_view prefix = "msgtrans");
/// The same for a client: `connected` gauge instead of the connection counts.
std::string to_prometheus(const client_stats& s, std::string_view prefix = "msgtrans_client");

}  // namespace msgtrans

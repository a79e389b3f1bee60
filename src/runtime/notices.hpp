// The server's side of notices: counts every one per kind, and lets at most one per kind
// through to the application's handler per interval (the rest are counted as suppressed
// and reported with the next one let through).
#pragma once

#include <msgtrans/transport.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>

namespace msgtrans::detail {

inline constexpr std::size_t notice_kinds = static_cast<std::size_t>(notice_kind::rate_limited) + 1;

/// Once per `interval` per kind; the caller passes the time (tested with fake time).
class notice_limiter {
 public:
  using clock = std::chrono::steady_clock;
  explicit notice_limiter(clock::duration interval) : interval_(interval) {}

  /// The notice to report now (with `suppressed` filled in), or nothing.
  std::optional<notice> admit(notice n, clock::time_point now);

 private:
  struct slot {
    clock::time_point last{};
    std::uint64_t suppressed = 0;
    bool reported = false;
  };
  clock::duration interval_;
  std::mutex mu_;
  std::array<slot, notice_kinds> slots_{};
};

/// Per-kind totals, readable from any thread.
struct notice_counters {
  std::array<std::atomic<std::uint64_t>, notice_kinds> by_kind{};
  void count(notice_kind k) noexcept { by_kind[static_cast<std::size_t>(k)].fetch_add(1, std::memory_order_relaxed); }
};

}  // namespace msgtrans::detail

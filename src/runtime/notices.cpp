// Notices (names, the server's per-kind rate limiter) and the inbound decoding budget.
#include "runtime/notices.hpp"

#include <boost/asio/post.hpp>

namespace msgtrans {

const char* to_string(notice_kind k) noexcept {
  switch (k) {
    case notice_kind::upgrade_refused: return "upgrade_refused";
    case notice_kind::handshake_timeout: return "handshake_timeout";
    case notice_kind::connection_limit: return "connection_limit";
    case notice_kind::fd_exhausted: return "fd_exhausted";
    case notice_kind::truncated_packet: return "truncated_packet";
    case notice_kind::ping_flood: return "ping_flood";
    case notice_kind::budget_full: return "budget_full";
    case notice_kind::peer_limit: return "peer_limit";
    case notice_kind::rate_limited: return "rate_limited";
  }
  return "unknown";
}

// ---- inbound_budget ----

bool inbound_budget::try_acquire(std::size_t n) noexcept {
  std::size_t cur = used_.load(std::memory_order_relaxed);
  for (;;) {
    // One request over the whole limit is let through alone.
    const bool fits = limit_ == 0 || cur + n <= limit_ || (cur == 0 && n > limit_);
    if (!fits) return false;
    if (used_.compare_exchange_weak(cur, cur + n, std::memory_order_acq_rel)) return true;
  }
}

void inbound_budget::force_acquire(std::size_t n) noexcept { used_.fetch_add(n, std::memory_order_acq_rel); }

void inbound_budget::release(std::size_t n) noexcept {
  if (n == 0) return;
  used_.fetch_sub(n, std::memory_order_acq_rel);
  releases_.fetch_add(1, std::memory_order_acq_rel);
  std::vector<std::pair<boost::asio::io_context*, std::function<void()>>> wake;
  {
    std::lock_guard lock(mu_);
    if (waiters_.empty()) return;
    wake.swap(waiters_);
  }
  for (auto& [loop, f] : wake) boost::asio::post(*loop, std::move(f));
}

void inbound_budget::wait(boost::asio::io_context& loop, std::function<void()> resume) {
  waits_.fetch_add(1, std::memory_order_relaxed);
  const auto seen = releases_.load(std::memory_order_acquire);
  {
    std::lock_guard lock(mu_);
    // A release between the failed try and here would have found no waiter: retry now.
    if (releases_.load(std::memory_order_acquire) == seen && used_.load(std::memory_order_acquire) > 0) {
      waiters_.emplace_back(&loop, std::move(resume));
      return;
    }
  }
  boost::asio::post(loop, std::move(resume));
}

namespace detail {

// ---- notice_limiter ----

std::optional<notice> notice_limiter::admit(notice n, clock::time_point now) {
  auto& s = slots_[static_cast<std::size_t>(n.kind)];
  std::lock_guard lock(mu_);
  if (s.reported && now < s.last + interval_) {
    ++s.suppressed;
    return std::nullopt;
  }
  n.suppressed = s.suppressed;
  s.suppressed = 0;
  s.last = now;
  s.reported = true;
  return n;
}

}  // namespace detail
}  // namespace msgtrans

// Limits per peer address, against floods (docs/security.md "Limits against floods"):
// the key an address is counted under, a token bucket (GCRA), a map whose entries expire
// and whose size is bounded, and the two server-side tables built on them: handshakes per
// second per address, and "logged this address within the last minute".
//
// Sans-I/O: every call takes `now`; tests drive them with fake time.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

struct sockaddr;

namespace msgtrans::detail {

/// The address a peer is counted under: an IPv4 address whole (an IPv4-mapped IPv6
/// address counts as its IPv4 address), an IPv6 address by its /64 prefix (one host or
/// subscriber usually holds a whole /64 and can pick any address in it, so counting
/// IPv6 per address would limit nothing).
struct peer_key {
  std::array<std::uint8_t, 16> bytes{};  // IPv4: ::ffff:a.b.c.d; IPv6: the /64, then zeros
  bool operator==(const peer_key&) const noexcept = default;
};
struct peer_key_hash {
  std::size_t operator()(const peer_key& k) const noexcept {
    std::uint64_t a, b;
    std::memcpy(&a, k.bytes.data(), 8);
    std::memcpy(&b, k.bytes.data() + 8, 8);
    return std::hash<std::uint64_t>{}(a * 0x9E3779B97F4A7C15ull ^ b);
  }
};

/// The key of a socket address (AF_INET / AF_INET6); nothing for any other family.
std::optional<peer_key> peer_key_of(const ::sockaddr* sa) noexcept;
/// The key of an endpoint_info::peer_address ("1.2.3.4:5", "[::1]:5"); nothing if it is
/// no IP address (a custom transport's peer, say).
std::optional<peer_key> peer_key_of(std::string_view peer_address) noexcept;

/// A token bucket as a "theoretical arrival time" (GCRA): one integer per bucket. A cost
/// is time at the rate; the bucket holds `burst` of it. Times are nanoseconds.
struct gcra {
  std::int64_t tat = 0;  // when the bucket is full again; <= now: full
  /// True if `cost` fits now; a cost larger than the whole burst fits a full bucket.
  bool fits(std::int64_t now, std::int64_t cost, std::int64_t burst) const noexcept {
    return tat <= now || tat + cost - now <= burst;
  }
  void charge(std::int64_t now, std::int64_t cost) noexcept { tat = (tat > now ? tat : now) + cost; }
  /// Time owed beyond the burst (0 if none).
  std::int64_t over(std::int64_t now, std::int64_t burst) const noexcept {
    return tat - now > burst ? tat - now - burst : 0;
  }
};

/// A map whose entries are dropped once untouched for one to two `window`s, and which
/// never holds more than 2 x `capacity` entries: two generations; a lookup moves an entry
/// into the current one; the older generation is dropped every `window`, or at once when
/// the current one is full (then entries younger than a window may be forgotten, which
/// only a flood of more than `capacity` distinct addresses per window can cause).
template <class V>
class expiring_map {
 public:
  using clock = std::chrono::steady_clock;
  expiring_map(clock::duration window, std::size_t capacity) : window_(window), capacity_(capacity) {}

  /// The entry of `k` (made with `V{}` if absent or expired).
  V& touch(const peer_key& k, clock::time_point now) {
    if (now - rotated_ >= window_) {
      // Two windows without a touch: everything is stale.
      if (now - rotated_ >= 2 * window_) cur_.clear();
      rotate(now);
    }
    if (auto it = cur_.find(k); it != cur_.end()) return it->second;
    if (cur_.size() >= capacity_) rotate(now);
    V v{};
    if (auto it = old_.find(k); it != old_.end()) {
      v = it->second;
      old_.erase(it);
    }
    return cur_.emplace(k, v).first->second;
  }
  std::size_t size() const noexcept { return cur_.size() + old_.size(); }

 private:
  void rotate(clock::time_point now) {
    old_.swap(cur_);
    cur_.clear();
    rotated_ = now;
  }
  clock::duration window_;
  std::size_t capacity_;
  clock::time_point rotated_{};
  std::unordered_map<peer_key, V, peer_key_hash> cur_, old_;
};

/// Open connections per address (max_connections_per_ip). An address has an entry only
/// while it has a connection, so the map is bounded by the connections. Not thread-safe:
/// the server uses it under its session table's lock.
class connection_counts {
 public:
  /// `max` per address (0: no limit, nothing is counted).
  explicit connection_counts(std::size_t max) : max_(max) {}
  bool on() const noexcept { return max_ != 0; }
  std::size_t max() const noexcept { return max_; }
  /// True if `k` has `max` connections already.
  bool full(const peer_key& k) const {
    if (!max_) return false;
    auto it = open_.find(k);
    return it != open_.end() && it->second >= max_;
  }
  void add(const peer_key& k) {
    if (max_) ++open_[k];
  }
  void remove(const peer_key& k) {
    if (!max_) return;
    auto it = open_.find(k);
    if (it != open_.end() && --it->second == 0) open_.erase(it);
  }
  std::size_t addresses() const noexcept { return open_.size(); }

 private:
  std::size_t max_;
  std::unordered_map<peer_key, std::size_t, peer_key_hash> open_;
};

/// New connections per second per address (max_handshakes_per_second_per_ip), with a
/// burst of one second's worth. Thread-safe.
class handshake_limiter {
 public:
  using clock = std::chrono::steady_clock;
  /// `per_second` > 0.
  handshake_limiter(std::uint64_t per_second, std::size_t capacity);
  /// Counts one handshake of `k` at `now`; false if over the rate.
  bool admit(const peer_key& k, clock::time_point now);
  std::size_t tracked() const;

 private:
  std::int64_t cost_, burst_;
  mutable std::mutex mu_;
  expiring_map<gcra> map_;
};

/// "At most once per address per `interval`" for log lines and notices. Thread-safe.
class per_address_limiter {
 public:
  using clock = std::chrono::steady_clock;
  per_address_limiter(clock::duration interval, std::size_t capacity) : interval_(interval), map_(interval, capacity) {}
  /// True if `k` was not let through within the last interval (and it is now).
  bool admit(const peer_key& k, clock::time_point now);

 private:
  struct last {
    clock::time_point at{};
    bool seen = false;
  };
  clock::duration interval_;
  std::mutex mu_;
  expiring_map<last> map_;
};

}  // namespace msgtrans::detail

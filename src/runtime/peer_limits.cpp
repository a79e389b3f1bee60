#include "runtime/peer_limits.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace msgtrans::detail {

namespace {

peer_key from_v4(const void* addr4) noexcept {
  peer_key k;
  k.bytes[10] = k.bytes[11] = 0xFF;
  std::memcpy(k.bytes.data() + 12, addr4, 4);
  return k;
}

peer_key from_v6(const std::uint8_t* a) noexcept {
  static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (std::memcmp(a, mapped, 12) == 0) return from_v4(a + 12);
  peer_key k;
  std::memcpy(k.bytes.data(), a, 8);  // the /64
  return k;
}

}  // namespace

std::optional<peer_key> peer_key_of(const ::sockaddr* sa) noexcept {
  if (!sa) return std::nullopt;
  if (sa->sa_family == AF_INET) return from_v4(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  if (sa->sa_family == AF_INET6)
    return from_v6(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr);
  return std::nullopt;
}

std::optional<peer_key> peer_key_of(std::string_view a) noexcept {
  std::string host;
  if (a.starts_with('[')) {
    const auto end = a.find(']');
    if (end == std::string_view::npos) return std::nullopt;
    host.assign(a.substr(1, end - 1));
    if (auto pct = host.find('%'); pct != std::string::npos) host.resize(pct);  // zone id
    std::uint8_t b[16];
    if (inet_pton(AF_INET6, host.c_str(), b) != 1) return std::nullopt;
    return from_v6(b);
  }
  host.assign(a.substr(0, a.rfind(':')));
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return from_v4(&v4);
  std::uint8_t b[16];
  if (inet_pton(AF_INET6, std::string(a).c_str(), b) == 1) return from_v6(b);  // bare IPv6, no port
  return std::nullopt;
}

handshake_limiter::handshake_limiter(std::uint64_t per_second, std::size_t capacity)
    : cost_(1'000'000'000 / static_cast<std::int64_t>(per_second)),
      burst_(cost_ * static_cast<std::int64_t>(per_second)),
      map_(std::chrono::seconds(1), capacity) {}

bool handshake_limiter::admit(const peer_key& k, clock::time_point now) {
  const std::int64_t t = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::lock_guard lock(mu_);
  gcra& b = map_.touch(k, now);
  if (!b.fits(t, cost_, burst_)) return false;
  b.charge(t, cost_);
  return true;
}

std::size_t handshake_limiter::tracked() const {
  std::lock_guard lock(mu_);
  return map_.size();
}

bool per_address_limiter::admit(const peer_key& k, clock::time_point now) {
  std::lock_guard lock(mu_);
  last& l = map_.touch(k, now);
  if (l.seen && now - l.at < interval_) return false;
  l.seen = true;
  l.at = now;
  return true;
}

}  // namespace msgtrans::detail

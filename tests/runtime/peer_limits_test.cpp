// The pieces of the flood limits alone, on fake time: address keys (IPv4 whole, IPv6 by
// /64), the GCRA bucket, the bounded expiring map, the handshake and log limiters.
#include "runtime/peer_limits.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

using namespace msgtrans::detail;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

peer_key key(const char* a) {
  auto k = peer_key_of(std::string_view(a));
  EXPECT_TRUE(k) << a;
  return k.value_or(peer_key{});
}

peer_key numbered(std::uint32_t i) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(0x0A000000u + i);
  return *peer_key_of(reinterpret_cast<const sockaddr*>(&sa));
}

}  // namespace

TEST(PeerKey, Ipv4CountsPerAddressAndIgnoresThePort) {
  EXPECT_EQ(key("127.0.0.1:1234"), key("127.0.0.1:9"));
  EXPECT_NE(key("127.0.0.1:1234"), key("127.0.0.2:1234"));
}

TEST(PeerKey, Ipv6CountsPerSlash64) {
  EXPECT_EQ(key("[2001:db8:1:2::1]:5"), key("[2001:db8:1:2:ffff:1:2:3]:6"));
  EXPECT_NE(key("[2001:db8:1:2::1]:5"), key("[2001:db8:1:3::1]:5"));
  EXPECT_EQ(key("[fe80::1%eth0]:5"), key("[fe80::2]:5"));  // zone id dropped
}

TEST(PeerKey, MappedIpv4IsItsIpv4Address) {
  EXPECT_EQ(key("[::ffff:10.1.2.3]:5"), key("10.1.2.3:7"));
  EXPECT_NE(key("[::ffff:10.1.2.3]:5"), key("[::ffff:10.1.2.4]:5"));
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:10.1.2.3", &sa.sin6_addr);
  EXPECT_EQ(*peer_key_of(reinterpret_cast<const sockaddr*>(&sa)), key("10.1.2.3:1"));
}

TEST(PeerKey, NoIpNoKey) {
  EXPECT_FALSE(peer_key_of(std::string_view("/tmp/socket")));
  EXPECT_FALSE(peer_key_of(std::string_view("")));
  EXPECT_FALSE(peer_key_of(std::string_view("[nonsense]:1")));
  sockaddr sa{};
  sa.sa_family = AF_UNIX;
  EXPECT_FALSE(peer_key_of(&sa));
  EXPECT_FALSE(peer_key_of(static_cast<const sockaddr*>(nullptr)));
}

TEST(Gcra, BurstThenRate) {
  gcra b;
  const std::int64_t cost = 100, burst = 1000;  // 10 at once, then one per 100 ns
  std::int64_t now = 1'000'000;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.fits(now, cost, burst)) << i;
    b.charge(now, cost);
  }
  EXPECT_FALSE(b.fits(now, cost, burst));
  EXPECT_FALSE(b.fits(now + 99, cost, burst));
  EXPECT_TRUE(b.fits(now + 100, cost, burst));
  EXPECT_EQ(b.over(now, burst), 0);
  b.charge(now, 3 * cost);  // forced (pause mode): owed beyond the burst
  EXPECT_EQ(b.over(now, burst), 3 * cost);
  EXPECT_TRUE(b.fits(now + 1000 + 3 * cost, cost * 10, burst));  // full again
}

TEST(Gcra, OneCostLargerThanTheBurstFitsAFullBucket) {
  gcra b;
  EXPECT_TRUE(b.fits(5000, 10'000, 1000));
  b.charge(5000, 10'000);
  EXPECT_FALSE(b.fits(5000 + 9000, 1, 1000));
  EXPECT_TRUE(b.fits(5000 + 10'000, 10'000, 1000));
}

TEST(ExpiringMap, EntriesExpireAfterAWindowUntouched) {
  expiring_map<int> m(1s, 100);
  auto t = clock_type::time_point{} + 1000s;
  m.touch(numbered(1), t) = 7;
  EXPECT_EQ(m.touch(numbered(1), t + 500ms), 7);
  EXPECT_EQ(m.touch(numbered(1), t + 1400ms), 7);  // moved to the current generation
  EXPECT_EQ(m.touch(numbered(1), t + 5s), 0);      // untouched for two windows: gone
}

TEST(ExpiringMap, AFloodOfDistinctAddressesStaysBounded) {
  expiring_map<int> m(60s, 1000);
  auto t = clock_type::time_point{} + 1000s;
  for (std::uint32_t i = 0; i < 100'000; ++i) {
    m.touch(numbered(i), t) = 1;
    ASSERT_LE(m.size(), 2000u);
  }
}

TEST(HandshakeLimiter, NAtOnceThenNPerSecondPerAddress) {
  handshake_limiter h(5, 1000);
  auto t = clock_type::time_point{} + 1000s;
  const auto a = numbered(1), b = numbered(2);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(h.admit(a, t)) << i;
  EXPECT_FALSE(h.admit(a, t));
  EXPECT_FALSE(h.admit(a, t + 100ms));
  EXPECT_TRUE(h.admit(b, t));  // another address has its own bucket
  EXPECT_TRUE(h.admit(a, t + 200ms));
  EXPECT_FALSE(h.admit(a, t + 250ms));
  // Refusals cost nothing: a second later the bucket is full again.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(h.admit(a, t + 1250ms)) << i;
}

TEST(HandshakeLimiter, MemoryStaysBoundedUnderADistinctAddressFlood) {
  handshake_limiter h(10, 500);
  auto t = clock_type::time_point{} + 1000s;
  for (std::uint32_t i = 0; i < 50'000; ++i) {
    EXPECT_TRUE(h.admit(numbered(i), t + std::chrono::microseconds(i)));
    ASSERT_LE(h.tracked(), 1000u);
  }
}

TEST(PerAddressLimiter, OncePerIntervalPerAddress) {
  per_address_limiter l(60s, 100);
  auto t = clock_type::time_point{} + 1000s;
  EXPECT_TRUE(l.admit(numbered(1), t));
  EXPECT_FALSE(l.admit(numbered(1), t + 1s));
  EXPECT_TRUE(l.admit(numbered(2), t + 1s));
  EXPECT_FALSE(l.admit(numbered(1), t + 59s));
  EXPECT_TRUE(l.admit(numbered(1), t + 60s));
  EXPECT_FALSE(l.admit(numbered(1), t + 61s));
}

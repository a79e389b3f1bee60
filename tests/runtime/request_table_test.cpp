// request_table: matching, deadlines with fake time, bounded bookkeeping.
#include "core/request_table.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using table = msgtrans::detail::request_table<int>;
using tp = table::time_point;

TEST(RequestTable, MatchesAndExpiresByDeadline) {
  table t;
  const tp t0{};
  EXPECT_TRUE(t.add(1, t0, t0 + 100ms, 10));
  EXPECT_TRUE(t.add(2, t0, t0 + 50ms, 20));
  EXPECT_FALSE(t.add(1, t0, t0 + 10ms, 99));  // never replaced
  EXPECT_EQ(t.next_deadline(), t0 + 50ms);
  std::vector<std::uint32_t> expired;
  EXPECT_EQ(t.expire(t0 + 49ms, [&](std::uint32_t id, auto&) { expired.push_back(id); }), 0u);
  EXPECT_EQ(t.expire(t0 + 50ms, [&](std::uint32_t id, auto&) { expired.push_back(id); }), 1u);
  EXPECT_EQ(expired, std::vector<std::uint32_t>{2});
  auto e = t.take(1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->done, 10);
  EXPECT_FALSE(t.take(1));
  EXPECT_FALSE(t.next_deadline());
  EXPECT_TRUE(t.empty());
}

TEST(RequestTable, ClearFailsEverything) {
  table t;
  const tp t0{};
  for (std::uint32_t i = 1; i <= 5; ++i) t.add(i, t0, t0 + 1s, static_cast<int>(i));
  int sum = 0;
  t.clear([&](std::uint32_t, auto& e) { sum += e.done; });
  EXPECT_EQ(sum, 15);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.heap_size(), 0u);
}

TEST(RequestTable, NothingLeaksAfter100kRequests) {
  table t;
  tp now{};
  std::uint32_t id = 1;
  for (int i = 0; i < 100000; ++i) {
    t.add(id, now, now + 10s, i);
    if (i % 3 == 0) t.expire(now + 11s, [](std::uint32_t, auto&) {});  // some time out
    else (void)t.take(id);                                              // most are answered
    ++id;
    now += 1ms;
  }
  t.expire(now + 20s, [](std::uint32_t, auto&) {});
  EXPECT_TRUE(t.empty());
  EXPECT_LE(t.heap_size(), 64u + 2 * t.size());
}

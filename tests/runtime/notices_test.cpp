// notice_limiter (once per interval per kind, with fake time) and inbound_budget.
#include "runtime/notices.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

using namespace msgtrans;
using detail::notice_limiter;
using namespace std::chrono_literals;

namespace {
notice make(notice_kind k, std::string detail = "d") { return notice{k, "tcp", "1.2.3.4:5", std::move(detail), 0}; }
}  // namespace

TEST(NoticeLimiter, OncePerIntervalPerKindCountingTheRest) {
  notice_limiter lim(10s);
  const auto t0 = notice_limiter::clock::time_point{} + 1h;
  auto first = lim.admit(make(notice_kind::fd_exhausted), t0);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->suppressed, 0u);
  EXPECT_FALSE(lim.admit(make(notice_kind::fd_exhausted), t0 + 1s));
  EXPECT_FALSE(lim.admit(make(notice_kind::fd_exhausted), t0 + 9s));
  // Another kind has its own interval.
  EXPECT_TRUE(lim.admit(make(notice_kind::truncated_packet), t0 + 2s));
  auto next = lim.admit(make(notice_kind::fd_exhausted, "later"), t0 + 10s);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->suppressed, 2u);
  EXPECT_EQ(next->detail, "later");
  auto after = lim.admit(make(notice_kind::fd_exhausted), t0 + 21s);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->suppressed, 0u);
}

TEST(NoticeKind, NamesAreTheMetricLabels) {
  EXPECT_STREQ(to_string(notice_kind::upgrade_refused), "upgrade_refused");
  EXPECT_STREQ(to_string(notice_kind::budget_full), "budget_full");
  EXPECT_STREQ(to_string(notice_kind::truncated_packet), "truncated_packet");
}

TEST(InboundBudget, RefusesPastTheLimitAndGivesBack) {
  inbound_budget b(1000);
  EXPECT_TRUE(b.try_acquire(600));
  EXPECT_FALSE(b.try_acquire(500));
  EXPECT_EQ(b.used(), 600u);
  EXPECT_TRUE(b.try_acquire(400));
  b.release(1000);
  EXPECT_EQ(b.used(), 0u);
}

TEST(InboundBudget, OneRequestLargerThanTheLimitIsGrantedWhenNothingIsHeld) {
  inbound_budget b(1000);
  EXPECT_TRUE(b.try_acquire(5000));
  EXPECT_FALSE(b.try_acquire(1));
  b.release(5000);
  EXPECT_TRUE(b.try_acquire(1));
}

TEST(InboundBudget, ForcedBytesMakeOthersWait) {
  inbound_budget b(1000);
  b.force_acquire(1500);
  EXPECT_FALSE(b.try_acquire(10));
  b.release(1500);
  EXPECT_TRUE(b.try_acquire(10));
}

TEST(InboundBudget, ZeroMeansNoLimit) {
  inbound_budget b(0);
  EXPECT_TRUE(b.try_acquire(std::size_t{1} << 40));
}

TEST(InboundBudget, AWaiterIsResumedOnItsLoopAfterARelease) {
  boost::asio::io_context loop;
  inbound_budget b(100);
  ASSERT_TRUE(b.try_acquire(100));
  ASSERT_FALSE(b.try_acquire(50));
  int resumed = 0;
  b.wait(loop, [&] { ++resumed; });
  EXPECT_EQ(b.waits(), 1u);
  loop.poll();
  EXPECT_EQ(resumed, 0) << "resumed before any release";
  b.release(100);
  loop.restart();  // poll() with no work left the loop stopped
  loop.poll();
  EXPECT_EQ(resumed, 1);
  b.release(0);
  loop.restart();
  loop.poll();
  EXPECT_EQ(resumed, 1) << "a waiter is resumed once";
}

// The deadline calculator behind a session's one timer, with fake time.
#include "runtime/session_deadlines.hpp"

#include <gtest/gtest.h>

using namespace msgtrans;
using namespace msgtrans::detail;
using namespace std::chrono_literals;
using tp = session_deadlines::time_point;

namespace {
session_options quiet() {
  session_options o;
  o.first_packet_timeout = 0ms;
  o.idle_timeout = 0ms;
  return o;
}
const tp t0 = tp{} + 1000s;
}  // namespace

TEST(SessionDeadlines, NothingConfiguredMeansNever) {
  auto o = quiet();
  o.close_timeout = 0ms;
  session_deadlines d(o, true);
  d.start(t0);
  EXPECT_EQ(d.next(std::nullopt), session_deadlines::never);
  auto due = d.due(t0 + 1000h, std::nullopt);
  EXPECT_FALSE(due.first_packet || due.idle || due.heartbeat || due.requests || due.close_flush);
}

TEST(SessionDeadlines, FirstPacketOnlyOnTheServerAndOnlyUntilAPacketArrives) {
  auto o = quiet();
  o.first_packet_timeout = 10s;
  session_deadlines server(o, true), client(o, false);
  server.start(t0);
  client.start(t0);
  EXPECT_EQ(server.next(std::nullopt), t0 + 10s);
  EXPECT_EQ(client.next(std::nullopt), session_deadlines::never);
  EXPECT_FALSE(server.due(t0 + 9999ms, std::nullopt).first_packet);
  EXPECT_TRUE(server.due(t0 + 10s, std::nullopt).first_packet);
  server.received(t0 + 2s);
  EXPECT_FALSE(server.due(t0 + 10s, std::nullopt).first_packet);
  EXPECT_EQ(server.next(std::nullopt), session_deadlines::never);
}

TEST(SessionDeadlines, IdleMovesWithEachPacketReceived) {
  auto o = quiet();
  o.idle_timeout = 30s;
  session_deadlines d(o, false);
  d.start(t0);
  EXPECT_EQ(d.next(std::nullopt), t0 + 30s);
  d.received(t0 + 20s);
  EXPECT_EQ(d.last_received(), t0 + 20s);
  EXPECT_EQ(d.next(std::nullopt), t0 + 50s);
  EXPECT_FALSE(d.due(t0 + 49s, std::nullopt).idle);
  EXPECT_TRUE(d.due(t0 + 50s, std::nullopt).idle);
  d.sent(t0 + 45s);  // sending does not keep an idle peer alive
  EXPECT_TRUE(d.due(t0 + 50s, std::nullopt).idle);
}

TEST(SessionDeadlines, HeartbeatOnlyWithABizTypeAndMovesWithEachSend) {
  auto o = quiet();
  o.heartbeat_interval = 5s;
  session_deadlines off(o, false);
  off.start(t0);
  EXPECT_EQ(off.next(std::nullopt), session_deadlines::never);
  o.heartbeat_biz_type = 200;
  session_deadlines d(o, false);
  d.start(t0);
  EXPECT_EQ(d.next(std::nullopt), t0 + 5s);
  d.sent(t0 + 3s);
  EXPECT_FALSE(d.due(t0 + 5s, std::nullopt).heartbeat);
  EXPECT_TRUE(d.due(t0 + 8s, std::nullopt).heartbeat);
  d.received(t0 + 7s);  // receiving does not replace our heartbeat
  EXPECT_TRUE(d.due(t0 + 8s, std::nullopt).heartbeat);
}

TEST(SessionDeadlines, EarliestOfRequestsAndTimeouts) {
  auto o = quiet();
  o.idle_timeout = 30s;
  session_deadlines d(o, false);
  d.start(t0);
  EXPECT_EQ(d.next(t0 + 2s), t0 + 2s);
  EXPECT_EQ(d.next(t0 + 40s), t0 + 30s);
  auto due = d.due(t0 + 2s, t0 + 2s);
  EXPECT_TRUE(due.requests);
  EXPECT_FALSE(due.idle);
  EXPECT_FALSE(d.due(t0 + 1s, t0 + 2s).requests);
}

TEST(SessionDeadlines, ClosingLeavesOnlyTheFlushBound) {
  auto o = quiet();
  o.idle_timeout = 1s;
  o.first_packet_timeout = 1s;
  o.close_timeout = 5s;
  session_deadlines d(o, true);
  d.start(t0);
  d.closing(t0 + 500ms);
  EXPECT_EQ(d.next(t0 + 100ms), t0 + 5500ms);
  auto due = d.due(t0 + 5s, t0 + 100ms);
  EXPECT_FALSE(due.idle || due.first_packet || due.requests || due.close_flush);
  EXPECT_TRUE(d.due(t0 + 5500ms, std::nullopt).close_flush);
}

TEST(SessionDeadlines, ZeroCloseTimeoutMeansTheFlushIsNotBounded) {
  auto o = quiet();
  o.close_timeout = 0ms;
  session_deadlines d(o, true);
  d.start(t0);
  d.closing(t0);
  EXPECT_EQ(d.next(std::nullopt), session_deadlines::never);
  EXPECT_FALSE(d.due(t0 + 1000h, std::nullopt).close_flush);
}

TEST(SessionDeadlines, ARatePauseEndsAtItsTimeAndNotWhileClosing) {
  auto o = quiet();
  session_deadlines d(o, true);
  d.start(t0);
  d.pause_until(t0 + 30ms);
  EXPECT_EQ(d.next(std::nullopt), t0 + 30ms);
  EXPECT_FALSE(d.due(t0 + 29ms, std::nullopt).resume);
  EXPECT_TRUE(d.due(t0 + 30ms, std::nullopt).resume);
  d.pause_until(session_deadlines::never);
  EXPECT_EQ(d.next(std::nullopt), session_deadlines::never);
  EXPECT_FALSE(d.due(t0 + 1000h, std::nullopt).resume);
  d.pause_until(t0 + 30ms);
  d.closing(t0);
  EXPECT_EQ(d.next(std::nullopt), t0 + o.close_timeout);
  EXPECT_FALSE(d.due(t0 + 30ms, std::nullopt).resume);
}

// session_core alone: a fake connection (records writes, lets the test complete them and
// feed packets), a fake host, and a real io_context run by the test. No sockets.
#include "auth/auth_service.hpp"
#include "runtime/session_core.hpp"

#include <boost/asio/post.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace msgtrans;
using namespace msgtrans::detail;
using namespace std::chrono_literals;

namespace {

// What the fake connection saw; shared, so it outlives the connection (the session drops
// it after on_closed).
struct conn_log {
  connection_owner* owner = nullptr;
  std::vector<std::vector<packet>> batches;  // each write(), decoded
  std::vector<bool> reading;                 // each set_reading()
  std::optional<close_info> closed;          // close() was called with this
  bool acks = false;                         // report_acks() says yes
  std::size_t packets() const {
    std::size_t n = 0;
    for (auto& b : batches) n += b.size();
    return n;
  }
};

class fake_connection final : public connection {
 public:
  explicit fake_connection(std::shared_ptr<conn_log> l) : l_(std::move(l)) {}
  void start(connection_owner& owner) override { l_->owner = &owner; }
  void write(std::span<const bytes_view> packets) override {
    auto& b = l_->batches.emplace_back();
    for (auto p : packets) b.push_back(decode(p).value());
  }
  void set_reading(bool enabled) override { l_->reading.push_back(enabled); }
  void close(close_info info) override {
    if (!l_->closed) l_->closed = std::move(info);
  }
  endpoint_info info() const override { return {"fake", "local:1", "peer:2"}; }
  bool report_acks() override { return l_->acks; }

 private:
  std::shared_ptr<conn_log> l_;
};

class fake_host final : public session_host {
 public:
  host_counters c;  // first: responders still held below report to it when destroyed
  int established = 0;
  std::vector<packet> messages;
  std::vector<responder> responders;
  std::vector<close_info> closed;
  std::vector<std::uint32_t> sent;
  bool want_sent = false;

  void session_established(session_core&) override { ++established; }
  void session_message(session_core&, const message& m) override { messages.push_back(m.copy()); }
  void session_request(session_core&, request& r) override { responders.push_back(r.take_responder()); }
  void session_closed(session_core&, const close_info& info) override { closed.push_back(info); }
  void session_sent(session_core&, std::uint32_t id) override { sent.push_back(id); }
  bool wants_sent() const noexcept override { return want_sent; }
  host_counters& counters() noexcept override { return c; }
  // Authentication: when on, the verdict waits in `verdict` until the test gives it.
  bool authenticate_all = false;
  std::function<void(auth_outcome)> verdict;
  bool authenticates() const noexcept override { return authenticate_all; }
  void authenticate(session_core&, auth_request, std::function<void(auth_outcome)> done) override {
    verdict = std::move(done);
  }
};

byte_buffer encoded(packet_type t, std::uint32_t id, std::size_t payload_size) {
  packet p;
  p.type = t;
  p.message_id = id;
  p.payload = byte_buffer(payload_size, std::byte{'x'});
  return encode(p).value();
}

struct rig {
  boost::asio::io_context io;
  fake_host host;
  session_options opts;
  std::shared_ptr<conn_log> log = std::make_shared<conn_log>();
  std::shared_ptr<session_core> s;

  rig() {
    opts.first_packet_timeout = 0ms;
    opts.idle_timeout = 0ms;
    opts.write_high_water = 1000;
  }
  void make(bool server_side = true) {
    s = std::make_shared<session_core>(host, io, std::make_unique<fake_connection>(log), session_id{7}, opts,
                                       server_side);
    on_loop([&] { s->start(); });
  }
  // Runs what is ready now (no timer waits).
  void drain() {
    io.restart();
    io.poll();
  }
  // Runs f on the loop, then everything it made ready.
  template <class F>
  void on_loop(F&& f) {
    boost::asio::post(io, std::forward<F>(f));
    drain();
  }
  void write_done() {
    on_loop([&] { log->owner->on_write_done(); });
  }
  // Runs the loop until `pred` holds (timers included), at most `limit`.
  template <class P>
  bool run_until(P pred, std::chrono::milliseconds limit = 5s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred() && std::chrono::steady_clock::now() < end) {
      io.restart();
      io.run_one_for(10ms);
    }
    return pred();
  }
  bool paused() const { return !log->reading.empty() && !log->reading.back(); }
};

std::string text(std::size_t n) { return std::string(n, 'p'); }

}  // namespace

TEST(SessionCore, StartsReadingAndReportsEstablished) {
  rig r;
  r.make();
  EXPECT_EQ(r.host.established, 1);
  ASSERT_NE(r.log->owner, nullptr);
  EXPECT_TRUE(r.s->is_open());
}

TEST(SessionCore, SendsOfOneLoopTurnLeaveAsOneBatch) {
  rig r;
  r.make();
  r.on_loop([&] {
    EXPECT_FALSE(r.s->send(packet_type::one_way, 0, as_bytes("a"), {}));
    EXPECT_FALSE(r.s->send(packet_type::one_way, 0, as_bytes("b"), {}));
  });
  ASSERT_EQ(r.log->batches.size(), 1u);
  ASSERT_EQ(r.log->batches[0].size(), 2u);
  EXPECT_EQ(as_string(r.log->batches[0][1].payload), "b");
  EXPECT_NE(r.log->batches[0][0].message_id, r.log->batches[0][1].message_id);
  r.write_done();
  EXPECT_EQ(r.host.c.packets_out.load(), 2u);
  EXPECT_EQ(r.s->info().write_batches, 1u);
}

// ---- the one high-water rule, for every path ----

enum class path { send_on_loop, send_other_thread, request_on_loop, request_other_thread, shared, response };

class HighWater : public ::testing::TestWithParam<path> {};

// A 600-byte packet is being written (616 bytes queued, over half the 1000-byte mark);
// a second one of the same size does not fit: every path refuses it with queue_full,
// counts it and pauses reading; once the write is done reading resumes and it fits.
TEST_P(HighWater, RefusesPausesAndResumes) {
  rig r;
  r.make();
  std::optional<std::error_code> req_result;
  auto attempt = [&]() -> std::optional<std::error_code> {
    const std::string big = text(600);
    std::optional<std::error_code> ec;
    switch (GetParam()) {
      case path::send_on_loop:
        r.on_loop([&] { ec = r.s->send(packet_type::one_way, 0, as_bytes(big), {}); });
        break;
      case path::send_other_thread:
        ec = r.s->send(packet_type::one_way, 0, as_bytes(big), {});
        r.drain();
        break;
      case path::request_on_loop:
      case path::request_other_thread: {
        req_result.reset();
        auto call = [&] { r.s->request(as_bytes(big), 10s, {}, [&](std::error_code e, packet) { req_result = e; }); };
        if (GetParam() == path::request_on_loop) r.on_loop(call);
        else {
          call();
          r.drain();
        }
        r.drain();
        if (req_result) ec = *req_result;
        else ec = std::error_code{};  // queued: pending until answered
        break;
      }
      case path::shared: {
        auto b = std::make_shared<const byte_buffer>(encoded(packet_type::one_way, 9, 600));
        ec = r.s->send_shared(b, false);
        r.drain();
        break;
      }
      case path::response: {
        r.on_loop([&] {
          const auto req = encoded(packet_type::request, 77, 1);
          r.log->owner->on_packet(req);
        });
        EXPECT_FALSE(r.host.responders.empty());
        ec = r.host.responders.back().respond(as_bytes(big));
        r.drain();
        break;
      }
    }
    return ec;
  };
  r.on_loop([&] { EXPECT_FALSE(r.s->send(packet_type::one_way, 0, as_bytes(text(600)), {})); });
  ASSERT_EQ(r.log->batches.size(), 1u);  // in flight, not yet done
  EXPECT_FALSE(r.paused());

  auto ec = attempt();
  ASSERT_TRUE(ec);
  EXPECT_EQ(*ec, errc::queue_full);
  EXPECT_EQ(r.host.c.queue_full.load(), 1u);
  EXPECT_TRUE(r.paused()) << "a refused send pauses reading";

  r.write_done();
  EXPECT_FALSE(r.paused()) << "resumed at or below half the mark";
  ec = attempt();
  ASSERT_TRUE(ec);
  EXPECT_FALSE(*ec) << ec->message();
  EXPECT_EQ(r.log->batches.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(EveryPath, HighWater,
                         ::testing::Values(path::send_on_loop, path::send_other_thread, path::request_on_loop,
                                           path::request_other_thread, path::shared, path::response));

TEST(SessionCore, OnePacketLargerThanTheMarkGoesOutOnAnEmptyQueue) {
  rig r;
  r.make();
  std::error_code ec;
  r.on_loop([&] { ec = r.s->send(packet_type::one_way, 0, as_bytes(text(5000)), {}); });
  EXPECT_FALSE(ec);
  ASSERT_EQ(r.log->batches.size(), 1u);
  EXPECT_TRUE(r.paused()) << "the queue is past the mark while it is written";
  r.write_done();
  EXPECT_FALSE(r.paused());
}

TEST(SessionCore, TooLargeForMaxMessageSizeIsRefusedOnEveryPath) {
  rig r;
  r.opts.max_message_size = 100;
  r.make();
  std::error_code on_loop;
  std::optional<std::error_code> req;
  r.on_loop([&] { on_loop = r.s->send(packet_type::one_way, 0, as_bytes(text(200)), {}); });
  r.s->request(as_bytes(text(200)), 1s, {}, [&](std::error_code e, packet) { req = e; });
  r.drain();
  r.drain();
  EXPECT_EQ(on_loop, errc::message_too_large);
  ASSERT_TRUE(req);
  EXPECT_EQ(*req, errc::message_too_large);
  EXPECT_TRUE(r.log->batches.empty());
}

TEST(SessionCore, WaitModeOnTheLoopReturnsWrongThreadInsteadOfBlocking) {
  rig r;
  r.opts.backpressure = backpressure_mode::wait;
  r.make();
  std::error_code first, second;
  r.on_loop([&] {
    first = r.s->send(packet_type::one_way, 0, as_bytes(text(600)), {});
    second = r.s->send(packet_type::one_way, 0, as_bytes(text(600)), {});
  });
  EXPECT_FALSE(first);
  EXPECT_EQ(second, errc::wrong_thread);
}

// ---- close ----

TEST(SessionCore, CloseFlushesEverythingQueuedFirst) {
  rig r;
  r.make();
  r.on_loop([&] { (void)r.s->send(packet_type::one_way, 0, as_bytes("1"), {}); });
  r.on_loop([&] {
    (void)r.s->send(packet_type::one_way, 0, as_bytes("2"), {});
    (void)r.s->send(packet_type::one_way, 0, as_bytes("3"), {});
    r.s->close(close_info{close_reason::normal, {}, "bye"});
  });
  EXPECT_FALSE(r.log->closed) << "a write is in flight";
  EXPECT_EQ(r.s->send(packet_type::one_way, 0, as_bytes("late"), {}), errc::connection_closed);
  r.write_done();
  ASSERT_EQ(r.log->batches.size(), 2u);
  EXPECT_EQ(r.log->batches[1].size(), 2u);
  EXPECT_FALSE(r.log->closed);
  r.write_done();
  ASSERT_TRUE(r.log->closed);
  EXPECT_EQ(r.log->closed->detail, "bye");
  r.on_loop([&] { r.log->owner->on_closed(*r.log->closed); });
  ASSERT_EQ(r.host.closed.size(), 1u);
  EXPECT_EQ(r.host.closed[0].detail, "bye");
  EXPECT_EQ(r.log->packets(), 3u);
}

TEST(SessionCore, CloseFlushIsBoundedByCloseTimeout) {
  rig r;
  r.opts.close_timeout = 30ms;
  r.make();
  r.on_loop([&] { (void)r.s->send(packet_type::one_way, 0, as_bytes("never acknowledged"), {}); });
  r.on_loop([&] { r.s->close(close_info{close_reason::normal, {}, "bye"}); });
  EXPECT_FALSE(r.log->closed) << "the write is still in flight";
  // The peer never reads: on_write_done never comes; the one timer ends the wait.
  ASSERT_TRUE(r.run_until([&] { return r.log->closed.has_value(); }));
  EXPECT_EQ(r.log->closed->detail, "bye");
}

TEST(SessionCore, ClosedFailsRequestsInFlight) {
  rig r;
  r.make();
  std::optional<std::error_code> got;
  r.on_loop([&] { r.s->request(as_bytes("q"), 10s, {}, [&](std::error_code e, packet) { got = e; }); });
  EXPECT_EQ(r.host.c.requests_in_flight.load(), 1u);
  r.on_loop([&] { r.log->owner->on_closed(close_info{close_reason::peer_closed, {}, "gone"}); });
  r.drain();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, errc::connection_closed);
  EXPECT_EQ(r.host.c.requests_in_flight.load(), 0u);
}

// ---- requests ----

TEST(SessionCore, ResponseCompletesItsRequest) {
  rig r;
  r.make();
  std::optional<packet> got;
  r.on_loop([&] {
    r.s->request(as_bytes("q"), 10s, {}, [&](std::error_code e, packet p) {
      EXPECT_FALSE(e);
      got = std::move(p);
    });
  });
  ASSERT_EQ(r.log->packets(), 1u);
  const auto id = r.log->batches[0][0].message_id;
  EXPECT_EQ(r.log->batches[0][0].type, packet_type::request);
  packet resp = packet::response(id, as_bytes("answer"));
  r.on_loop([&] { r.log->owner->on_packet(encode(resp).value()); });
  ASSERT_TRUE(got);
  EXPECT_EQ(as_string(got->payload), "answer");
  EXPECT_EQ(r.host.c.request_latency.snapshot().total, 1u);
  EXPECT_EQ(r.host.c.requests_in_flight.load(), 0u);
}

TEST(SessionCore, RequestTimesOutOnTheSessionTimer) {
  rig r;
  r.make();
  std::optional<std::error_code> got;
  r.on_loop([&] { r.s->request(as_bytes("q"), 20ms, {}, [&](std::error_code e, packet) { got = e; }); });
  ASSERT_TRUE(r.run_until([&] { return got.has_value(); }));
  EXPECT_EQ(*got, errc::timeout);
  EXPECT_EQ(r.host.c.request_timeouts.load(), 1u);
  EXPECT_EQ(r.host.c.requests_in_flight.load(), 0u);
  EXPECT_FALSE(r.log->closed) << "a timed-out request does not end the connection";
}

TEST(SessionCore, IdleTimeoutClosesThroughTheOneTimer) {
  rig r;
  r.opts.idle_timeout = 30ms;
  r.make();
  ASSERT_TRUE(r.run_until([&] { return r.log->closed.has_value(); }));
  EXPECT_EQ(r.log->closed->reason, close_reason::idle_timeout);
}

TEST(SessionCore, InboundRequestAndResponderGoThroughTheSendPath) {
  rig r;
  r.make();
  r.on_loop([&] { r.log->owner->on_packet(encoded(packet_type::request, 41, 3)); });
  ASSERT_EQ(r.host.responders.size(), 1u);
  EXPECT_EQ(r.host.c.inbound_requests_open.load(), 1u);
  EXPECT_FALSE(r.host.responders[0].respond(as_bytes("ok")));  // from the test thread
  EXPECT_EQ(r.host.responders[0].respond(as_bytes("again")), errc::already_responded);
  r.drain();
  EXPECT_EQ(r.host.c.inbound_requests_open.load(), 0u);
  ASSERT_EQ(r.log->packets(), 1u);
  EXPECT_EQ(r.log->batches[0][0].type, packet_type::response);
  EXPECT_EQ(r.log->batches[0][0].message_id, 41u);
  EXPECT_EQ(r.host.c.response_latency.snapshot().total, 1u);
}

TEST(SessionCore, BadPacketIsAProtocolViolationWithoutFlush) {
  rig r;
  r.make();
  byte_buffer junk(16, std::byte{0xFF});
  r.on_loop([&] { r.log->owner->on_packet(junk); });
  ASSERT_TRUE(r.log->closed);
  EXPECT_EQ(r.log->closed->reason, close_reason::protocol_error);
}

// ---- sent events ----

TEST(SessionCore, SentIsReportedAtWriteDoneOncePerPacket) {
  rig r;
  r.host.want_sent = true;
  r.make();
  r.on_loop([&] {
    (void)r.s->send(packet_type::one_way, 0, as_bytes("a"), {});
    (void)r.s->send(packet_type::one_way, 0, as_bytes("b"), {});
  });
  EXPECT_TRUE(r.host.sent.empty()) << "not before the write is done";
  r.write_done();
  ASSERT_EQ(r.host.sent.size(), 2u);
  EXPECT_EQ(r.host.sent[0], r.log->batches[0][0].message_id);
  EXPECT_EQ(r.host.sent[1], r.log->batches[0][1].message_id);
}

TEST(SessionCore, SentWaitsForAcknowledgementWhenTheTransportReportsAcks) {
  rig r;
  r.host.want_sent = true;
  r.log->acks = true;
  r.make();
  r.on_loop([&] {
    (void)r.s->send(packet_type::one_way, 0, as_bytes("a"), {});
    (void)r.s->send(packet_type::one_way, 0, as_bytes("b"), {});
  });
  r.write_done();
  EXPECT_TRUE(r.host.sent.empty()) << "written is not acknowledged";
  r.on_loop([&] { r.log->owner->on_acked(1); });
  ASSERT_EQ(r.host.sent.size(), 1u);
  r.on_loop([&] { r.log->owner->on_acked(1); });
  ASSERT_EQ(r.host.sent.size(), 2u);
  EXPECT_EQ(r.host.sent[1], r.log->batches[0][1].message_id);
}

TEST(SessionCore, NoSentBookkeepingWhenTheHostDoesNotWantIt) {
  rig r;
  r.log->acks = true;  // would be asked only if wanted
  r.make();
  r.on_loop([&] { (void)r.s->send(packet_type::one_way, 0, as_bytes("a"), {}); });
  r.write_done();
  r.on_loop([&] { r.log->owner->on_acked(1); });
  EXPECT_TRUE(r.host.sent.empty());
}

// ---- authentication: what arrives behind the credentials waits for the verdict ----

byte_buffer auth_packet(std::uint32_t id) {
  packet p;
  p.type = packet_type::request;
  p.message_id = id;
  p.ext_header = to_buffer(as_bytes(auth_ext));
  p.payload = to_buffer(as_bytes(std::string_view("token")));
  return encode(p).value();
}

TEST(SessionCoreAuth, PacketsBehindTheCredentialsAreHeldThenDeliveredInOrder) {
  rig r;
  r.host.authenticate_all = true;
  r.make();
  EXPECT_EQ(r.host.established, 0);
  r.on_loop([&] {
    r.log->owner->on_packet(auth_packet(1));
    for (std::uint32_t i = 0; i < 3; ++i) r.log->owner->on_packet(encoded(packet_type::one_way, 10 + i, 4));
  });
  EXPECT_TRUE(r.paused());
  EXPECT_TRUE(r.host.messages.empty());
  ASSERT_TRUE(r.host.verdict);
  r.host.verdict(auth_outcome{true, std::make_shared<const identity>(identity{"u", {}}), {}, false});
  r.drain();
  EXPECT_EQ(r.host.established, 1);
  ASSERT_EQ(r.host.messages.size(), 3u);
  for (std::uint32_t i = 0; i < 3; ++i) EXPECT_EQ(r.host.messages[i].message_id, 10 + i);
  EXPECT_FALSE(r.paused());
}

TEST(SessionCoreAuth, TooManyPacketsBehindTheCredentialsCloseTheSession) {
  rig r;
  r.host.authenticate_all = true;
  r.make();
  r.on_loop([&] {
    r.log->owner->on_packet(auth_packet(1));
    for (std::size_t i = 0; i <= auth_hold_packets; ++i)
      r.log->owner->on_packet(encoded(packet_type::one_way, 0, 4));
  });
  ASSERT_TRUE(r.log->closed);
  EXPECT_EQ(r.log->closed->reason, close_reason::protocol_error);
  EXPECT_NE(r.log->closed->detail.find("before authentication"), std::string::npos) << r.log->closed->detail;
  EXPECT_TRUE(r.host.messages.empty());
}

TEST(SessionCoreAuth, TooManyBytesBehindTheCredentialsCloseTheSession) {
  rig r;
  r.host.authenticate_all = true;
  r.opts.max_message_size = 2 * auth_hold_bytes;
  r.make();
  r.on_loop([&] {
    r.log->owner->on_packet(auth_packet(1));
    r.log->owner->on_packet(encoded(packet_type::one_way, 0, auth_hold_bytes));
  });
  ASSERT_TRUE(r.log->closed);
  EXPECT_EQ(r.log->closed->reason, close_reason::protocol_error);
  EXPECT_TRUE(r.host.messages.empty());
}

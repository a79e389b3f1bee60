// ws::session on bytes and fake time: no sockets, no clock. Each test feeds frames as a
// peer would write them and reads back the frames the session builds.
#include "ws/ws_session.hpp"

#include <msgtrans/error.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace msgtrans;
using namespace msgtrans::ws;
using namespace std::chrono_literals;

namespace {

const time_point t0 = time_point{} + 1000s;

struct frame {
  opcode op;
  std::string payload;
  std::uint16_t code() const {
    return payload.size() >= 2 ? static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                            static_cast<std::uint8_t>(payload[1]))
                               : 1005;
  }
  std::string reason() const { return payload.size() > 2 ? payload.substr(2) : ""; }
};

// One frame as the peer of `receiver` writes it: masked towards a server.
std::string wire(opcode op, std::string_view payload, role receiver = role::server, bool fin = true) {
  std::byte hdr[max_header_size];
  const std::array<std::uint8_t, 4> m{0x12, 0x34, 0x56, 0x78};
  const bool mask = receiver == role::server;
  const auto n = encode_frame_header(hdr, op, payload.size(), mask ? m.data() : nullptr);
  if (!fin) hdr[0] &= std::byte{0x7F};
  std::string body(payload);
  if (mask) apply_mask(reinterpret_cast<std::byte*>(body.data()), body.size(), m);
  return std::string(reinterpret_cast<const char*>(hdr), n) + body;
}

std::string close_body(std::uint16_t code, std::string_view reason = {}) {
  std::string b{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return b.append(reason);
}

std::string packet_bytes(std::size_t payload) {
  return std::string(as_string(*encode(packet::request(1, as_bytes(std::string(payload, 'p'))))));
}

// A session and the peer's side of the wire.
struct peer {
  explicit peer(role self = role::server, std::size_t max_message = default_max_message_size) {
    cfg.self = self;
    cfg.limits.max_message_size = max_message;
  }
  session_config cfg;
  std::unique_ptr<session> s;
  std::string in;  // received, not consumed yet
  std::vector<std::string> messages;
  int floods = 0;

  session& start(time_point now = t0) {
    s = std::make_unique<session>(cfg, now);
    return *s;
  }
  // Feeds `bytes` and runs receive() until it wants more.
  void feed(const std::string& bytes, time_point now = t0) {
    in += bytes;
    for (;;) {
      auto r = s->receive({reinterpret_cast<std::byte*>(in.data()), in.size()}, now);
      if (r.has_message) messages.emplace_back(as_string(r.message));
      floods += r.ping_flood;
      if (r.consumed == 0) return;
      s->message_done();
      in.erase(0, r.consumed);
    }
  }
  // The frames the session wants to write now (and the packets, when given).
  std::vector<frame> output(std::span<const bytes_view> packets = {}, bool with_data = false, bool gather = false) {
    write_batch b;
    s->build_batch(packets, with_data, gather, b);
    std::string bytes;
    for (auto seg : b.segments) bytes += as_string(seg);
    std::vector<frame> out;
    const role reader = cfg.self == role::server ? role::client : role::server;
    while (!bytes.empty()) {
      auto p = parse_frame_header(as_bytes(bytes), reader, ~0ull >> 1);
      EXPECT_EQ(p.status, parse_result::ok);
      if (p.status != parse_result::ok) break;
      std::string body = bytes.substr(p.header.header_len, p.header.payload_len);
      if (p.header.masked) apply_mask(reinterpret_cast<std::byte*>(body.data()), body.size(), p.header.mask);
      out.push_back({p.header.op, body});
      bytes.erase(0, p.header.header_len + p.header.payload_len);
    }
    return out;
  }
  // The one frame the session wants to write.
  frame only_output() {
    auto f = output();
    EXPECT_EQ(f.size(), 1u);
    return f.empty() ? frame{opcode::continuation, ""} : f[0];
  }
};

}  // namespace

// ---- messages ---------------------------------------------------------------------------

TEST(ws_session, binary_message_is_handed_on_undecoded) {
  peer p;
  p.start();
  p.feed(wire(opcode::binary, "not a packet at all"));
  ASSERT_EQ(p.messages.size(), 1u);
  EXPECT_EQ(p.messages[0], "not a packet at all");
  EXPECT_FALSE(p.s->has_output());
  EXPECT_TRUE(p.s->is_open());
}

TEST(ws_session, partial_frame_waits_and_says_how_much_it_needs) {
  peer p;
  p.start();
  const std::string f = wire(opcode::binary, std::string(300, 'x'));
  std::string first = f.substr(0, 100);
  auto r = p.s->receive({reinterpret_cast<std::byte*>(first.data()), first.size()}, t0);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(r.need, f.size());
  std::string one = f.substr(0, 1);
  r = p.s->receive({reinterpret_cast<std::byte*>(one.data()), one.size()}, t0);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(r.need, 2u);  // the header is not complete
  p.feed(f);
  ASSERT_EQ(p.messages.size(), 1u);
  EXPECT_EQ(p.messages[0].size(), 300u);
}

TEST(ws_session, fragments_are_joined_around_a_ping) {
  peer p;
  p.start();
  const std::string msg = packet_bytes(300);
  p.feed(wire(opcode::binary, msg.substr(0, 10), role::server, false));
  p.feed(wire(opcode::continuation, msg.substr(10, 100), role::server, false));
  EXPECT_EQ(p.s->fragment_bytes(), 110u);
  p.feed(wire(opcode::ping, "mid"));
  EXPECT_TRUE(p.messages.empty());
  auto pong = p.only_output();
  EXPECT_EQ(pong.op, opcode::pong);
  EXPECT_EQ(pong.payload, "mid");
  p.feed(wire(opcode::continuation, msg.substr(110)));
  ASSERT_EQ(p.messages.size(), 1u);
  EXPECT_EQ(p.messages[0], msg);
  EXPECT_EQ(p.s->fragment_bytes(), 0u);  // freed by message_done
}

TEST(ws_session, text_message_closes_1003) {
  peer p;
  p.start();
  p.feed(wire(opcode::text, "hello"));
  EXPECT_TRUE(p.messages.empty());
  auto c = p.only_output();
  EXPECT_EQ(c.op, opcode::close);
  EXPECT_EQ(c.code(), 1003);
  EXPECT_NE(c.reason().find("text"), std::string::npos);
  EXPECT_EQ(p.s->outcome().reason, close_reason::protocol_error);
  EXPECT_EQ(p.s->outcome().transport_code, 1003);
  p.feed(wire(opcode::binary, "after the close"));
  EXPECT_TRUE(p.messages.empty()) << "data after our close is dropped";
}

TEST(ws_session, too_big_is_refused_from_the_header_with_1009) {
  peer p(role::server, 1024);
  p.start();
  std::byte hdr[max_header_size];
  const std::array<std::uint8_t, 4> m{1, 2, 3, 4};
  const auto n = encode_frame_header(hdr, opcode::binary, 2000, m.data());
  p.feed(std::string(reinterpret_cast<const char*>(hdr), n));  // the header alone
  EXPECT_TRUE(p.in.empty()) << "the rest of the stream is discarded";
  auto c = p.only_output();
  EXPECT_EQ(c.code(), 1009);
  EXPECT_EQ(p.s->outcome().reason, close_reason::limit_reached);
  EXPECT_EQ(p.s->outcome().error, errc::message_too_large);
  p.s->on_written();
  EXPECT_TRUE(p.s->finished()) << "a broken stream is not owed a close handshake";
}

TEST(ws_session, too_big_across_fragments_closes_1009) {
  peer p(role::server, 1024);
  p.start();
  p.feed(wire(opcode::binary, std::string(600, 'a'), role::server, false));
  p.feed(wire(opcode::continuation, std::string(600, 'b')));
  EXPECT_TRUE(p.messages.empty());
  EXPECT_EQ(p.only_output().code(), 1009);
}

TEST(ws_session, frame_rules_violations_close_1002) {
  struct bad {
    std::string bytes;
    std::string why;
  };
  std::string ping126 = wire(opcode::ping, std::string(126, 'p'));
  const bad cases[] = {
      {wire(opcode::continuation, "x"), "continuation frame without"},
      {wire(opcode::binary, "a", role::server, false) + wire(opcode::binary, "b"), "new message started"},
      {wire(opcode::ping, "x", role::server, false), "fragmented control frame"},
      {ping126, "control frame over 125 bytes"},
      {wire(opcode::binary, "x", role::client), "client frames must be masked"},
      {wire(opcode::close, "\x03\xED"), "invalid close frame"},  // 1005 may not be sent
  };
  for (const auto& c : cases) {
    peer p;
    p.start();
    p.feed(c.bytes);
    auto f = p.only_output();
    EXPECT_EQ(f.code(), 1002) << c.why;
    EXPECT_NE(f.reason().find(c.why), std::string::npos) << f.reason();
    EXPECT_EQ(p.s->outcome().reason, close_reason::protocol_error) << c.why;
  }
}

TEST(ws_session, server_frames_unmasked_client_frames_masked_big_packets_gathered) {
  const std::string small(100, 's'), big(5000, 'b');
  const bytes_view packets[] = {as_bytes(small), as_bytes(big)};
  for (role r : {role::server, role::client}) {
    peer p(r);
    p.start();
    auto frames = p.output(packets, true, true);  // output() checks the masking rule for the reader
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0].payload, small);
    EXPECT_EQ(frames[1].payload, big);
  }
  peer server;
  server.start();
  write_batch b;
  server.s->build_batch(packets, true, true, b);
  EXPECT_TRUE(b.has_data);
  bool referenced = false;
  for (auto seg : b.segments) referenced |= seg.data() == as_bytes(big).data();
  EXPECT_TRUE(referenced) << "a packet over 2 KiB is written in place, not copied";
}

// ---- ping / pong ------------------------------------------------------------------------

TEST(ws_session, one_pending_pong_answers_the_latest_ping) {
  peer p;
  p.start();
  p.feed(wire(opcode::ping, "first") + wire(opcode::ping, "second"));
  auto pong = p.only_output();
  EXPECT_EQ(pong.op, opcode::pong);
  EXPECT_EQ(pong.payload, "second");
  EXPECT_FALSE(p.s->has_output());
}

TEST(ws_session, ping_flood_burst_then_rate) {
  peer p;
  p.start();
  std::string burst;
  for (int i = 0; i < 100; ++i) burst += wire(opcode::ping, "");
  p.feed(burst, t0);
  EXPECT_TRUE(p.s->is_open()) << "a burst of 100 is allowed";
  p.feed(burst.substr(0, burst.size() / 2), t0 + 1s);  // 50 more a second later: the rate
  EXPECT_TRUE(p.s->is_open());
  EXPECT_EQ(p.floods, 0);
  p.feed(wire(opcode::ping, ""), t0 + 1s);
  EXPECT_EQ(p.floods, 1);
  EXPECT_FALSE(p.s->is_open());
  auto frames = p.output();
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().op, opcode::close);
  EXPECT_EQ(frames.back().code(), 1008);
  EXPECT_NE(frames.back().reason().find("ping flood"), std::string::npos);
  EXPECT_NE(p.s->outcome().detail.find("ping flood"), std::string::npos);
}

TEST(ws_session, keep_alive_schedule_and_pong_timeout) {
  peer p;
  p.cfg.keep_alive_interval = 100ms;
  p.cfg.keep_alive_timeout = 300ms;
  p.start();
  EXPECT_EQ(p.s->next_deadline(), t0 + 100ms);
  p.s->on_timer(t0 + 50ms);  // early: nothing
  EXPECT_FALSE(p.s->has_output());
  p.s->on_timer(t0 + 100ms);
  EXPECT_EQ(p.only_output().op, opcode::ping);
  EXPECT_EQ(p.s->next_deadline(), t0 + 400ms);  // the pong's deadline
  p.feed(wire(opcode::pong, ""), t0 + 150ms);
  EXPECT_EQ(p.s->next_deadline(), t0 + 200ms);  // the next ping
  p.s->on_timer(t0 + 200ms);
  EXPECT_EQ(p.only_output().op, opcode::ping);
  p.s->on_timer(t0 + 499ms);
  EXPECT_TRUE(p.s->is_open());
  p.s->on_timer(t0 + 500ms);  // no pong
  auto c = p.only_output();
  EXPECT_EQ(c.code(), 1001);
  EXPECT_NE(c.reason().find("no pong within 300 ms"), std::string::npos);
  EXPECT_EQ(p.s->outcome().reason, close_reason::idle_timeout);
  EXPECT_EQ(p.s->outcome().error, errc::timeout);
  p.s->on_written();
  EXPECT_TRUE(p.s->finished()) << "a peer that ignores pings is not waited for";
}

TEST(ws_session, no_keep_alive_no_deadline) {
  peer p;
  p.start();
  EXPECT_EQ(p.s->next_deadline(), no_deadline);
  p.s->on_timer(t0 + 1000s);
  EXPECT_FALSE(p.s->has_output());
}

// ---- close handshake --------------------------------------------------------------------

TEST(ws_session, our_close_completes_when_the_peer_answers) {
  peer p;
  p.start();
  p.s->close({close_reason::shutdown, {}, "server stopping", 0}, t0);
  EXPECT_TRUE(p.s->is_closing());
  auto c = p.only_output();
  EXPECT_EQ(c.code(), 1001);
  EXPECT_EQ(c.reason(), "server stopping");
  p.s->on_written();
  EXPECT_FALSE(p.s->finished());
  p.feed(wire(opcode::close, close_body(1001)));
  EXPECT_TRUE(p.s->finished());
  EXPECT_EQ(p.s->outcome().reason, close_reason::shutdown);
  EXPECT_EQ(p.s->outcome().transport_code, 1001);
}

TEST(ws_session, our_close_crossing_the_peers_completes_once_ours_is_written) {
  peer p;
  p.start();
  p.s->close({close_reason::normal, {}, "", 4001}, t0);
  p.feed(wire(opcode::close, close_body(1000)));
  EXPECT_FALSE(p.s->finished()) << "ours is not written yet";
  EXPECT_EQ(p.only_output().code(), 4001);  // transport_code is sent as is
  p.s->on_written();
  EXPECT_TRUE(p.s->finished());
}

TEST(ws_session, peer_close_is_echoed_and_reported) {
  peer p;
  p.start();
  p.feed(wire(opcode::close, close_body(4000, "going")));
  EXPECT_TRUE(p.s->is_closing());
  auto echo = p.only_output();
  EXPECT_EQ(echo.code(), 4000);
  EXPECT_EQ(echo.reason(), "");
  EXPECT_FALSE(p.s->finished());
  p.s->on_written();
  EXPECT_TRUE(p.s->finished());
  EXPECT_EQ(p.s->outcome().reason, close_reason::peer_closed);
  EXPECT_EQ(p.s->outcome().transport_code, 4000);
  EXPECT_EQ(p.s->outcome().detail, "going");

  peer q;
  q.start();
  q.feed(wire(opcode::close, ""));
  EXPECT_EQ(q.only_output().payload, "") << "a close without a code is answered without one";
  EXPECT_EQ(q.s->outcome().transport_code, 1005);
}

TEST(ws_session, close_handshake_is_bounded_by_close_timeout) {
  peer p;
  p.cfg.close_timeout = 2s;
  p.start();
  p.s->close({close_reason::normal, {}, "bye", 0}, t0 + 1s);
  (void)p.output();
  p.s->on_written();
  EXPECT_EQ(p.s->next_deadline(), t0 + 3s);
  p.s->on_timer(t0 + 3s - 1ms);
  EXPECT_FALSE(p.s->finished());
  p.s->on_timer(t0 + 3s);
  EXPECT_TRUE(p.s->finished());
  EXPECT_EQ(p.s->outcome().reason, close_reason::normal);
  EXPECT_EQ(p.s->next_deadline(), no_deadline);
}

TEST(ws_session, close_code_for_reasons) {
  EXPECT_EQ(close_code_for({close_reason::shutdown, {}, "", 0}), 1001);
  EXPECT_EQ(close_code_for({close_reason::idle_timeout, {}, "", 0}), 1001);
  EXPECT_EQ(close_code_for({close_reason::protocol_error, {}, "", 0}), 1002);
  EXPECT_EQ(close_code_for({close_reason::limit_reached, {}, "", 0}), 1008);
  EXPECT_EQ(close_code_for({close_reason::error, {}, "", 0}), 1011);
  EXPECT_EQ(close_code_for({close_reason::normal, {}, "", 0}), 1000);
  EXPECT_EQ(close_code_for({close_reason::normal, {}, "", 3999}), 3999);
  EXPECT_EQ(close_code_for({close_reason::normal, {}, "", 1005}), 1000) << "1005 is never sent";
}

// ---- end of input -----------------------------------------------------------------------

TEST(ws_session, eof_inside_a_frame_is_a_truncated_packet) {
  peer p;
  p.start();
  const std::string msg = packet_bytes(100);  // 116 bytes
  const std::string f = wire(opcode::binary, msg);
  p.feed(f.substr(0, f.size() - 66));  // 50 bytes of the packet
  ASSERT_TRUE(p.s->on_eof({}, true, as_bytes(p.in)));
  EXPECT_TRUE(p.s->finished());
  EXPECT_EQ(p.s->outcome().detail, "truncated packet: 50 of 116 bytes");
  EXPECT_EQ(p.s->outcome().reason, close_reason::peer_closed);
  EXPECT_EQ(p.s->outcome().transport_code, 1006);
}

TEST(ws_session, eof_inside_a_fragmented_message_is_a_truncated_packet) {
  peer p;
  p.start();
  p.feed(wire(opcode::binary, packet_bytes(100).substr(0, 10), role::server, false));
  ASSERT_TRUE(p.s->on_eof({}, true, as_bytes(p.in)));
  EXPECT_EQ(p.s->outcome().detail, "truncated packet: 10 of at least 16 bytes");
}

TEST(ws_session, eof_between_messages_is_a_drop_and_while_closing_the_end) {
  peer p;
  p.start();
  p.feed(wire(opcode::binary, "whole"));
  EXPECT_FALSE(p.s->on_eof({}, true, as_bytes(p.in)));
  EXPECT_EQ(p.s->outcome().detail, "the peer dropped the connection without a close frame");
  EXPECT_EQ(p.s->outcome().transport_code, 1006);

  peer q;
  q.start();
  q.s->close({close_reason::shutdown, {}, "", 0}, t0);
  EXPECT_FALSE(q.s->on_eof({}, true, {}));
  EXPECT_TRUE(q.s->finished());
  EXPECT_EQ(q.s->outcome().reason, close_reason::shutdown) << "the close we began is what is reported";
}

TEST(ws_session, write_failure_ends_it) {
  peer p;
  p.start();
  p.s->on_write_failed(std::make_error_code(std::errc::broken_pipe));
  EXPECT_TRUE(p.s->finished());
  EXPECT_EQ(p.s->outcome().reason, close_reason::error);
  EXPECT_NE(p.s->outcome().detail.find("write failed"), std::string::npos);
}

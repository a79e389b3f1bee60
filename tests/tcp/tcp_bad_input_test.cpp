// Bad input from raw sockets: each offender is closed with a reason, memory stays
// bounded, and every other connection keeps working.
#include "support/test_support.hpp"

#include <random>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

struct fixture {
  waiter w;
  std::vector<close_info> closes;
  server s = server_builder{}
                 .listen(tcp_server_config{"127.0.0.1:0"})
                 .threads(2)
                 .on_request([](request& r) { r.respond(r.payload); })
                 .on_closed([this](session_id, const close_info& i) { w.update([&] { closes.push_back(i); }); })
                 .build();
  client good;
  fixture() : good(client_builder{}.connect_to(tcp_client_config{"127.0.0.1:1"}).build()) {
    EXPECT_FALSE(s.start());
    good = client_builder{}.connect_to(tcp_client_config{address_of(s)}).build();
    EXPECT_FALSE(good.connect());
  }
  close_info expect_closed(raw_peer& p) {
    EXPECT_TRUE(p.wait_closed());
    EXPECT_TRUE(w.wait([&] { return !closes.empty(); }));
    std::lock_guard lock(w.mutex());
    return closes.empty() ? close_info{} : closes.back();
  }
  void good_still_works() {
    auto r = good.call(as_bytes("alive?"));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(as_string(r->payload), "alive?");
  }
};

byte_buffer with_byte(std::size_t offset, std::uint8_t value) {
  auto b = encode_packet(packet_type::request, 1, "x");
  b[offset] = std::byte(value);
  return b;
}

}  // namespace

TEST(TcpBadInput, Version2) {
  fixture f;
  raw_peer p(address_of(f.s));
  p.write(with_byte(0, 2));
  auto c = f.expect_closed(p);
  EXPECT_EQ(c.reason, close_reason::protocol_error);
  EXPECT_EQ(c.error, errc::bad_version);
  EXPECT_NE(c.detail.find("version"), std::string::npos) << c.detail;
  f.good_still_works();
}

TEST(TcpBadInput, UnknownPacketType) {
  fixture f;
  raw_peer p(address_of(f.s));
  p.write(with_byte(2, 7));
  auto c = f.expect_closed(p);
  EXPECT_EQ(c.error, errc::bad_packet_type);
  f.good_still_works();
}

TEST(TcpBadInput, UnknownCompression) {
  fixture f;
  raw_peer p(address_of(f.s));
  p.write(with_byte(1, 9));
  auto c = f.expect_closed(p);
  EXPECT_EQ(c.error, errc::bad_compression);
  f.good_still_works();
}

TEST(TcpBadInput, OverLimitLengthClosedFromHeaderAlone) {
  fixture f;
  raw_peer p(address_of(f.s));
  // Declares a 1 GiB payload and sends only the header: rejected with no body buffered.
  packet_header h;
  h.payload_len = 1u << 30;
  std::byte hdr[header_size];
  encode_header(h, hdr);
  p.write(bytes_view(hdr, header_size));
  auto c = f.expect_closed(p);
  EXPECT_EQ(c.error, errc::message_too_large);
  f.good_still_works();
}

TEST(TcpBadInput, CorruptCompressedPayload) {
  fixture f;
  raw_peer p(address_of(f.s));
  auto b = encode_packet(packet_type::one_way, 1, "definitely not zstd");
  b[1] = std::byte(1);  // claims zstd
  p.write(b);
  auto c = f.expect_closed(p);
  EXPECT_EQ(c.error, errc::decompress_failed);
  f.good_still_works();
}

TEST(TcpBadInput, RandomGarbage) {
  fixture f;
  std::mt19937 rng(1234);
  for (int round = 0; round < 5; ++round) {
    raw_peer p(address_of(f.s));
    byte_buffer junk(4096);
    for (auto& b : junk) b = std::byte(rng());
    junk[0] = std::byte(0x47);  // never a valid version
    p.write(junk);
    EXPECT_TRUE(p.wait_closed());
  }
  EXPECT_TRUE(f.w.wait([&] { return f.closes.size() == 5; }));
  for (auto& c : f.closes) EXPECT_EQ(c.reason, close_reason::protocol_error);
  f.good_still_works();
  EXPECT_EQ(f.s.stats().protocol_errors, 5u);
}

TEST(TcpBadInput, HalfOpenPeerThatNeverSendsIsClosed) {
  session_options o;
  o.first_packet_timeout = 300ms;
  waiter w;
  std::optional<close_info> closed;
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .options(o)
               .on_request([](request& r) { r.respond(r.payload); })
               .on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); })
               .build();
  ASSERT_FALSE(s.start());
  raw_peer silent(address_of(s));
  client c = client_builder{}.connect_to(tcp_client_config{address_of(s)}).build();
  ASSERT_FALSE(c.connect());
  EXPECT_TRUE(c.call(as_bytes("x")));  // the active client's first packet came in time
  EXPECT_TRUE(silent.wait_closed());
  ASSERT_TRUE(w.wait([&] { return closed.has_value(); }));
  EXPECT_EQ(closed->reason, close_reason::handshake_timeout);
  EXPECT_TRUE(c.call(as_bytes("still")));
}

TEST(TcpBadInput, TruncatedPacketThenCloseIsPeerClosed) {
  fixture f;
  {
    raw_peer p(address_of(f.s));
    auto b = encode_packet(packet_type::one_way, 1, "0123456789");
    p.write(bytes_view(b).first(20));  // header + part of the body, then gone
  }
  ASSERT_TRUE(f.w.wait([&] { return !f.closes.empty(); }));
  EXPECT_EQ(f.closes[0].reason, close_reason::peer_closed);
  f.good_still_works();
}

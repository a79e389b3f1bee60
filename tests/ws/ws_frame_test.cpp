// RFC 6455 framing without sockets: headers, masking, close frames, UTF-8, handshake keys.
#include "ws/ws_frame.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace msgtrans;
using namespace msgtrans::ws;

namespace {

std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}

}  // namespace

TEST(ws_frame, rfc_accept_key_example) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(ws_frame, client_keys_are_valid_and_fresh) {
  auto a = make_client_key(), b = make_client_key();
  EXPECT_TRUE(is_valid_client_key(a));
  EXPECT_NE(a, b);
  EXPECT_TRUE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZR=="));  // non-zero pad bits
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25j*Q=="));
}

TEST(ws_frame, header_round_trip_all_length_forms) {
  for (std::uint64_t len : {0ull, 125ull, 126ull, 65535ull, 65536ull, 1ull << 33}) {
    for (bool masked : {false, true}) {
      std::byte buf[max_header_size];
      const std::uint8_t mask[4] = {1, 2, 3, 4};
      auto n = encode_frame_header(buf, opcode::binary, len, masked ? mask : nullptr);
      EXPECT_EQ(n, frame_header_size(len, masked));
      auto r = parse_frame_header({buf, n}, masked ? role::server : role::client, ~0ull >> 1);
      ASSERT_EQ(r.status, parse_result::ok) << len;
      EXPECT_EQ(r.header.payload_len, len);
      EXPECT_EQ(r.header.header_len, n);
      EXPECT_TRUE(r.header.fin);
      EXPECT_EQ(r.header.op, opcode::binary);
      // Every shorter prefix asks for more.
      for (std::size_t k = 0; k < n; ++k)
        EXPECT_EQ(parse_frame_header({buf, k}, masked ? role::server : role::client, ~0ull >> 1).status,
                  parse_result::need_more);
    }
  }
}

TEST(ws_frame, rejects_what_the_rfc_forbids) {
  auto check = [](std::vector<std::byte> b, role r, std::uint16_t code) {
    auto res = parse_frame_header(b, r, 1000);
    EXPECT_EQ(res.status, parse_result::fail);
    EXPECT_EQ(res.close_code, code);
  };
  check(bytes({0xC2, 0x80, 0, 0, 0, 0}), role::server, close_code::protocol_error);  // RSV1
  check(bytes({0x83, 0x80, 0, 0, 0, 0}), role::server, close_code::protocol_error);  // opcode 3
  check(bytes({0x8B, 0x80, 0, 0, 0, 0}), role::server, close_code::protocol_error);  // opcode 0xB
  check(bytes({0x82, 0x00}), role::server, close_code::protocol_error);              // unmasked from client
  check(bytes({0x82, 0x80, 0, 0, 0, 0}), role::client, close_code::protocol_error);  // masked from server
  check(bytes({0x09, 0x80, 0, 0, 0, 0}), role::server, close_code::protocol_error);  // fragmented ping
  check(bytes({0x89, 0xFE, 0, 126}), role::server, close_code::protocol_error);      // ping over 125
  check(bytes({0x82, 0xFE, 0x03, 0xE9}), role::server, close_code::too_big);         // 1001 > 1000, no body yet
  check(bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}), role::server, close_code::protocol_error);
}

TEST(ws_frame, mask_is_an_involution_at_any_offset) {
  std::vector<std::byte> data(1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7);
  auto orig = data;
  std::array<std::uint8_t, 4> m{0xDE, 0xAD, 0xBE, 0xEF};
  apply_mask(data.data(), data.size(), m);
  for (std::size_t i = 0; i < data.size(); ++i)
    ASSERT_EQ(data[i], orig[i] ^ static_cast<std::byte>(m[i & 3]));
  // Unmasking in two pieces with the right offset restores it.
  apply_mask(data.data(), 13, m);
  apply_mask(data.data() + 13, data.size() - 13, m, 13);
  EXPECT_EQ(data, orig);
}

TEST(ws_frame, close_payloads) {
  auto c = parse_close_payload({});
  EXPECT_EQ(c.code, close_code::no_status);
  EXPECT_EQ(c.error, 0);
  EXPECT_EQ(parse_close_payload(bytes({3})).error, close_code::protocol_error);
  EXPECT_EQ(parse_close_payload(bytes({0x03, 0xED})).error, close_code::protocol_error);  // 1005
  EXPECT_EQ(parse_close_payload(bytes({0x03, 0xEE})).error, close_code::protocol_error);  // 1006
  EXPECT_EQ(parse_close_payload(bytes({0x03, 0xE8, 0xC0, 0x80})).error, close_code::invalid_payload);
  auto bye = bytes({0x0F, 0xA0, 'b', 'y', 'e'});  // 4000 "bye"
  auto ok = parse_close_payload(bye);
  EXPECT_EQ(ok.error, 0);
  EXPECT_EQ(ok.code, 4000);
  EXPECT_EQ(ok.reason, "bye");

  std::byte out[max_control_payload];
  std::string long_reason(200, 'x');
  long_reason[122] = '\xC3';  // a 2-byte character straddling the 123-byte cut
  long_reason[123] = '\xA9';
  auto n = encode_close_payload(out, 1009, long_reason);
  EXPECT_LE(n, max_control_payload);
  auto back = parse_close_payload({out, n});
  EXPECT_EQ(back.error, 0);
  EXPECT_EQ(back.code, 1009);
  EXPECT_EQ(back.reason.size(), 122u);
}

TEST(ws_frame, utf8) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
}

TEST(ws_frame, mask_keys_differ) {
  mask_source s;
  auto a = s.next();
  bool differs = false;
  for (int i = 0; i < 200; ++i) differs |= s.next() != a;
  EXPECT_TRUE(differs);
}

// Packet codec (src/core/packet.cpp): header fields, receiver rules, limits, flags,
// encode_to / decode_view and the owning encode / decode.
#include <msgtrans/error.hpp>
#include <msgtrans/packet.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

namespace msgtrans {
namespace {

using test::bytes;
using test::raw_header;
using test::raw_packet;

TEST(PacketHeader, DecodesEveryFieldBigEndian) {
  auto h = decode_header(raw_header(1, 2, 1, 0xAB, 0x01020304, 0x0506, 0x0708090A, 0xF00F),
                         decode_limits{0xFFFFFFFFFFull, 0xFFFF});
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->version, 1);
  EXPECT_EQ(h->compression, compression::zlib);
  EXPECT_EQ(h->type, packet_type::request);
  EXPECT_EQ(h->biz_type, 0xAB);
  EXPECT_EQ(h->message_id, 0x01020304u);
  EXPECT_EQ(h->ext_header_len, 0x0506);
  EXPECT_EQ(h->payload_len, 0x0708090Au);
  EXPECT_EQ(h->flags, 0xF00F);
  EXPECT_EQ(h->total_size(), 16u + 0x0506 + 0x0708090A);
}

TEST(PacketHeader, EncodeHeaderMatchesHandWrittenBytes) {
  packet_header h;
  h.compression = compression::zstd;
  h.type = packet_type::response;
  h.biz_type = 7;
  h.message_id = 0xDEADBEEF;
  h.ext_header_len = 0x1234;
  h.payload_len = 0x89ABCDEF;
  h.flags = 0x8006;
  byte_buffer out(16);
  encode_header(h, out.data());
  EXPECT_EQ(out, raw_header(1, 1, 2, 7, 0xDEADBEEF, 0x1234, 0x89ABCDEF, 0x8006));
}

TEST(PacketHeader, TotalSizeDoesNotOverflowAtProtocolMaxima) {
  packet_header h;
  h.ext_header_len = 0xFFFF;
  h.payload_len = 0xFFFFFFFF;
  EXPECT_EQ(h.total_size(), 16ull + 0xFFFF + 0xFFFFFFFFull);
}

TEST(PacketDecode, ShortHeaderForEveryLengthBelow16) {
  auto full = raw_packet(0, 1, "", "");
  for (std::size_t n = 0; n < 16; ++n) {
    EXPECT_EQ(decode_view(bytes_view(full).first(n)).error(), errc::short_header) << n;
    EXPECT_EQ(decode_header(bytes_view(full).first(n)).error(), errc::short_header) << n;
    EXPECT_EQ(decode(bytes_view(full).first(n)).error(), errc::short_header) << n;
  }
  EXPECT_TRUE(decode_view(full));
}

TEST(PacketDecode, VersionOtherThanOneIsRejected) {
  for (std::uint8_t v : {0, 2, 255}) {
    auto p = raw_packet(0, 1, "", "x");
    p[0] = std::byte(v);
    EXPECT_EQ(decode_view(p).error(), errc::bad_version) << int(v);
  }
}

TEST(PacketDecode, UnknownCompressionIsRejected) {
  for (std::uint8_t c : {3, 4, 255}) {
    auto p = raw_packet(0, 1, "", "x");
    p[1] = std::byte(c);
    EXPECT_EQ(decode_view(p).error(), errc::bad_compression) << int(c);
  }
}

TEST(PacketDecode, UnknownPacketTypeIsRejected) {
  for (std::uint8_t t : {3, 4, 255}) {
    auto p = raw_packet(0, 1, "", "x");
    p[2] = std::byte(t);
    EXPECT_EQ(decode_view(p).error(), errc::bad_packet_type) << int(t);
  }
}

TEST(PacketDecode, TruncatedBodyIsRejected) {
  auto p = raw_packet(1, 9, "ext", "payload");
  for (std::size_t n = 16; n < p.size(); ++n)
    EXPECT_EQ(decode_view(bytes_view(p).first(n)).error(), errc::truncated) << n;
  EXPECT_TRUE(decode_view(p));
}

TEST(PacketDecode, TrailingBytesAreRejected) {
  auto p = raw_packet(0, 1, "e", "p");
  p.push_back(std::byte{0});
  EXPECT_EQ(decode_view(p).error(), errc::trailing_bytes);
  EXPECT_EQ(decode(p).error(), errc::trailing_bytes);
}

TEST(PacketDecode, ExtHeaderOverLimitIsRejectedFromTheHeaderAlone) {
  // Only the 16 header bytes are present: the limit must win over "truncated".
  auto h = raw_header(1, 0, 0, 0, 1, 4097, 0, 0);
  EXPECT_EQ(decode_view(h).error(), errc::ext_header_too_large);
  EXPECT_EQ(decode_header(h).error(), errc::ext_header_too_large);
  // Exactly at the default limit is fine.
  auto ok = raw_packet(0, 1, std::string(default_max_ext_header, 'e'), "");
  EXPECT_TRUE(decode_view(ok));
  // A custom limit applies.
  EXPECT_EQ(decode_view(raw_packet(0, 1, "abcd", ""), decode_limits{1024, 3}).error(), errc::ext_header_too_large);
}

TEST(PacketDecode, MessageOverLimitIsRejectedFromTheHeaderAlone) {
  auto h = raw_header(1, 0, 0, 0, 1, 0, 0xFFFFFFFF, 0);
  EXPECT_EQ(decode_view(h).error(), errc::message_too_large);
  EXPECT_EQ(decode_header(h).error(), errc::message_too_large);
  // The limit counts the whole packet: header + ext header + payload.
  decode_limits limits{100, 4096};
  EXPECT_TRUE(decode_view(raw_packet(0, 1, "1234567890", std::string(74, 'p')), limits));
  EXPECT_EQ(decode_view(raw_packet(0, 1, "1234567890", std::string(75, 'p')), limits).error(),
            errc::message_too_large);
}

TEST(PacketDecode, ViewPointsIntoTheInputWithoutCopying) {
  auto p = raw_packet(2, 77, "route:x", "body", flags::has_route_tag, 3);
  auto v = decode_view(p);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->header.type, packet_type::response);
  EXPECT_EQ(v->header.message_id, 77u);
  EXPECT_EQ(v->header.biz_type, 3);
  EXPECT_EQ(v->ext_header.data(), p.data() + 16);
  EXPECT_EQ(as_string(v->ext_header), "route:x");
  EXPECT_EQ(v->payload.data(), p.data() + 16 + 7);
  EXPECT_EQ(as_string(v->payload), "body");
  EXPECT_TRUE(v->header.has_flag(flags::has_route_tag));
  EXPECT_FALSE(v->header.has_flag(flags::high_priority));
}

TEST(PacketFlags, UnknownBitsAreKeptThroughDecodeAndReencode) {
  for (std::uint16_t f : {0x0008, 0x8000, 0xFFF8, 0xFFFF, 0x0001}) {
    auto wire = raw_packet(0, 5, "x", "y", f);
    auto v = decode_view(wire);
    ASSERT_TRUE(v) << f;
    EXPECT_EQ(v->header.flags, f);
    byte_buffer again(encoded_size(*v));
    ASSERT_TRUE(encode_to(*v, again));
    EXPECT_EQ(again, wire);

    auto p = decode(wire);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->flags, f);
    auto re = encode(*p);
    ASSERT_TRUE(re);
    EXPECT_EQ(*re, wire);
  }
}

TEST(PacketEncode, EncodeToWritesLengthsFromTheSpansAndReturnsTheSize) {
  packet_view v;
  v.header.type = packet_type::request;
  v.header.message_id = 42;
  v.header.ext_header_len = 999;  // ignored: the spans decide
  v.header.payload_len = 999;
  auto ext = bytes("ab");
  auto pay = bytes("hello");
  v.ext_header = ext;
  v.payload = pay;
  EXPECT_EQ(encoded_size(v), 23u);
  byte_buffer out(64, std::byte{0xEE});
  auto n = encode_to(v, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 23u);
  out.resize(*n);
  EXPECT_EQ(out, raw_packet(1, 42, "ab", "hello"));
}

TEST(PacketEncode, EncodeToRefusesTooSmallOutput) {
  packet_view v;
  auto pay = bytes("hello");
  v.payload = pay;
  byte_buffer out(20);
  EXPECT_EQ(encode_to(v, out).error(), errc::invalid_argument);
  out.resize(21);
  EXPECT_TRUE(encode_to(v, out));
}

TEST(PacketEncode, EncodeToRefusesAnExtHeaderOver65535) {
  packet_view v;
  byte_buffer ext(65536);
  v.ext_header = ext;
  byte_buffer out(70000);
  EXPECT_EQ(encode_to(v, out).error(), errc::invalid_argument);
  v.ext_header = bytes_view(ext).first(65535);
  EXPECT_TRUE(encode_to(v, out));
}

TEST(PacketEncode, EncodeToRefusesHeadersAReceiverWouldReject) {
  byte_buffer out(64);
  packet_view v;
  v.header.version = 2;
  EXPECT_EQ(encode_to(v, out).error(), errc::invalid_argument);
  v.header.version = 1;
  v.header.compression = static_cast<compression>(3);
  EXPECT_EQ(encode_to(v, out).error(), errc::invalid_argument);
  v.header.compression = compression::none;
  v.header.type = static_cast<packet_type>(3);
  EXPECT_EQ(encode_to(v, out).error(), errc::invalid_argument);
  packet p;
  p.type = static_cast<packet_type>(9);
  EXPECT_EQ(encode(p).error(), errc::invalid_argument);
  p.type = packet_type::one_way;
  p.compression = compression::zstd;
  p.ext_header.resize(65536);
  EXPECT_EQ(encode(p).error(), errc::invalid_argument);
}

TEST(PacketOwning, ConstructorsSetTypeIdAndBizType) {
  auto o = packet::one_way(1, as_bytes("a"), 9);
  auto q = packet::request(2, as_bytes("b"));
  auto r = packet::response(2, as_bytes("c"), 255);
  EXPECT_EQ(o.type, packet_type::one_way);
  EXPECT_EQ(o.biz_type, 9);
  EXPECT_EQ(as_string(o.payload), "a");
  EXPECT_EQ(q.type, packet_type::request);
  EXPECT_EQ(q.message_id, 2u);
  EXPECT_EQ(q.biz_type, 0);
  EXPECT_EQ(r.type, packet_type::response);
  EXPECT_EQ(r.biz_type, 255);
  EXPECT_EQ(r.compression, compression::none);
  EXPECT_TRUE(r.ext_header.empty());
}

TEST(PacketOwning, RoundTripsWithEachCompression) {
  for (auto c : {compression::none, compression::zstd, compression::zlib}) {
    auto p = packet::request(123, as_bytes(std::string(3000, 'z') + "tail"), 17);
    p.ext_header = bytes("trace:abc");
    p.flags = flags::high_priority | 0x0100;
    p.compression = c;
    auto wire = encode(p);
    ASSERT_TRUE(wire) << int(c);
    auto v = decode_view(*wire);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->header.compression, c);
    // The extension header is never compressed.
    EXPECT_EQ(as_string(v->ext_header), "trace:abc");
    if (c != compression::none) {
      EXPECT_LT(v->payload.size(), p.payload.size());
    }
    auto back = decode(*wire);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(*back, p);
  }
}

TEST(PacketOwning, CompressedPayloadIsBoundedByTheMessageLimit) {
  auto p = packet::one_way(1, as_bytes(std::string(10000, 'a')));
  p.compression = compression::zstd;
  auto wire = encode(p);
  ASSERT_TRUE(wire);
  ASSERT_LT(wire->size(), 1000u);
  EXPECT_EQ(decode(*wire, decode_limits{1000, 64}).error(), errc::decompressed_too_large);
  EXPECT_TRUE(decode(*wire, decode_limits{10000, 64}));
}

TEST(PacketOwning, CorruptCompressedPayloadFails) {
  for (auto c : {compression::zstd, compression::zlib}) {
    auto wire = raw_packet(0, 1, "", "this is not compressed data");
    wire[1] = std::byte(static_cast<std::uint8_t>(c));
    EXPECT_EQ(decode(wire).error(), errc::decompress_failed) << int(c);
    EXPECT_TRUE(decode_view(wire));  // the view does not look inside the payload
  }
}

}  // namespace
}  // namespace msgtrans

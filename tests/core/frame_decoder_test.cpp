// Frame decoder (src/core/frame_decoder.cpp), both framings: any chunking yields the same
// packets; limits are enforced from the header before the body is buffered; every error.
#include <msgtrans/error.hpp>
#include <msgtrans/frame_decoder.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "support.hpp"

namespace msgtrans {
namespace {

using test::append;
using test::append_u32;
using test::raw_header;
using test::raw_packet;

constexpr std::size_t MiB = 1024 * 1024;

std::string name_of(stream_framing f) { return f == stream_framing::tcp ? "tcp" : "length_prefixed"; }

// Puts one packet on the stream in the given framing.
void frame(byte_buffer& stream, stream_framing f, bytes_view pkt) {
  if (f == stream_framing::length_prefixed) append_u32(stream, static_cast<std::uint32_t>(pkt.size()));
  append(stream, pkt);
}

std::vector<byte_buffer> sample_packets() {
  return {
      raw_packet(0, 1, "", ""),
      raw_packet(1, 2, "", "ping"),
      raw_packet(2, 2, "route:abc", "pong", flags::has_route_tag, 9),
      raw_packet(0, 0xFFFFFFFF, "", std::string(37, 'q'), 0xFFF8, 255),
      raw_packet(1, 5, "e", "", flags::high_priority),
  };
}

struct collector {
  std::vector<byte_buffer> packets;
  auto sink() {
    return [this](bytes_view p) { packets.emplace_back(p.begin(), p.end()); };
  }
};

class FrameDecoder : public ::testing::TestWithParam<stream_framing> {
 protected:
  stream_framing framing() const { return GetParam(); }
  byte_buffer stream_of(const std::vector<byte_buffer>& pkts) const {
    byte_buffer s;
    for (const auto& p : pkts) frame(s, framing(), p);
    return s;
  }
};

TEST_P(FrameDecoder, WholeStreamInOneChunk) {
  const auto pkts = sample_packets();
  frame_decoder d(framing());
  collector c;
  EXPECT_FALSE(d.feed(stream_of(pkts), c.sink()));
  EXPECT_EQ(c.packets, pkts);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST_P(FrameDecoder, EverySplitPointYieldsTheSamePackets) {
  const auto pkts = sample_packets();
  const auto s = stream_of(pkts);
  for (std::size_t i = 0; i <= s.size(); ++i) {
    frame_decoder d(framing());
    collector c;
    ASSERT_FALSE(d.feed(bytes_view(s).first(i), c.sink())) << i;
    ASSERT_FALSE(d.feed(bytes_view(s).subspan(i), c.sink())) << i;
    ASSERT_EQ(c.packets, pkts) << "split at " << i;
    ASSERT_EQ(d.buffered(), 0u);
  }
}

TEST_P(FrameDecoder, EveryPairOfSplitPointsYieldsTheSamePackets) {
  const auto pkts = sample_packets();
  const auto s = stream_of(pkts);
  for (std::size_t i = 0; i <= s.size(); ++i) {
    for (std::size_t j = i; j <= s.size(); ++j) {
      frame_decoder d(framing());
      collector c;
      ASSERT_FALSE(d.feed(bytes_view(s).first(i), c.sink()));
      ASSERT_FALSE(d.feed(bytes_view(s).subspan(i, j - i), c.sink()));
      ASSERT_FALSE(d.feed(bytes_view(s).subspan(j), c.sink()));
      ASSERT_EQ(c.packets, pkts) << "splits at " << i << ", " << j;
    }
  }
}

TEST_P(FrameDecoder, ByteByByte) {
  const auto pkts = sample_packets();
  const auto s = stream_of(pkts);
  frame_decoder d(framing());
  collector c;
  for (std::size_t i = 0; i < s.size(); ++i) {
    ASSERT_FALSE(d.feed(bytes_view(s).subspan(i, 1), c.sink()));
    EXPECT_LE(d.buffered(), 16u + 4 + 64) << "only the packet being assembled is held";
  }
  EXPECT_EQ(c.packets, pkts);
}

TEST_P(FrameDecoder, RandomChunksOfLargePacketsThroughPrepareAndCommit) {
  std::vector<byte_buffer> pkts;
  std::mt19937 rng(42);
  for (int i = 0; i < 30; ++i) {
    const std::size_t n = i % 5 == 0 ? 200000 + rng() % 1000 : rng() % 3000;
    std::string payload(n, '\0');
    for (auto& ch : payload) ch = static_cast<char>(rng());
    pkts.push_back(raw_packet(static_cast<std::uint8_t>(i % 3), static_cast<std::uint32_t>(i + 1),
                              std::string(rng() % 50, 'e'), payload));
  }
  const auto s = stream_of(pkts);
  frame_decoder d(framing());
  collector c;
  for (std::size_t off = 0; off < s.size();) {
    // The zero-copy path a transport uses: read straight into prepare()'s span.
    auto space = d.prepare(1 + rng() % 70000);
    const std::size_t n = std::min({space.size(), s.size() - off, std::size_t{1} + rng() % 90000});
    std::memcpy(space.data(), s.data() + off, n);
    d.commit(n);
    off += n;
    ASSERT_FALSE(d.drain(c.sink()));
  }
  EXPECT_EQ(c.packets, pkts);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST_P(FrameDecoder, CallbackCanStopEarlyAndResume) {
  const auto pkts = sample_packets();
  frame_decoder d(framing());
  std::vector<byte_buffer> got;
  auto one = [&](bytes_view p) {
    got.emplace_back(p.begin(), p.end());
    return false;
  };
  ASSERT_FALSE(d.feed(stream_of(pkts), one));
  EXPECT_EQ(got.size(), 1u);
  EXPECT_GT(d.buffered(), 0u);
  while (d.buffered() > 0) ASSERT_FALSE(d.drain(one));
  EXPECT_EQ(got, pkts);
}

TEST_P(FrameDecoder, OverLimitHeaderIsRejectedBeforeTheBodyArrives) {
  byte_buffer s;
  if (framing() == stream_framing::length_prefixed) append_u32(s, 0xFFFFFFFF);
  else append(s, raw_header(1, 0, 0, 0, 1, 0, 0xFFFFFFF0, 0));
  frame_decoder d(framing());
  collector c;
  // Byte by byte: the error must come as soon as the length is known, with only the
  // header's bytes in memory.
  std::error_code ec;
  std::size_t fed = 0;
  while (!ec && fed < s.size()) ec = d.feed(bytes_view(s).subspan(fed++, 1), c.sink());
  EXPECT_EQ(ec, errc::message_too_large);
  EXPECT_EQ(fed, s.size());
  EXPECT_LE(d.capacity(), 64u);
  EXPECT_TRUE(c.packets.empty());
}

TEST_P(FrameDecoder, ExtHeaderOverLimitIsRejectedFromTheHeader) {
  auto h = raw_header(1, 0, 0, 0, 1, 5000, 0, 0);
  byte_buffer s;
  if (framing() == stream_framing::length_prefixed) append_u32(s, 16 + 5000);
  append(s, h);
  frame_decoder d(framing());
  collector c;
  EXPECT_EQ(d.feed(s, c.sink()), errc::ext_header_too_large);
  EXPECT_LE(d.capacity(), 64u);
}

TEST_P(FrameDecoder, ConfiguredMessageLimitApplies) {
  decode_limits limits{100, 4096};
  frame_decoder ok(framing(), limits), bad(framing(), limits);
  collector c;
  byte_buffer s1, s2;
  frame(s1, framing(), raw_packet(0, 1, "", std::string(84, 'x')));  // exactly 100
  frame(s2, framing(), raw_packet(0, 1, "", std::string(85, 'x')));
  EXPECT_FALSE(ok.feed(s1, c.sink()));
  EXPECT_EQ(c.packets.size(), 1u);
  EXPECT_EQ(bad.feed(bytes_view(s2).first(20), c.sink()), errc::message_too_large);
}

TEST_P(FrameDecoder, EachHeaderErrorIsReported) {
  struct bad_case {
    int byte;
    std::uint8_t value;
    errc expected;
  } cases[] = {
      {0, 0, errc::bad_version},     {0, 2, errc::bad_version},     {1, 3, errc::bad_compression},
      {1, 0xFF, errc::bad_compression}, {2, 3, errc::bad_packet_type}, {2, 0x80, errc::bad_packet_type},
  };
  for (const auto& bc : cases) {
    auto good = raw_packet(1, 1, "", "good");
    auto bad = raw_packet(1, 2, "", "bad");
    bad[bc.byte] = std::byte(bc.value);
    byte_buffer s;
    frame(s, framing(), good);
    frame(s, framing(), bad);
    frame(s, framing(), good);
    frame_decoder d(framing());
    collector c;
    EXPECT_EQ(d.feed(s, c.sink()), bc.expected) << bc.byte << "=" << int(bc.value);
    // Packets before the error are delivered; nothing after it, ever.
    ASSERT_EQ(c.packets.size(), 1u);
    EXPECT_EQ(c.packets[0], good);
    EXPECT_EQ(d.error(), bc.expected);
    EXPECT_EQ(d.feed(good, c.sink()), bc.expected) << "a failed decoder stays failed";
    EXPECT_EQ(d.drain(c.sink()), bc.expected);
    EXPECT_EQ(c.packets.size(), 1u);
  }
}

TEST_P(FrameDecoder, ShrinkDropsMemoryOnlyWhenIdle) {
  frame_decoder d(framing());
  collector c;
  byte_buffer s;
  frame(s, framing(), raw_packet(0, 1, "", std::string(1000, 'x')));
  ASSERT_FALSE(d.feed(bytes_view(s).first(100), c.sink()));
  d.shrink();
  EXPECT_GT(d.capacity(), 0u);
  EXPECT_EQ(d.buffered(), 100u);
  ASSERT_FALSE(d.feed(bytes_view(s).subspan(100), c.sink()));
  EXPECT_EQ(c.packets.size(), 1u);
  d.shrink();
  EXPECT_EQ(d.capacity(), 0u);
  ASSERT_FALSE(d.feed(s, c.sink()));
  EXPECT_EQ(c.packets.size(), 2u);
}

// A header announcing a large frame reserves memory only in step with the bytes that
// actually arrive (at most four times ahead), and a large frame costs a few allocations.
TEST_P(FrameDecoder, MemoryFollowsTheBytesReceivedNotTheAnnouncedSize) {
  frame_decoder d(framing(), decode_limits{16 * MiB, 4096});
  collector c;
  byte_buffer s;
  frame(s, framing(), raw_packet(0, 1, "", std::string(8 * MiB, 'x')));
  ASSERT_FALSE(d.feed(bytes_view(s).first(64), c.sink()));  // the header, and nothing more
  EXPECT_LE(d.capacity(), 4096u);
  std::size_t off = 64, grows = 0, last_cap = d.capacity();
  while (off < s.size()) {
    const std::size_t n = std::min<std::size_t>(1400, s.size() - off);
    auto space = d.prepare(n);
    std::memcpy(space.data(), s.data() + off, n);
    d.commit(n);
    off += n;
    EXPECT_LE(d.capacity(), 4 * off + 4 * 16384) << "at " << off;
    if (d.capacity() != last_cap) ++grows, last_cap = d.capacity();
    ASSERT_FALSE(d.drain(c.sink()));
  }
  ASSERT_EQ(c.packets.size(), 1u);
  EXPECT_LE(grows, 8u);
}

INSTANTIATE_TEST_SUITE_P(Both, FrameDecoder,
                         ::testing::Values(stream_framing::tcp, stream_framing::length_prefixed),
                         [](const auto& info) { return name_of(info.param); });

// Length-prefixed (QUIC) framing only.

TEST(LengthPrefixed, ExactlySixteenMiBIsAccepted) {
  const std::size_t total = 16 * MiB;
  byte_buffer s;
  append_u32(s, static_cast<std::uint32_t>(total));
  append(s, raw_header(1, 0, 0, 0, 1, 0, static_cast<std::uint32_t>(total - 16), 0));
  s.resize(4 + total, std::byte{0x61});
  frame_decoder d(stream_framing::length_prefixed);
  std::size_t got = 0;
  for (std::size_t off = 0; off < s.size(); off += 1 * MiB + 7) {
    const std::size_t n = std::min(s.size() - off, 1 * MiB + 7);
    ASSERT_FALSE(d.feed(bytes_view(s).subspan(off, n), [&](bytes_view p) { got = p.size(); }));
  }
  EXPECT_EQ(got, total);
}

TEST(LengthPrefixed, OverSixteenMiBIsRejectedFromThePrefixEvenWithHigherLimits) {
  frame_decoder d(stream_framing::length_prefixed, decode_limits{64 * MiB, 4096});
  byte_buffer s;
  append_u32(s, static_cast<std::uint32_t>(16 * MiB + 1));
  EXPECT_EQ(d.feed(s, [](bytes_view) {}), errc::message_too_large);
  EXPECT_LE(d.capacity(), 64u);
}

TEST(LengthPrefixed, PrefixLongerThanThePacketIsTrailingBytes) {
  auto pkt = raw_packet(0, 1, "", "abc");
  byte_buffer s;
  append_u32(s, static_cast<std::uint32_t>(pkt.size() + 5));
  append(s, pkt);
  s.resize(s.size() + 5);
  frame_decoder d(stream_framing::length_prefixed);
  // Detected as soon as the packet header is in, before the rest of the frame.
  EXPECT_EQ(d.feed(bytes_view(s).first(20), [](bytes_view) { ADD_FAILURE(); }), errc::trailing_bytes);
}

TEST(LengthPrefixed, PrefixShorterThanThePacketIsTruncated) {
  auto pkt = raw_packet(0, 1, "", "abcdef");
  byte_buffer s;
  append_u32(s, static_cast<std::uint32_t>(pkt.size() - 2));
  append(s, pkt);
  frame_decoder d(stream_framing::length_prefixed);
  EXPECT_EQ(d.feed(s, [](bytes_view) { ADD_FAILURE(); }), errc::truncated);
}

TEST(LengthPrefixed, PrefixBelowHeaderSizeIsShortHeader) {
  for (std::uint32_t len : {0u, 1u, 15u}) {
    byte_buffer s;
    append_u32(s, len);
    frame_decoder d(stream_framing::length_prefixed);
    EXPECT_EQ(d.feed(s, [](bytes_view) { ADD_FAILURE(); }), errc::short_header) << len;
  }
}

TEST(LengthPrefixed, YieldsThePacketWithoutItsPrefix) {
  auto pkt = raw_packet(1, 3, "x", "y");
  byte_buffer s;
  frame(s, stream_framing::length_prefixed, pkt);
  frame_decoder d(stream_framing::length_prefixed);
  collector c;
  ASSERT_FALSE(d.feed(s, c.sink()));
  ASSERT_EQ(c.packets.size(), 1u);
  EXPECT_EQ(c.packets[0], pkt);
  EXPECT_TRUE(decode_view(c.packets[0]));
}

}  // namespace
}  // namespace msgtrans

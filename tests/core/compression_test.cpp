// Payload compression (src/core/compression.cpp): round trips, corrupt input, limits,
// and zip bombs that must fail without the output growing past the limit.
#include <msgtrans/error.hpp>
#include <msgtrans/packet.hpp>

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <random>

#include "support.hpp"

namespace msgtrans {
namespace {

constexpr std::size_t MiB = 1024 * 1024;

// Mixed-entropy data: compressible, but not trivially.
byte_buffer sample(std::size_t n) {
  byte_buffer b(n);
  std::mt19937 rng(static_cast<unsigned>(n));
  for (std::size_t i = 0; i < n; ++i) b[i] = std::byte(i % 7 == 0 ? rng() & 0xFF : 'a' + i % 13);
  return b;
}

// Streams `n` zero bytes through zstd without holding them all; declares the size in the
// frame header only when asked.
byte_buffer zstd_zeros(std::size_t n, bool declare_size) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, declare_size ? 1 : 0);
  if (declare_size) ZSTD_CCtx_setPledgedSrcSize(c, n);
  byte_buffer zeros(MiB), out, tmp(ZSTD_CStreamOutSize());
  for (std::size_t left = n;;) {
    std::size_t take = std::min(left, zeros.size());
    left -= take;
    ZSTD_inBuffer in{zeros.data(), take, 0};
    const auto mode = left == 0 ? ZSTD_e_end : ZSTD_e_continue;
    std::size_t rem;
    do {
      ZSTD_outBuffer o{tmp.data(), tmp.size(), 0};
      rem = ZSTD_compressStream2(c, &o, &in, mode);
      EXPECT_FALSE(ZSTD_isError(rem));
      out.insert(out.end(), tmp.begin(), tmp.begin() + static_cast<std::ptrdiff_t>(o.pos));
    } while (mode == ZSTD_e_end ? rem != 0 : in.pos < in.size);
    if (left == 0) break;
  }
  ZSTD_freeCCtx(c);
  return out;
}

byte_buffer zlib_zeros(std::size_t n) {
  z_stream zs{};
  EXPECT_EQ(deflateInit(&zs, 9), Z_OK);
  byte_buffer zeros(MiB), out, tmp(64 * 1024);
  for (std::size_t left = n;;) {
    std::size_t take = std::min(left, zeros.size());
    left -= take;
    zs.next_in = reinterpret_cast<Bytef*>(zeros.data());
    zs.avail_in = static_cast<uInt>(take);
    const int mode = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    int rc;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(tmp.data());
      zs.avail_out = static_cast<uInt>(tmp.size());
      rc = deflate(&zs, mode);
      out.insert(out.end(), tmp.begin(), tmp.end() - zs.avail_out);
    } while (mode == Z_FINISH ? rc != Z_STREAM_END : zs.avail_in > 0);
    if (left == 0) break;
  }
  deflateEnd(&zs);
  return out;
}

class Compression : public ::testing::TestWithParam<compression> {};

TEST_P(Compression, RoundTripsAtEverySize) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{100}, 64 * std::size_t{1024}, MiB}) {
    auto in = sample(n);
    byte_buffer z;
    ASSERT_FALSE(compress(GetParam(), in, z)) << n;
    if (GetParam() != compression::none) {
      EXPECT_FALSE(z.empty()) << "even empty input has a frame";
    }
    byte_buffer back;
    ASSERT_FALSE(decompress(GetParam(), z, 16 * MiB, back)) << n;
    EXPECT_EQ(back, in) << n;
  }
}

TEST_P(Compression, AppendsAfterExistingBytes) {
  auto in = sample(5000);
  byte_buffer z = test::bytes("prefix");
  ASSERT_FALSE(compress(GetParam(), in, z));
  EXPECT_EQ(as_string(bytes_view(z).first(6)), "prefix");
  byte_buffer back = test::bytes("keep");
  ASSERT_FALSE(decompress(GetParam(), bytes_view(z).subspan(6), 16 * MiB, back));
  EXPECT_EQ(as_string(bytes_view(back).first(4)), "keep");
  EXPECT_EQ(byte_buffer(back.begin() + 4, back.end()), in);
}

TEST_P(Compression, LimitIsInclusive) {
  auto in = sample(70000);
  byte_buffer z;
  ASSERT_FALSE(compress(GetParam(), in, z));
  byte_buffer out;
  EXPECT_FALSE(decompress(GetParam(), z, in.size(), out));
  EXPECT_EQ(out, in);
  out = test::bytes("keep");
  EXPECT_EQ(decompress(GetParam(), z, in.size() - 1, out), errc::decompressed_too_large);
  EXPECT_EQ(out, test::bytes("keep")) << "a failure leaves the output as it was";
}

TEST_P(Compression, EmptyPayloadWithZeroLimit) {
  byte_buffer z, out;
  ASSERT_FALSE(compress(GetParam(), {}, z));
  EXPECT_FALSE(decompress(GetParam(), z, 0, out));
  EXPECT_TRUE(out.empty());
}

INSTANTIATE_TEST_SUITE_P(All, Compression,
                         ::testing::Values(compression::none, compression::zstd, compression::zlib),
                         [](const auto& info) {
                           switch (info.param) {
                             case compression::none: return std::string("none");
                             case compression::zstd: return std::string("zstd");
                             case compression::zlib: return std::string("zlib");
                           }
                           return std::string("unknown");
                         });

class RealCompression : public ::testing::TestWithParam<compression> {};

TEST_P(RealCompression, CorruptInputFails) {
  auto in = sample(10000);
  byte_buffer z;
  ASSERT_FALSE(compress(GetParam(), in, z));
  byte_buffer out = test::bytes("keep");
  // Garbage, empty input, a truncated stream, flipped bytes in the middle, trailing garbage.
  EXPECT_EQ(decompress(GetParam(), as_bytes("definitely not compressed"), MiB, out), errc::decompress_failed);
  EXPECT_EQ(decompress(GetParam(), {}, MiB, out), errc::decompress_failed);
  EXPECT_EQ(decompress(GetParam(), bytes_view(z).first(z.size() - 1), MiB, out), errc::decompress_failed);
  EXPECT_EQ(decompress(GetParam(), bytes_view(z).first(z.size() / 2), MiB, out), errc::decompress_failed);
  auto flipped = z;
  for (std::size_t i = 4; i < flipped.size(); i += 3) flipped[i] ^= std::byte{0x5A};
  EXPECT_EQ(decompress(GetParam(), flipped, MiB, out), errc::decompress_failed);
  auto trailing = z;
  trailing.push_back(std::byte{0x42});
  EXPECT_EQ(decompress(GetParam(), trailing, MiB, out), errc::decompress_failed);
  EXPECT_EQ(out, test::bytes("keep"));
}

TEST_P(RealCompression, TrailingGarbageAfterAStreamEndingExactlyAtTheLimitFails) {
  auto in = sample(1000);
  byte_buffer z;
  ASSERT_FALSE(compress(GetParam(), in, z));
  z.push_back(std::byte{0x42});
  byte_buffer out;
  EXPECT_EQ(decompress(GetParam(), z, in.size(), out), errc::decompress_failed);
  EXPECT_TRUE(out.empty());
}

INSTANTIATE_TEST_SUITE_P(All, RealCompression, ::testing::Values(compression::zstd, compression::zlib),
                         [](const auto& info) {
                           return std::string(info.param == compression::zstd ? "zstd" : "zlib");
                         });

// 100 MiB of zeros against a 16 MiB limit: refused, and the output never grew past 16 MiB.
void expect_bomb_refused(compression c, const byte_buffer& bomb) {
  ASSERT_LT(bomb.size(), MiB) << "the bomb should be small on the wire";
  byte_buffer out;
  EXPECT_EQ(decompress(c, bomb, 16 * MiB, out), errc::decompressed_too_large);
  EXPECT_TRUE(out.empty());
  EXPECT_LE(out.capacity(), 16 * MiB);
}

TEST(ZipBomb, ZstdWithDeclaredSizeIsRefusedUpFront) {
  auto bomb = zstd_zeros(100 * MiB, true);
  ASSERT_EQ(ZSTD_getFrameContentSize(bomb.data(), bomb.size()), 100 * MiB);
  expect_bomb_refused(compression::zstd, bomb);
  // Refused from the frame header: nothing was reserved at all.
  byte_buffer out;
  EXPECT_EQ(decompress(compression::zstd, bomb, 16 * MiB, out), errc::decompressed_too_large);
  EXPECT_EQ(out.capacity(), 0u);
}

TEST(ZipBomb, ZstdWithoutDeclaredSizeStopsAtTheLimit) {
  auto bomb = zstd_zeros(100 * MiB, false);
  ASSERT_EQ(ZSTD_getFrameContentSize(bomb.data(), bomb.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  expect_bomb_refused(compression::zstd, bomb);
}

TEST(ZipBomb, ZlibStopsAtTheLimit) { expect_bomb_refused(compression::zlib, zlib_zeros(100 * MiB)); }

TEST(ZipBomb, JustUnderTheLimitStillDecodes) {
  for (bool declare : {true, false}) {
    auto z = zstd_zeros(2 * MiB, declare);
    byte_buffer out;
    EXPECT_FALSE(decompress(compression::zstd, z, 2 * MiB, out));
    EXPECT_EQ(out.size(), 2 * MiB);
    EXPECT_LE(out.capacity(), 2 * MiB);
    out.clear();
    EXPECT_EQ(decompress(compression::zstd, z, 2 * MiB - 1, out), errc::decompressed_too_large);
  }
  auto z = zlib_zeros(2 * MiB);
  byte_buffer out;
  EXPECT_FALSE(decompress(compression::zlib, z, 2 * MiB, out));
  EXPECT_EQ(out.size(), 2 * MiB);
  EXPECT_LE(out.capacity(), 2 * MiB);
}

TEST(Compression, ConcatenatedZstdFramesDecodeAsOne) {
  byte_buffer z;
  ASSERT_FALSE(compress(compression::zstd, as_bytes("hello "), z));
  ASSERT_FALSE(compress(compression::zstd, as_bytes("world"), z));
  byte_buffer out;
  ASSERT_FALSE(decompress(compression::zstd, z, 100, out));
  EXPECT_EQ(as_string(out), "hello world");
  out.clear();
  EXPECT_EQ(decompress(compression::zstd, z, 10, out), errc::decompressed_too_large);
}

TEST(Compression, UnknownMethodIsRefused) {
  byte_buffer out;
  EXPECT_EQ(compress(static_cast<compression>(3), as_bytes("x"), out), errc::bad_compression);
  EXPECT_EQ(decompress(static_cast<compression>(3), as_bytes("x"), 10, out), errc::bad_compression);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace msgtrans

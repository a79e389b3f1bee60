// Proves the hot path allocates nothing: encode_to, decode_view and a warmed-up
// frame_decoder. The global operator new is replaced by a counting one, which is why this
// test is its own executable.
#include <msgtrans/frame_decoder.hpp>
#include <msgtrans/packet.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> allocations{0};

void* counted_alloc(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* counted_alloc_aligned(std::size_t n, std::align_val_t a) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted_alloc(n); } catch (...) { return nullptr; }
}
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc_aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace msgtrans {
namespace {

long count_during(auto&& f) {
  const long before = allocations.load();
  f();
  return allocations.load() - before;
}

TEST(NoAlloc, CounterSeesAllocations) {
  // Guard against a counter that never counts: the owning encode must allocate.
  auto p = packet::one_way(1, as_bytes("hello"));
  EXPECT_GE(count_during([&] { ASSERT_TRUE(encode(p)); }), 1);
}

TEST(NoAlloc, EncodeToAllocatesNothing) {
  byte_buffer ext(32, std::byte{'e'}), payload(64 * 1024, std::byte{'p'}), out(128 * 1024);
  packet_view v;
  v.header.type = packet_type::request;
  v.header.flags = flags::high_priority | 0x4000;
  v.ext_header = ext;
  long n = count_during([&] {
    for (std::uint32_t id = 1; id <= 1000; ++id) {
      v.header.message_id = id;
      v.payload = bytes_view(payload).first(id * 61 % payload.size());
      auto r = encode_to(v, out);
      ASSERT_TRUE(r);
    }
    // The failure path allocates nothing either.
    ASSERT_FALSE(encode_to(v, std::span<std::byte>(out).first(3)));
  });
  EXPECT_EQ(n, 0);
}

TEST(NoAlloc, DecodeViewAllocatesNothing) {
  auto wire = encode(packet::request(7, as_bytes("some payload"), 3));
  ASSERT_TRUE(wire);
  byte_buffer bad = *wire;
  bad[0] = std::byte{2};
  long n = count_during([&] {
    for (int i = 0; i < 1000; ++i) {
      auto v = decode_view(*wire);
      ASSERT_TRUE(v);
      ASSERT_EQ(v->payload.size(), 12u);
      ASSERT_FALSE(decode_view(bad));
    }
  });
  EXPECT_EQ(n, 0);
}

TEST(NoAlloc, WarmFrameDecoderAllocatesNothing) {
  byte_buffer stream;
  for (std::uint32_t id = 1; id <= 50; ++id) {
    auto w = encode(packet::one_way(id, as_bytes(std::string(id * 10, 'x'))));
    ASSERT_TRUE(w);
    stream.insert(stream.end(), w->begin(), w->end());
  }
  frame_decoder d(stream_framing::tcp);
  std::size_t packets = 0;
  auto run = [&] {
    for (std::size_t off = 0; off < stream.size(); off += 333) {
      const std::size_t n = std::min<std::size_t>(333, stream.size() - off);
      ASSERT_FALSE(d.feed(bytes_view(stream).subspan(off, n), [&](bytes_view) { ++packets; }));
    }
  };
  run();  // warm-up: the buffer grows to its working size
  EXPECT_EQ(count_during(run), 0);
  EXPECT_EQ(packets, 100u);
}

}  // namespace
}  // namespace msgtrans

// Fuzzes the frame decoder in both framings. The input is a byte stream; it is fed in
// chunks of pseudo-random sizes (seeded from the input) and must yield exactly what a
// simple reference parser yields from the whole stream: the same packets, then the same
// error or nothing. Memory must stay bounded by what was fed.
#include <msgtrans/error.hpp>
#include <msgtrans/frame_decoder.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace msgtrans;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

struct outcome {
  std::vector<byte_buffer> packets;
  std::error_code error;
};

std::uint32_t load32(const std::byte* p) {
  return (std::uint32_t{std::to_integer<std::uint8_t>(p[0])} << 24) |
         (std::uint32_t{std::to_integer<std::uint8_t>(p[1])} << 16) |
         (std::uint32_t{std::to_integer<std::uint8_t>(p[2])} << 8) | std::to_integer<std::uint8_t>(p[3]);
}

// The framing rules written out the slow, obvious way.
outcome reference(stream_framing f, bytes_view s, const decode_limits& limits) {
  outcome o;
  std::size_t at = 0;
  for (;;) {
    const bytes_view rest = s.subspan(at);
    std::size_t skip = 0;
    if (f == stream_framing::length_prefixed) {
      if (rest.size() < 4) return o;
      const std::uint32_t len = load32(rest.data());
      if (len > max_length_prefixed_frame || len > limits.max_message_size) {
        o.error = errc::message_too_large;
        return o;
      }
      if (len < header_size) {
        o.error = errc::short_header;
        return o;
      }
      if (rest.size() < 4 + header_size) return o;
      auto h = decode_header(rest.subspan(4), limits);
      if (!h) {
        o.error = h.error();
        return o;
      }
      if (h->total_size() != len) {
        o.error = h->total_size() < len ? errc::trailing_bytes : errc::truncated;
        return o;
      }
      skip = 4;
    } else {
      if (rest.size() < header_size) return o;
      auto h = decode_header(rest, limits);
      if (!h) {
        o.error = h.error();
        return o;
      }
    }
    auto h = decode_header(rest.subspan(skip), limits);
    const std::size_t frame = skip + static_cast<std::size_t>(h->total_size());
    if (rest.size() < frame) return o;
    auto pkt = rest.subspan(skip, frame - skip);
    check(decode_view(pkt, limits).has_value());
    o.packets.emplace_back(pkt.begin(), pkt.end());
    at += frame;
  }
}

outcome chunked(stream_framing f, bytes_view s, const decode_limits& limits, std::uint32_t seed, bool zero_copy) {
  outcome o;
  frame_decoder d(f, limits);
  auto sink = [&](bytes_view p) { o.packets.emplace_back(p.begin(), p.end()); };
  std::size_t at = 0;
  std::uint32_t x = seed | 1;
  while (at < s.size() && !o.error) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;  // xorshift32
    const std::size_t want = 1 + x % (x & 0x100 ? 4 : 64);
    const std::size_t n = std::min(want, s.size() - at);
    if (zero_copy) {
      auto space = d.prepare(n);
      check(space.size() >= n);
      std::memcpy(space.data(), s.data() + at, n);
      d.commit(n);
      o.error = d.drain(sink);
    } else {
      o.error = d.feed(s.subspan(at, n), sink);
    }
    at += n;
    // Never more buffered than was fed, and no more memory than a small multiple of it
    // (the decoder grows fourfold, up to the frame being assembled: 3461bec).
    check(d.buffered() <= at);
    check(d.capacity() <= 4 * at + 64 * 1024);
  }
  if (o.error) check(d.error() == o.error && d.feed(s.first(0), sink) == o.error);
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const bytes_view s{reinterpret_cast<const std::byte*>(data), size};
  std::uint32_t seed = 2166136261u;  // FNV-1a of the input picks the chunking
  for (std::size_t i = 0; i < size; ++i) seed = (seed ^ data[i]) * 16777619u;

  for (auto f : {stream_framing::tcp, stream_framing::length_prefixed}) {
    for (const decode_limits limits : {decode_limits{}, decode_limits{256, 32}}) {
      const outcome want = reference(f, s, limits);
      for (bool zero_copy : {false, true}) {
        const outcome got = chunked(f, s, limits, seed + zero_copy, zero_copy);
        check(got.error == want.error);
        check(got.packets == want.packets);
      }
    }
  }
  return 0;
}

// Payload compression: zstd (wire value 1) and zlib / RFC 1950 (wire value 2).
// Decompression is streamed into a bounded output so a zip bomb fails before it allocates:
// the output buffer never grows past `max_size`, zstd's window is capped from the same
// limit, and a zstd frame that declares an over-limit content size is refused up front.
#include <msgtrans/error.hpp>
#include <msgtrans/packet.hpp>

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>

namespace msgtrans {
namespace {

constexpr std::size_t chunk = 64 * 1024;

// Resizes `out` to `n` bytes, growing capacity geometrically but never past `cap`, so a
// decompression bounded by max_size never reserves more than max_size.
void bounded_resize(byte_buffer& out, std::size_t n, std::size_t cap) {
  if (out.capacity() < n) out.reserve(std::min(std::max(n, out.capacity() * 2), cap));
  out.resize(n);
}

// Where decompressed bytes go: a growing byte_buffer (bounded by max_size), or a fixed
// span of at least max_size bytes (decompress_into: no allocation, no zero-fill).
struct vector_sink {
  byte_buffer& out;
  std::size_t base = out.size();
  std::byte* room_at(std::size_t produced, std::size_t room, std::size_t max_size) {
    bounded_resize(out, base + produced + room, base + max_size);
    return out.data() + base + produced;
  }
  void produced(std::size_t n) { out.resize(base + n); }
  void failed() { out.resize(base); }
};
struct span_sink {
  std::span<std::byte> out;
  std::byte* room_at(std::size_t produced, std::size_t, std::size_t) { return out.data() + produced; }
  void produced(std::size_t) {}
  void failed() {}
};

// Contexts are reused per thread: creating one costs more than decompressing a small payload.
struct zstd_contexts {
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> c{nullptr, ZSTD_freeCCtx};
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> d{nullptr, ZSTD_freeDCtx};
};
zstd_contexts& contexts() {
  thread_local zstd_contexts ctx;
  return ctx;
}

// zstd lets a frame ask for a window of up to 2^27 bytes by default. Allow no more than the
// output limit needs, but at least 2^23 so that any standard compression level still decodes.
int window_log_max(std::size_t max_size) {
  int log = 0;
  while (log < 27 && (std::size_t{1} << log) < max_size) ++log;
  return std::max(log, 23);
}

std::error_code zstd_compress(bytes_view in, byte_buffer& out) {
  auto& ctx = contexts();
  if (!ctx.c) ctx.c.reset(ZSTD_createCCtx());
  if (!ctx.c) return errc::invalid_argument;
  const std::size_t base = out.size();
  out.resize(base + ZSTD_compressBound(in.size()));
  std::size_t n = ZSTD_compressCCtx(ctx.c.get(), out.data() + base, out.size() - base, in.data(), in.size(), 1);
  if (ZSTD_isError(n)) {
    out.resize(base);
    return errc::invalid_argument;
  }
  out.resize(base + n);
  return {};
}

template <class Sink>
std::error_code zstd_decompress(bytes_view in, std::size_t max_size, Sink& out, std::size_t& produced) {
  // Cheap early refusal: the first frame's header usually states its content size.
  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) return errc::decompress_failed;
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > max_size) return errc::decompressed_too_large;

  auto& ctx = contexts();
  if (!ctx.d) ctx.d.reset(ZSTD_createDCtx());
  if (!ctx.d) return errc::decompress_failed;
  ZSTD_DCtx* ds = ctx.d.get();
  ZSTD_DCtx_reset(ds, ZSTD_reset_session_and_parameters);
  ZSTD_DCtx_setParameter(ds, ZSTD_d_windowLogMax, window_log_max(max_size));

  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  produced = 0;
  std::size_t last = 1;
  auto fail = [&](errc e) {
    out.failed();
    return make_error_code(e);
  };
  for (;;) {
    // Once the budget is used up, decode into a one-byte probe: any output is too much.
    std::byte probe[1];
    const bool budget_left = produced < max_size;
    const std::size_t room = budget_left ? std::min(chunk, max_size - produced) : 1;
    ZSTD_outBuffer ob{budget_left ? out.room_at(produced, room, max_size) : probe, room, 0};
    const std::size_t in_before = ib.pos;
    last = ZSTD_decompressStream(ds, &ob, &ib);
    if (ZSTD_isError(last)) return fail(errc::decompress_failed);
    if (!budget_left && ob.pos > 0) return fail(errc::decompressed_too_large);
    if (budget_left) {
      produced += ob.pos;
      out.produced(produced);
    }
    // 0 means a frame is complete and flushed; asking again would start a new frame.
    if (last == 0 && ib.pos == ib.size) break;
    // All input consumed and the output not full: zstd has flushed everything it holds,
    // and the frame is unfinished (truncated).
    if (ib.pos == ib.size && ob.pos < room) break;
    if (ob.pos == 0 && ib.pos == in_before) return fail(errc::decompress_failed);  // stuck
  }
  if (last != 0) return fail(errc::decompress_failed);  // input ended inside a frame
  return {};
}

std::error_code zlib_compress(bytes_view in, byte_buffer& out) {
  if (in.size() > ULONG_MAX / 2) return errc::invalid_argument;
  const std::size_t base = out.size();
  uLongf n = compressBound(static_cast<uLong>(in.size()));
  out.resize(base + n);
  if (compress2(reinterpret_cast<Bytef*>(out.data() + base), &n, reinterpret_cast<const Bytef*>(in.data()),
                static_cast<uLong>(in.size()), Z_DEFAULT_COMPRESSION) != Z_OK) {
    out.resize(base);
    return errc::invalid_argument;
  }
  out.resize(base + n);
  return {};
}

template <class Sink>
std::error_code zlib_decompress(bytes_view in, std::size_t max_size, Sink& out, std::size_t& produced) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return errc::decompress_failed;
  const Bytef* next_in = reinterpret_cast<const Bytef*>(in.data());
  std::size_t left_in = in.size();
  produced = 0;
  int rc = Z_OK;
  std::error_code ec;
  while (rc != Z_STREAM_END) {
    // avail_in is 32 bits wide: hand the input over in slices.
    if (zs.avail_in == 0 && left_in > 0) {
      const std::size_t slice = std::min<std::size_t>(left_in, UINT_MAX);
      zs.next_in = const_cast<Bytef*>(next_in);
      zs.avail_in = static_cast<uInt>(slice);
      next_in += slice;
      left_in -= slice;
    }
    std::byte probe[1];
    const bool budget_left = produced < max_size;
    const std::size_t room = budget_left ? std::min(chunk, max_size - produced) : 1;
    zs.next_out = reinterpret_cast<Bytef*>(budget_left ? out.room_at(produced, room, max_size) : probe);
    zs.avail_out = static_cast<uInt>(room);
    rc = inflate(&zs, Z_NO_FLUSH);
    const std::size_t got = room - zs.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END) { ec = errc::decompress_failed; break; }  // incl. truncated input
    if (!budget_left && got > 0) { ec = errc::decompressed_too_large; break; }
    if (budget_left) {
      produced += got;
      out.produced(produced);
    }
  }
  // payload_len is exact: bytes after the end of the zlib stream mean a corrupt payload.
  if (!ec && (zs.avail_in > 0 || left_in > 0)) ec = errc::decompress_failed;
  inflateEnd(&zs);
  if (ec) out.failed();
  return ec;
}

template <class Sink>
std::error_code decompress_to(compression c, bytes_view in, std::size_t max_size, Sink& out, std::size_t& n) {
  switch (c) {
    case compression::none:
      if (in.size() > max_size) return errc::decompressed_too_large;
      if (!in.empty()) std::memcpy(out.room_at(0, in.size(), max_size), in.data(), in.size());
      n = in.size();
      out.produced(n);
      return {};
    case compression::zstd: return zstd_decompress(in, max_size, out, n);
    case compression::zlib: return zlib_decompress(in, max_size, out, n);
  }
  return errc::bad_compression;
}

}  // namespace

std::error_code compress(compression c, bytes_view in, byte_buffer& out) {
  switch (c) {
    case compression::none: out.insert(out.end(), in.begin(), in.end()); return {};
    case compression::zstd: return zstd_compress(in, out);
    case compression::zlib: return zlib_compress(in, out);
  }
  return errc::bad_compression;
}

std::error_code decompress(compression c, bytes_view in, std::size_t max_size, byte_buffer& out) {
  vector_sink sink{out};
  std::size_t n = 0;
  return decompress_to(c, in, max_size, sink, n);
}

result<std::size_t> decompress_into(compression c, bytes_view in, std::span<std::byte> out) {
  span_sink sink{out};
  std::size_t n = 0;
  if (auto ec = decompress_to(c, in, out.size(), sink, n)) return ec;
  return n;
}

}  // namespace msgtrans

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

std::error_code zstd_decompress(bytes_view in, std::size_t max_size, byte_buffer& out) {
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

  const std::size_t base = out.size();
  const std::size_t cap = base + max_size;
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN) out.reserve(base + static_cast<std::size_t>(declared));
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::size_t produced = 0;
  std::size_t last = 1;
  auto fail = [&](errc e) {
    out.resize(base);
    return make_error_code(e);
  };
  for (;;) {
    // Once the budget is used up, decode into a one-byte probe: any output is too much.
    std::byte probe[1];
    const bool budget_left = produced < max_size;
    const std::size_t room = budget_left ? std::min(chunk, max_size - produced) : 1;
    if (budget_left) bounded_resize(out, base + produced + room, cap);
    ZSTD_outBuffer ob{budget_left ? out.data() + base + produced : probe, room, 0};
    const std::size_t in_before = ib.pos;
    last = ZSTD_decompressStream(ds, &ob, &ib);
    if (ZSTD_isError(last)) return fail(errc::decompress_failed);
    if (!budget_left && ob.pos > 0) return fail(errc::decompressed_too_large);
    if (budget_left) {
      produced += ob.pos;
      out.resize(base + produced);
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

std::error_code zlib_decompress(bytes_view in, std::size_t max_size, byte_buffer& out) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return errc::decompress_failed;
  const Bytef* next_in = reinterpret_cast<const Bytef*>(in.data());
  std::size_t left_in = in.size();
  const std::size_t base = out.size();
  const std::size_t cap = base + max_size;
  std::size_t produced = 0;
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
    if (budget_left) bounded_resize(out, base + produced + room, cap);
    zs.next_out = reinterpret_cast<Bytef*>(budget_left ? out.data() + base + produced : probe);
    zs.avail_out = static_cast<uInt>(room);
    rc = inflate(&zs, Z_NO_FLUSH);
    const std::size_t got = room - zs.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END) { ec = errc::decompress_failed; break; }  // incl. truncated input
    if (!budget_left && got > 0) { ec = errc::decompressed_too_large; break; }
    if (budget_left) {
      produced += got;
      out.resize(base + produced);
    }
  }
  // payload_len is exact: bytes after the end of the zlib stream mean a corrupt payload.
  if (!ec && (zs.avail_in > 0 || left_in > 0)) ec = errc::decompress_failed;
  inflateEnd(&zs);
  if (ec) out.resize(base);
  return ec;
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
  switch (c) {
    case compression::none:
      if (in.size() > max_size) return errc::decompressed_too_large;
      out.insert(out.end(), in.begin(), in.end());
      return {};
    case compression::zstd: return zstd_decompress(in, max_size, out);
    case compression::zlib: return zlib_decompress(in, max_size, out);
  }
  return errc::bad_compression;
}

}  // namespace msgtrans

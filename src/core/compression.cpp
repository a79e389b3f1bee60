// Payload compression: zstd (wire value 1) and zlib / RFC 1950 (wire value 2).
// Decompression is streamed into a bounded output so a zip bomb fails before it allocates.
#include <msgtrans/error.hpp>
#include <msgtrans/packet.hpp>

#include <zlib.h>
#include <zstd.h>

#include <memory>

namespace msgtrans {
namespace {

constexpr std::size_t chunk = 64 * 1024;

std::error_code zstd_compress(bytes_view in, byte_buffer& out) {
  const std::size_t base = out.size();
  out.resize(base + ZSTD_compressBound(in.size()));
  std::size_t n = ZSTD_compress(out.data() + base, out.size() - base, in.data(), in.size(), 1);
  if (ZSTD_isError(n)) {
    out.resize(base);
    return errc::invalid_argument;
  }
  out.resize(base + n);
  return {};
}

std::error_code zstd_decompress(bytes_view in, std::size_t max_size, byte_buffer& out) {
  std::unique_ptr<ZSTD_DStream, decltype(&ZSTD_freeDStream)> ds(ZSTD_createDStream(), ZSTD_freeDStream);
  if (!ds) return errc::decompress_failed;
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  const std::size_t base = out.size();
  std::size_t produced = 0;
  std::size_t last = 1;
  while (true) {
    if (produced == max_size) {
      // Output budget used up: anything more is over the limit.
      std::byte probe[1];
      ZSTD_outBuffer ob{probe, 1, 0};
      last = ZSTD_decompressStream(ds.get(), &ob, &ib);
      if (ZSTD_isError(last)) { out.resize(base); return errc::decompress_failed; }
      if (ob.pos > 0) { out.resize(base); return errc::decompressed_too_large; }
      if (last == 0 || ib.pos == ib.size) break;
      continue;
    }
    const std::size_t room = std::min(chunk, max_size - produced);
    out.resize(base + produced + room);
    ZSTD_outBuffer ob{out.data() + base + produced, room, 0};
    last = ZSTD_decompressStream(ds.get(), &ob, &ib);
    if (ZSTD_isError(last)) { out.resize(base); return errc::decompress_failed; }
    produced += ob.pos;
    out.resize(base + produced);
    if (last == 0 && ib.pos == ib.size) break;
    if (ib.pos == ib.size && ob.pos < room) break;  // input used up and flushed
  }
  if (last != 0) { out.resize(base); return errc::decompress_failed; }  // truncated frame
  return {};
}

std::error_code zlib_compress(bytes_view in, byte_buffer& out) {
  const std::size_t base = out.size();
  uLongf n = compressBound(static_cast<uLong>(in.size()));
  out.resize(base + n);
  if (compress2(reinterpret_cast<Bytef*>(out.data() + base), &n,
                reinterpret_cast<const Bytef*>(in.data()), static_cast<uLong>(in.size()), Z_DEFAULT_COMPRESSION) != Z_OK) {
    out.resize(base);
    return errc::invalid_argument;
  }
  out.resize(base + n);
  return {};
}

std::error_code zlib_decompress(bytes_view in, std::size_t max_size, byte_buffer& out) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return errc::decompress_failed;
  zs.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  const std::size_t base = out.size();
  std::size_t produced = 0;
  int rc = Z_OK;
  std::error_code ec;
  while (rc != Z_STREAM_END) {
    std::byte probe[1];
    const bool budget_left = produced < max_size;
    const std::size_t room = budget_left ? std::min(chunk, max_size - produced) : 1;
    if (budget_left) out.resize(base + produced + room);
    zs.next_out = reinterpret_cast<Bytef*>(budget_left ? out.data() + base + produced : probe);
    zs.avail_out = static_cast<uInt>(room);
    rc = inflate(&zs, Z_NO_FLUSH);
    const std::size_t got = room - zs.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END) { ec = errc::decompress_failed; break; }
    if (!budget_left && got > 0) { ec = errc::decompressed_too_large; break; }
    produced += got;
    out.resize(base + produced);
    if (rc == Z_OK && got == 0 && zs.avail_in == 0) { ec = errc::decompress_failed; break; }  // truncated
  }
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

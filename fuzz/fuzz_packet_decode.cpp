// Fuzzes the packet decoder: decode_view must accept or reject any bytes without a crash,
// and whatever it accepts must re-encode to the same bytes; the owning decode (with
// decompression, bounded) must agree with the view.
#include <msgtrans/error.hpp>
#include <msgtrans/packet.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>

using namespace msgtrans;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const bytes_view in{reinterpret_cast<const std::byte*>(data), size};
  const decode_limits limits{1024 * 1024, 4096};

  auto h = decode_header(in, limits);
  auto v = decode_view(in, limits);
  if (!h) {
    check(!v && v.error() == h.error());
    return 0;
  }
  if (!v) {
    // The header was fine, so only the length can disagree.
    check(v.error() == errc::truncated || v.error() == errc::trailing_bytes);
    check((v.error() == errc::truncated) == (size < h->total_size()));
    return 0;
  }
  check(v->header.total_size() == size);
  check(v->ext_header.size() == v->header.ext_header_len && v->payload.size() == v->header.payload_len);

  // Re-encoding what was accepted gives back the same bytes (unknown flags included).
  byte_buffer again(encoded_size(*v));
  auto n = encode_to(*v, again);
  check(n && *n == size && std::memcmp(again.data(), data, size) == 0);

  auto p = decode(in, limits);
  if (v->header.compression == compression::none) {
    check(p && p->payload.size() == v->payload.size());
  } else if (p) {
    check(p->payload.size() <= limits.max_message_size);
    // A payload that decompressed must survive our own compress + decode round trip.
    auto wire = encode(*p);
    check(wire.has_value());
    auto back = decode(*wire, decode_limits{2 * 1024 * 1024, 4096});
    check(back && *back == *p);
  } else {
    check(p.error() == errc::decompress_failed || p.error() == errc::decompressed_too_large);
  }
  if (p) {
    check(p->message_id == v->header.message_id && p->flags == v->header.flags && p->type == v->header.type);
    check(p->ext_header.size() == v->ext_header.size());
  }
  return 0;
}

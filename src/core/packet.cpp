// Packet header and body codec (wire format v1). No allocation except in the owning
// `encode` / `decode` conveniences.
#include <msgtrans/error.hpp>
#include <msgtrans/packet.hpp>

#include <bit>
#include <cstring>

namespace msgtrans {
namespace {

// Big-endian loads and stores as single (byte-swapped) moves.
template <class T>
T from_big(T v) noexcept {
  if constexpr (std::endian::native == std::endian::big) return v;
  else if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(v));
  else return static_cast<T>(__builtin_bswap32(v));
}
std::uint16_t load16(const std::byte* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return from_big(v);
}
std::uint32_t load32(const std::byte* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return from_big(v);
}
void store16(std::byte* p, std::uint16_t v) noexcept {
  v = from_big(v);
  std::memcpy(p, &v, 2);
}
void store32(std::byte* p, std::uint32_t v) noexcept {
  v = from_big(v);
  std::memcpy(p, &v, 4);
}

// The public functions below are thin wrappers over these, so that decode_view and
// encode_to compile to straight-line code with no calls on the hot path.
[[gnu::always_inline]] inline packet_header parse_header(const std::byte* p) noexcept {
  packet_header h;
  h.version = std::to_integer<std::uint8_t>(p[0]);
  h.compression = static_cast<compression>(std::to_integer<std::uint8_t>(p[1]));
  h.type = static_cast<packet_type>(std::to_integer<std::uint8_t>(p[2]));
  h.biz_type = std::to_integer<std::uint8_t>(p[3]);
  h.message_id = load32(p + 4);
  h.ext_header_len = load16(p + 8);
  h.payload_len = load32(p + 10);
  h.flags = load16(p + 14);
  return h;
}

[[gnu::always_inline]] inline std::error_code check_header(const packet_header& h,
                                                           const decode_limits& limits) noexcept {
  if (h.version != protocol_version) return errc::bad_version;
  if (static_cast<std::uint8_t>(h.compression) > 2) return errc::bad_compression;
  if (static_cast<std::uint8_t>(h.type) > 2) return errc::bad_packet_type;
  if (h.ext_header_len > limits.max_ext_header) return errc::ext_header_too_large;
  if (h.total_size() > limits.max_message_size) return errc::message_too_large;
  return {};
}

[[gnu::always_inline]] inline void write_header(const packet_header& h, std::byte* out) noexcept {
  out[0] = std::byte(h.version);
  out[1] = std::byte(static_cast<std::uint8_t>(h.compression));
  out[2] = std::byte(static_cast<std::uint8_t>(h.type));
  out[3] = std::byte(h.biz_type);
  store32(out + 4, h.message_id);
  store16(out + 8, h.ext_header_len);
  store32(out + 10, h.payload_len);
  store16(out + 14, h.flags);
}

packet make(packet_type t, std::uint32_t id, bytes_view payload, std::uint8_t biz) {
  packet p;
  p.type = t;
  p.message_id = id;
  p.biz_type = biz;
  p.payload.assign(payload.begin(), payload.end());
  return p;
}

}  // namespace

std::error_code validate_header(const packet_header& h, const decode_limits& limits) noexcept {
  return check_header(h, limits);
}

result<packet_header> decode_header(bytes_view in, const decode_limits& limits) noexcept {
  if (in.size() < header_size) return errc::short_header;
  packet_header h = parse_header(in.data());
  if (auto ec = check_header(h, limits)) return ec;
  return h;
}

void encode_header(const packet_header& h, std::byte* out) noexcept { write_header(h, out); }

result<packet_view> decode_view(bytes_view in, const decode_limits& limits) noexcept {
  if (in.size() < header_size) return errc::short_header;
  packet_view v;
  v.header = parse_header(in.data());
  if (auto ec = check_header(v.header, limits)) return ec;
  const std::uint64_t total = v.header.total_size();
  if (in.size() < total) return errc::truncated;
  if (in.size() > total) return errc::trailing_bytes;
  v.ext_header = {in.data() + header_size, v.header.ext_header_len};
  v.payload = {in.data() + header_size + v.header.ext_header_len, v.header.payload_len};
  return v;
}

std::size_t encoded_size(const packet_view& p) noexcept {
  return header_size + p.ext_header.size() + p.payload.size();
}

result<std::size_t> encode_to(const packet_view& p, std::span<std::byte> out) noexcept {
  // Refuse to write what a receiver must reject.
  if (p.header.version != protocol_version || static_cast<std::uint8_t>(p.header.compression) > 2 ||
      static_cast<std::uint8_t>(p.header.type) > 2)
    return errc::invalid_argument;
  if (p.ext_header.size() > 0xFFFF || p.payload.size() > 0xFFFFFFFFu) return errc::invalid_argument;
  const std::size_t n = header_size + p.ext_header.size() + p.payload.size();
  if (out.size() < n) return errc::invalid_argument;
  packet_header h = p.header;
  h.ext_header_len = static_cast<std::uint16_t>(p.ext_header.size());
  h.payload_len = static_cast<std::uint32_t>(p.payload.size());
  write_header(h, out.data());
  std::byte* w = out.data() + header_size;
  if (!p.ext_header.empty()) std::memcpy(w, p.ext_header.data(), p.ext_header.size());
  w += p.ext_header.size();
  if (!p.payload.empty()) std::memcpy(w, p.payload.data(), p.payload.size());
  return n;
}

packet packet::one_way(std::uint32_t id, bytes_view payload, std::uint8_t biz) {
  return make(packet_type::one_way, id, payload, biz);
}
packet packet::request(std::uint32_t id, bytes_view payload, std::uint8_t biz) {
  return make(packet_type::request, id, payload, biz);
}
packet packet::response(std::uint32_t id, bytes_view payload, std::uint8_t biz) {
  return make(packet_type::response, id, payload, biz);
}

result<byte_buffer> encode(const packet& p) {
  packet_view v;
  v.header.compression = p.compression;
  v.header.type = p.type;
  v.header.biz_type = p.biz_type;
  v.header.message_id = p.message_id;
  v.header.flags = p.flags;
  v.ext_header = p.ext_header;
  if (p.compression == compression::none) {
    v.payload = p.payload;
    byte_buffer out(encoded_size(v));
    auto n = encode_to(v, out);
    if (!n) return n.error();
    return out;
  }
  // Compress straight into the output after the header and extension header, then write
  // the header with the compressed length: one allocation, no intermediate buffer.
  if (static_cast<std::uint8_t>(p.compression) > 2 || static_cast<std::uint8_t>(p.type) > 2 ||
      p.ext_header.size() > 0xFFFF)
    return errc::invalid_argument;
  byte_buffer out(header_size + p.ext_header.size());
  if (!p.ext_header.empty()) std::memcpy(out.data() + header_size, p.ext_header.data(), p.ext_header.size());
  if (auto ec = compress(p.compression, p.payload, out)) return ec;
  const std::size_t payload_len = out.size() - header_size - p.ext_header.size();
  if (payload_len > 0xFFFFFFFFu) return errc::invalid_argument;
  v.header.ext_header_len = static_cast<std::uint16_t>(p.ext_header.size());
  v.header.payload_len = static_cast<std::uint32_t>(payload_len);
  encode_header(v.header, out.data());
  return out;
}

result<packet> to_packet(const packet_view& v, const decode_limits& limits) {
  packet p;
  p.type = v.header.type;
  p.biz_type = v.header.biz_type;
  p.message_id = v.header.message_id;
  p.flags = v.header.flags;
  p.compression = v.header.compression;
  p.ext_header.assign(v.ext_header.begin(), v.ext_header.end());
  if (v.header.compression == compression::none) {
    p.payload.assign(v.payload.begin(), v.payload.end());
  } else if (auto ec = decompress(v.header.compression, v.payload, limits.max_message_size, p.payload)) {
    return ec;
  }
  return p;
}

result<packet> decode(bytes_view in, const decode_limits& limits) {
  auto v = decode_view(in, limits);
  if (!v) return v.error();
  return to_packet(*v, limits);
}

}  // namespace msgtrans

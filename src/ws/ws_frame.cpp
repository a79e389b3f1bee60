// RFC 6455 framing without I/O. See ws_frame.hpp.
#include "ws/ws_frame.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

namespace msgtrans::ws {

namespace {

std::uint8_t byte_at(bytes_view in, std::size_t i) noexcept { return static_cast<std::uint8_t>(in[i]); }

parse_result failure(std::uint16_t code, const char* reason) noexcept {
  parse_result r;
  r.status = parse_result::fail;
  r.close_code = code;
  r.reason = reason;
  return r;
}

std::string base64(const unsigned char* data, std::size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

}  // namespace

parse_result parse_frame_header(bytes_view in, role receiver, std::uint64_t max_payload) noexcept {
  if (in.size() < 2) return {};
  const std::uint8_t b0 = byte_at(in, 0), b1 = byte_at(in, 1);
  parse_result r;
  frame_header& h = r.header;
  h.fin = (b0 & 0x80) != 0;
  // No extension is ever negotiated, so every reserved bit must be 0.
  if (b0 & 0x70) return failure(close_code::protocol_error, "reserved bits set (no extension was negotiated)");
  const std::uint8_t op = b0 & 0x0F;
  switch (op) {
    case 0x0: case 0x1: case 0x2: case 0x8: case 0x9: case 0xA: break;
    default: return failure(close_code::protocol_error, "reserved opcode");
  }
  h.op = static_cast<opcode>(op);
  const bool control = (op & 0x8) != 0;
  h.masked = (b1 & 0x80) != 0;
  if (receiver == role::server && !h.masked)
    return failure(close_code::protocol_error, "client frames must be masked");
  if (receiver == role::client && h.masked)
    return failure(close_code::protocol_error, "server frames must not be masked");
  std::uint64_t len = b1 & 0x7F;
  std::size_t pos = 2;
  if (control) {
    if (!h.fin) return failure(close_code::protocol_error, "fragmented control frame");
    if (len > max_control_payload) return failure(close_code::protocol_error, "control frame over 125 bytes");
  }
  if (len == 126) {
    if (in.size() < 4) return {};
    len = (std::uint64_t{byte_at(in, 2)} << 8) | byte_at(in, 3);
    pos = 4;
  } else if (len == 127) {
    if (in.size() < 10) return {};
    len = 0;
    for (std::size_t i = 0; i < 8; ++i) len = (len << 8) | byte_at(in, 2 + i);
    if (len >> 63) return failure(close_code::protocol_error, "64-bit frame length with the top bit set");
    pos = 10;
  }
  // Refused from the header alone, before any of the body is buffered.
  if (!control && len > max_payload) return failure(close_code::too_big, "message too big");
  if (h.masked) {
    if (in.size() < pos + 4) return {};
    for (std::size_t i = 0; i < 4; ++i) h.mask[i] = byte_at(in, pos + i);
    pos += 4;
  }
  h.payload_len = len;
  h.header_len = pos;
  r.status = parse_result::ok;
  return r;
}

std::size_t encode_frame_header(std::byte* out, opcode op, std::uint64_t payload_len,
                                const std::uint8_t* mask) noexcept {
  auto* o = reinterpret_cast<std::uint8_t*>(out);
  o[0] = static_cast<std::uint8_t>(0x80 | static_cast<std::uint8_t>(op));
  const std::uint8_t mbit = mask ? 0x80 : 0;
  std::size_t pos;
  if (payload_len < 126) {
    o[1] = static_cast<std::uint8_t>(mbit | payload_len);
    pos = 2;
  } else if (payload_len <= 0xFFFF) {
    o[1] = mbit | 126;
    o[2] = static_cast<std::uint8_t>(payload_len >> 8);
    o[3] = static_cast<std::uint8_t>(payload_len);
    pos = 4;
  } else {
    o[1] = mbit | 127;
    for (std::size_t i = 0; i < 8; ++i) o[2 + i] = static_cast<std::uint8_t>(payload_len >> (56 - 8 * i));
    pos = 10;
  }
  if (mask) {
    std::memcpy(o + pos, mask, 4);
    pos += 4;
  }
  return pos;
}

void apply_mask(std::byte* data, std::size_t n, const std::array<std::uint8_t, 4>& mask,
                std::size_t offset) noexcept {
  auto* d = reinterpret_cast<std::uint8_t*>(data);
  std::uint8_t m[8];
  for (std::size_t i = 0; i < 8; ++i) m[i] = mask[(offset + i) & 3];
  std::uint64_t m64;
  std::memcpy(&m64, m, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, d + i, 8);
    v ^= m64;
    std::memcpy(d + i, &v, 8);
  }
  for (; i < n; ++i) d[i] ^= m[i & 7];
}

bool is_valid_close_code(std::uint16_t code) noexcept {
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008: case 1009: case 1010:
    case 1011: case 1012: case 1013: case 1014:
      return true;
    default:
      return false;
  }
}

close_frame parse_close_payload(bytes_view payload) noexcept {
  close_frame c;
  if (payload.empty()) return c;
  if (payload.size() == 1) {
    c.error = close_code::protocol_error;
    return c;
  }
  c.code = static_cast<std::uint16_t>((byte_at(payload, 0) << 8) | byte_at(payload, 1));
  c.reason = as_string(payload.subspan(2));
  if (!is_valid_close_code(c.code)) c.error = close_code::protocol_error;
  else if (!is_valid_utf8(c.reason)) c.error = close_code::invalid_payload;
  return c;
}

std::size_t encode_close_payload(std::byte* out, std::uint16_t code, std::string_view reason) noexcept {
  auto* o = reinterpret_cast<std::uint8_t*>(out);
  o[0] = static_cast<std::uint8_t>(code >> 8);
  o[1] = static_cast<std::uint8_t>(code);
  std::size_t n = std::min(reason.size(), max_control_payload - 2);
  // Cut on a character boundary so the peer's UTF-8 check passes.
  while (n > 0 && n < reason.size() && (static_cast<std::uint8_t>(reason[n]) & 0xC0) == 0x80) --n;
  if (n) std::memcpy(o + 2, reason.data(), n);
  return 2 + n;
}

bool is_valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const std::uint8_t c = p[i];
    if (c < 0x80) { ++i; continue; }
    std::size_t len;
    std::uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;  // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;                            // surrogate
    if (cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

std::string accept_key(std::string_view client_key) {
  static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in;
  in.reserve(client_key.size() + guid.size());
  in.append(client_key).append(guid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(in.data(), in.size(), digest, &len, EVP_sha1(), nullptr) != 1)
    throw std::runtime_error("SHA-1 is not available from OpenSSL");
  return base64(digest, len);
}

std::string make_client_key() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("OpenSSL RAND_bytes failed");
  return base64(raw, sizeof raw);
}

bool is_valid_client_key(std::string_view key) noexcept {
  // 16 bytes in base64: 22 characters and "==".
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (std::size_t i = 0; i < 22; ++i) {
    const char c = key[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/';
    if (!ok) return false;
  }
  // The last character carries 2 bits of data and 4 zero bits.
  return std::string_view("AQgw").find(key[21]) != std::string_view::npos;
}

std::array<std::uint8_t, 4> mask_source::next() {
  if (used_ + 4 > pool_.size()) {
    if (RAND_bytes(pool_.data(), static_cast<int>(pool_.size())) != 1)
      throw std::runtime_error("OpenSSL RAND_bytes failed");
    used_ = 0;
  }
  std::array<std::uint8_t, 4> m;
  std::memcpy(m.data(), pool_.data() + used_, 4);
  used_ += 4;
  return m;
}

}  // namespace msgtrans::ws

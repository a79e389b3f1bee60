// Helpers shared by the core tests: hex, byte strings, and hand-made headers.
#pragma once

#include <msgtrans/packet.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace msgtrans::test {

inline byte_buffer from_hex(std::string_view hex) {
  if (hex.size() % 2) throw std::invalid_argument("odd hex length");
  auto nibble = [](char c) -> unsigned {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<unsigned>(c - 'A' + 10);
    throw std::invalid_argument("bad hex digit");
  };
  byte_buffer out;
  for (std::size_t i = 0; i < hex.size(); i += 2) out.push_back(std::byte((nibble(hex[i]) << 4) | nibble(hex[i + 1])));
  return out;
}

inline std::string to_hex(bytes_view b) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  for (std::byte x : b) {
    s += digits[std::to_integer<unsigned>(x) >> 4];
    s += digits[std::to_integer<unsigned>(x) & 15];
  }
  return s;
}

inline byte_buffer bytes(std::string_view s) { return to_buffer(as_bytes(s)); }

/// 16 raw header bytes, written field by field (independent of encode_header).
inline byte_buffer raw_header(std::uint8_t version, std::uint8_t compression, std::uint8_t type, std::uint8_t biz,
                              std::uint32_t id, std::uint16_t ext_len, std::uint32_t payload_len,
                              std::uint16_t flags) {
  byte_buffer h(16);
  h[0] = std::byte(version);
  h[1] = std::byte(compression);
  h[2] = std::byte(type);
  h[3] = std::byte(biz);
  for (int i = 0; i < 4; ++i) h[4 + i] = std::byte(id >> (24 - 8 * i));
  h[8] = std::byte(ext_len >> 8);
  h[9] = std::byte(ext_len);
  for (int i = 0; i < 4; ++i) h[10 + i] = std::byte(payload_len >> (24 - 8 * i));
  h[14] = std::byte(flags >> 8);
  h[15] = std::byte(flags);
  return h;
}

/// A whole valid uncompressed packet built by hand.
inline byte_buffer raw_packet(std::uint8_t type, std::uint32_t id, std::string_view ext, std::string_view payload,
                              std::uint16_t flags = 0, std::uint8_t biz = 0) {
  auto p = raw_header(1, 0, type, biz, id, static_cast<std::uint16_t>(ext.size()),
                      static_cast<std::uint32_t>(payload.size()), flags);
  p.insert(p.end(), as_bytes(ext).begin(), as_bytes(ext).end());
  p.insert(p.end(), as_bytes(payload).begin(), as_bytes(payload).end());
  return p;
}

inline void append(byte_buffer& to, bytes_view b) { to.insert(to.end(), b.begin(), b.end()); }

inline void append_u32(byte_buffer& to, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) to.push_back(std::byte(v >> (24 - 8 * i)));
}

}  // namespace msgtrans::test

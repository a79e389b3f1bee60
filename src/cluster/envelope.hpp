// What nodes say to each other over the bus (sans-I/O, fuzzed with the other decoders).
// One envelope per bus message, little-endian, version 1:
//
//   0  "MTC1"            4 bytes
//   4  kind              u8   (envelope_kind)
//   5  biz_type          u8   request / response
//   6  flags             u16  request / response
//   8  origin node       u32
//  12  session           u64  room: the excluded session; send / request / close: the target
//  20  correlation       u64  request / response
//  28  timeout_ms        u32  request
//  32  error             u16  response: msgtrans errc value, 0 = answered
//  34  ext_len           u16
//  36  ext header        ext_len bytes (request / response)
//      body              the rest: room / send: one encoded msgtrans packet, sent as is;
//                        request / response: the payload; close: the detail text;
//                        presence: entries (u8 name length, name, u32 members)
#pragma once

#include <msgtrans/packet.hpp>

#include <cstdint>
#include <optional>
#include <string_view>

namespace msgtrans::detail {

enum class envelope_kind : std::uint8_t { room = 1, send = 2, request = 3, response = 4, close = 5, presence = 6 };

struct envelope {
  envelope_kind kind = envelope_kind::room;
  std::uint8_t biz_type = 0;
  std::uint16_t flags = 0;
  std::uint32_t origin = 0;
  std::uint64_t session = 0;
  std::uint64_t correlation = 0;
  std::uint32_t timeout_ms = 0;
  std::uint16_t error = 0;
  bytes_view ext;
  bytes_view body;
};

inline constexpr std::size_t envelope_header_size = 36;

/// The envelope's bytes (ext must be at most 65535 bytes).
byte_buffer encode(const envelope& e);
/// Views into `data`, or nullopt when it is not a version-1 envelope.
std::optional<envelope> decode_envelope(bytes_view data) noexcept;

/// Presence body: appends one (room, members) entry.
void append_presence(byte_buffer& body, std::string_view room, std::uint32_t members);
/// Calls f(room, members) per entry; false when the body is malformed.
template <class F>
bool for_each_presence(bytes_view body, F&& f) {
  std::size_t i = 0;
  while (i < body.size()) {
    const std::size_t n = static_cast<std::uint8_t>(body[i]);
    if (n == 0 || i + 1 + n + 4 > body.size()) return false;
    std::string_view room(reinterpret_cast<const char*>(body.data() + i + 1), n);
    std::uint32_t members = 0;
    for (int k = 3; k >= 0; --k) members = members << 8 | static_cast<std::uint8_t>(body[i + 1 + n + k]);
    f(room, members);
    i += 1 + n + 4;
  }
  return true;
}

}  // namespace msgtrans::detail

/// @file ws_frame.hpp
/// RFC 6455 framing, sans-I/O: frame headers in and out, masking, close frames, the
/// handshake key. No sockets, no Asio, no Beast; unit-tested on bytes alone.
#pragma once

#include <msgtrans/packet.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace msgtrans::ws {

enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

/// Close codes this transport sends (RFC 6455 section 7.4.1).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;   ///< reported, never sent
inline constexpr std::uint16_t abnormal = 1006;    ///< reported, never sent
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
}  // namespace close_code

/// Which end reads the frames: a server must receive masked frames, a client unmasked.
enum class role { server, client };

/// Largest frame header: 2 + 8 (length) + 4 (mask).
inline constexpr std::size_t max_header_size = 14;
/// Control frames carry at most 125 bytes.
inline constexpr std::size_t max_control_payload = 125;

struct frame_header {
  bool fin = true;
  opcode op = opcode::binary;
  bool masked = false;
  std::array<std::uint8_t, 4> mask{};
  std::uint64_t payload_len = 0;
  std::size_t header_len = 0;  ///< bytes of this header on the wire
};

/// Outcome of reading a frame header.
struct parse_result {
  enum status_t { need_more, ok, fail } status = need_more;
  frame_header header;
  std::uint16_t close_code = 0;  ///< on fail: the code to close with (1002 or 1009)
  const char* reason = "";       ///< on fail: why, for the close frame and the close event
};

/// Reads the frame header at the start of `in`. Checks everything the header alone can
/// tell: reserved bits and opcodes, control frame rules, the masking rule for `receiver`,
/// and (for data frames) `payload_len <= max_payload` (else close 1009). Fragmentation
/// state is the caller's to check.
parse_result parse_frame_header(bytes_view in, role receiver, std::uint64_t max_payload) noexcept;

/// Writes a header for one final frame of `op` with `payload_len` bytes into `out` (at
/// least max_header_size bytes), masked with `mask` when it is not null. Returns its size.
std::size_t encode_frame_header(std::byte* out, opcode op, std::uint64_t payload_len,
                                const std::uint8_t* mask) noexcept;

/// Header size for a payload of `payload_len` bytes.
constexpr std::size_t frame_header_size(std::uint64_t payload_len, bool masked) noexcept {
  return (payload_len < 126 ? 2 : payload_len <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0);
}

/// XORs `data` with `mask`, as if `data` started `offset` bytes into the payload.
void apply_mask(std::byte* data, std::size_t n, const std::array<std::uint8_t, 4>& mask,
                std::size_t offset = 0) noexcept;

/// A close frame's contents, checked.
struct close_frame {
  std::uint16_t code = close_code::no_status;  ///< 1005 when the frame had no code
  std::string_view reason;
  std::uint16_t error = 0;  ///< not 0: the frame is invalid; close with this code (1002 / 1007)
};
/// Parses and checks a received close frame's payload (code range, UTF-8 reason).
close_frame parse_close_payload(bytes_view payload) noexcept;
/// True for a code a peer may send in a close frame.
bool is_valid_close_code(std::uint16_t code) noexcept;
/// Writes a close payload (code + reason cut to fit 125 bytes on a UTF-8 boundary) into
/// `out` (at least 125 bytes). Returns its size.
std::size_t encode_close_payload(std::byte* out, std::uint16_t code, std::string_view reason) noexcept;

/// Strict UTF-8 check (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s) noexcept;

/// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string accept_key(std::string_view client_key);
/// A fresh random Sec-WebSocket-Key.
std::string make_client_key();
/// True when `key` is the base64 form of 16 bytes, as RFC 6455 demands.
bool is_valid_client_key(std::string_view key) noexcept;

/// Masking keys from the system's CSPRNG, fetched in batches (RFC 6455 10.3 wants them
/// unpredictable).
class mask_source {
 public:
  std::array<std::uint8_t, 4> next();

 private:
  std::array<std::uint8_t, 256> pool_{};
  std::size_t used_ = sizeof(pool_);
};

}  // namespace msgtrans::ws

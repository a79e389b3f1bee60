/// @file packet.hpp
/// The msgtrans packet (wire format v1, see docs/wire-format.md): types, limits,
/// encoding into caller-supplied memory, and decoding without copying.
///
/// Sans-I/O: nothing here touches sockets, threads or clocks.
#pragma once

#include <msgtrans/result.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace msgtrans {

/// Read-only bytes.
using bytes_view = std::span<const std::byte>;
/// Owned bytes.
using byte_buffer = std::vector<std::byte>;

/// Views text as bytes (no copy).
inline bytes_view as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
/// Views bytes as text (no copy).
inline std::string_view as_string(bytes_view b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
/// Copies bytes into an owned buffer.
inline byte_buffer to_buffer(bytes_view b) { return byte_buffer(b.begin(), b.end()); }

inline constexpr std::uint8_t protocol_version = 1;
inline constexpr std::size_t header_size = 16;
/// Default maximum size of one packet on the wire (header + extension header + payload).
inline constexpr std::size_t default_max_message_size = 16u * 1024 * 1024;
/// Default maximum extension header accepted by a receiver.
inline constexpr std::size_t default_max_ext_header = 4096;

enum class packet_type : std::uint8_t { one_way = 0, request = 1, response = 2 };
/// Payload compression. Note the wire order: 1 is zstd, 2 is zlib.
enum class compression : std::uint8_t { none = 0, zstd = 1, zlib = 2 };

/// Bits of the 16-bit flags field. Unknown bits are preserved, never rejected.
namespace flags {
inline constexpr std::uint16_t fragmented = 0x0001;     ///< reserved in v1: senders write 0
inline constexpr std::uint16_t high_priority = 0x0002;  ///< jumps ahead of queued normal packets
inline constexpr std::uint16_t has_route_tag = 0x0004;  ///< ext header carries a route tag
}  // namespace flags

/// Receiver limits, checked from the header before any body byte is buffered.
struct decode_limits {
  std::size_t max_message_size = default_max_message_size;  ///< whole packet, and decompressed payload
  std::size_t max_ext_header = default_max_ext_header;
};

/// The 16-byte fixed header, decoded.
struct packet_header {
  std::uint8_t version = protocol_version;
  msgtrans::compression compression = msgtrans::compression::none;
  packet_type type = packet_type::one_way;
  std::uint8_t biz_type = 0;
  std::uint32_t message_id = 0;
  std::uint16_t ext_header_len = 0;
  std::uint32_t payload_len = 0;  ///< on the wire, i.e. after compression
  std::uint16_t flags = 0;

  /// Packet length on the wire: 16 + ext_header_len + payload_len.
  std::uint64_t total_size() const noexcept {
    return header_size + std::uint64_t{ext_header_len} + payload_len;
  }
  bool has_flag(std::uint16_t f) const noexcept { return (flags & f) == f; }
};

/// Checks a header against the receiver rules and the limits.
std::error_code validate_header(const packet_header& h, const decode_limits& limits) noexcept;
/// Decodes and validates the first 16 bytes of `in`.
result<packet_header> decode_header(bytes_view in, const decode_limits& limits = {}) noexcept;
/// Writes the 16 header bytes.
void encode_header(const packet_header& h, std::byte* out) noexcept;

/// A packet whose extension header and payload point into someone else's memory.
/// The payload is as on the wire: still compressed if header.compression says so.
struct packet_view {
  packet_header header;
  bytes_view ext_header;
  bytes_view payload;
};

/// Decodes exactly one packet from `in` without copying (trailing bytes are an error).
result<packet_view> decode_view(bytes_view in, const decode_limits& limits = {}) noexcept;

/// Bytes needed to encode `p` (its lengths are taken from the spans).
std::size_t encoded_size(const packet_view& p) noexcept;
/// Encodes `p` into `out` with no allocation; ext_header_len and payload_len are taken
/// from the spans. Returns the bytes written, or invalid_argument if `out` is too small,
/// the extension header is over 65535 bytes, or the header holds a version, compression
/// or packet type a receiver must reject. The payload is written as is; flags are written
/// as given (unknown bits included, so a relay forwards them unchanged).
result<std::size_t> encode_to(const packet_view& p, std::span<std::byte> out) noexcept;

/// An owning packet with its payload decompressed.
struct packet {
  packet_type type = packet_type::one_way;
  std::uint8_t biz_type = 0;
  std::uint32_t message_id = 0;
  std::uint16_t flags = 0;
  /// How the payload is (or was) compressed on the wire. `payload` is always plain.
  msgtrans::compression compression = msgtrans::compression::none;
  byte_buffer ext_header;
  byte_buffer payload;

  static packet one_way(std::uint32_t id, bytes_view payload, std::uint8_t biz_type = 0);
  static packet request(std::uint32_t id, bytes_view payload, std::uint8_t biz_type = 0);
  static packet response(std::uint32_t id, bytes_view payload, std::uint8_t biz_type = 0);

  bool has_flag(std::uint16_t f) const noexcept { return (flags & f) == f; }
  bool operator==(const packet&) const = default;
};

/// Encodes an owning packet, compressing its payload as `p.compression` says.
result<byte_buffer> encode(const packet& p);
/// Decodes one packet and decompresses its payload (bounded by limits.max_message_size).
result<packet> decode(bytes_view in, const decode_limits& limits = {});
/// Turns a view into an owning packet, decompressing the payload.
result<packet> to_packet(const packet_view& v, const decode_limits& limits = {});

/// Appends the compressed form of `in` to `out`. `none` copies.
std::error_code compress(compression c, bytes_view in, byte_buffer& out);
/// Appends the decompressed form of `in` to `out`, and fails with decompressed_too_large
/// rather than produce more than `max_size` bytes (a zip bomb costs nothing).
std::error_code decompress(compression c, bytes_view in, std::size_t max_size, byte_buffer& out);
/// Decompresses `in` into `out` (at most `out.size()` bytes, else decompressed_too_large)
/// and returns the decompressed size. Allocates nothing.
result<std::size_t> decompress_into(compression c, bytes_view in, std::span<std::byte> out);

/// Message ids for one side of one connection: 1, 2, ..., 0xFFFFFFFF, 1, ... (never 0).
class message_id_allocator {
 public:
  message_id_allocator() noexcept = default;
  /// Starts at `first` instead of 1 (0 is taken as 1). For tests and for resuming a counter.
  explicit message_id_allocator(std::uint32_t first) noexcept : next_(first == 0 ? 1u : first) {}

  std::uint32_t next() noexcept {
    std::uint32_t id = next_;
    next_ = next_ == 0xFFFFFFFFu ? 1u : next_ + 1u;
    return id;
  }
  /// Starts again at 1 (on reconnect).
  void reset() noexcept { next_ = 1; }

 private:
  std::uint32_t next_ = 1;
};

}  // namespace msgtrans

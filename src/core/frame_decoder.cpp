// Cuts a byte stream into packets. The buffer grows only to the size of the frame being
// assembled, which the limits bound before any body byte is stored.
#include <msgtrans/error.hpp>
#include <msgtrans/frame_decoder.hpp>

#include <algorithm>

namespace msgtrans {

frame_decoder::frame_decoder(stream_framing framing, decode_limits limits)
    : framing_(framing), limits_(limits) {}

std::span<std::byte> frame_decoder::prepare(std::size_t min_free) {
  if (buf_.size() - end_ < min_free) {
    compact();
    if (buf_.size() - end_ < min_free) buf_.resize(std::max(end_ + min_free, buf_.size() * 2));
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

void frame_decoder::compact() noexcept {
  if (begin_ == 0) return;
  std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
}

void frame_decoder::shrink() noexcept {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    byte_buffer().swap(buf_);
  }
}

std::error_code frame_decoder::next_frame_size(std::size_t& frame, std::size_t& skip) noexcept {
  const std::byte* p = buf_.data() + begin_;
  const std::size_t have = buffered();
  if (framing_ == stream_framing::tcp) {
    if (have < header_size) return {};
    auto h = decode_header({p, header_size}, limits_);
    if (!h) return h.error();
    frame = static_cast<std::size_t>(h->total_size());
    skip = 0;
    return {};
  }
  // Length-prefixed: u32 big-endian frame length, then the packet.
  if (have < 4) return {};
  const std::uint32_t len = (std::uint32_t{std::to_integer<std::uint8_t>(p[0])} << 24) |
                            (std::uint32_t{std::to_integer<std::uint8_t>(p[1])} << 16) |
                            (std::uint32_t{std::to_integer<std::uint8_t>(p[2])} << 8) |
                            std::uint32_t{std::to_integer<std::uint8_t>(p[3])};
  if (len > max_length_prefixed_frame || len > limits_.max_message_size) return errc::message_too_large;
  if (len < header_size) return errc::short_header;
  if (have >= 4 + header_size) {
    // Check the packet header early, and that it agrees with the frame length.
    auto h = decode_header({p + 4, header_size}, limits_);
    if (!h) return h.error();
    if (h->total_size() < len) return errc::trailing_bytes;
    if (h->total_size() > len) return errc::truncated;
  }
  frame = 4 + std::size_t{len};
  skip = 4;
  return {};
}

}  // namespace msgtrans

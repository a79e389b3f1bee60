// Cuts a byte stream into packets. The buffer grows only to the size of the frame being
// assembled, which the limits bound before any body byte is stored.
#include <msgtrans/error.hpp>
#include <msgtrans/frame_decoder.hpp>

#include <algorithm>

namespace msgtrans {

frame_decoder::frame_decoder(stream_framing framing, decode_limits limits)
    : framing_(framing), limits_(limits) {}

std::span<std::byte> frame_decoder::prepare(std::size_t min_free) {
  if (cap_ - end_ < min_free) {
    compact();
    if (cap_ - end_ < min_free) {
      // Grow fourfold, up to the size of the frame being assembled (known once its header
      // is in) plus this read: a large message costs a few allocations and copies of a
      // third of its size at most, and memory never runs more than four times ahead of the
      // bytes received (a peer announcing a huge frame and sending nothing gets nothing).
      std::size_t want = std::max(end_ + min_free, cap_ * 4);
      if (pending_frame_ > 0) want = std::min(want, std::max(end_ + min_free, pending_frame_ + min_free));
      std::unique_ptr<std::byte[]> bigger(new std::byte[want]);  // uninitialised on purpose
      if (end_ > 0) std::memcpy(bigger.get(), buf_.get(), end_);
      buf_ = std::move(bigger);
      cap_ = want;
    }
  }
  return {buf_.get() + end_, cap_ - end_};
}

void frame_decoder::compact() noexcept {
  if (begin_ == 0) return;
  if (end_ > begin_) std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
}

void frame_decoder::shrink() noexcept {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    buf_.reset();
    cap_ = 0;
  }
}

std::error_code frame_decoder::next_frame_size(std::size_t& frame, std::size_t& skip) noexcept {
  const std::byte* p = buf_.get() + begin_;
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

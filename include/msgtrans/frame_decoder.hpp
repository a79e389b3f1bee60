/// @file frame_decoder.hpp
/// Incremental decoder that cuts a byte stream into whole packets.
///
/// Two framings: `stream_framing::tcp`, where each packet's own 16-byte header gives its
/// length, and `stream_framing::length_prefixed` (QUIC), where a u32 big-endian length
/// precedes each packet. Over-limit lengths are rejected from the header alone, before
/// the body is buffered. Sans-I/O; custom stream transports can reuse it.
#pragma once

#include <msgtrans/packet.hpp>

#include <cassert>
#include <cstring>
#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

namespace msgtrans {

enum class stream_framing { tcp, length_prefixed };

/// Largest frame the length-prefixed (QUIC) framing accepts.
inline constexpr std::size_t max_length_prefixed_frame = 16u * 1024 * 1024;

class frame_decoder {
 public:
  explicit frame_decoder(stream_framing framing, decode_limits limits = {});

  /// Writable space of at least `min_free` bytes for the next read (zero-copy path).
  std::span<std::byte> prepare(std::size_t min_free = 16 * 1024);
  /// Marks `n` bytes of the prepared space as filled.
  void commit(std::size_t n) noexcept {
    assert(n <= cap_ - end_);
    end_ += n;
  }

  /// Calls `on_packet(bytes_view)` for every complete packet buffered, in order. The
  /// view is valid only during the call. Stops at the first framing error and returns
  /// it; the decoder is then failed for good. `on_packet` may return `false` to stop early
  /// (the remaining bytes stay buffered for the next call).
  template <class F>
  std::error_code drain(F&& on_packet);

  /// Copies `chunk` in and drains it. A failed decoder stores nothing more.
  template <class F>
  std::error_code feed(bytes_view chunk, F&& on_packet) {
    if (error_) return error_;
    if (!chunk.empty()) {
      auto space = prepare(chunk.size());
      std::memcpy(space.data(), chunk.data(), chunk.size());
      commit(chunk.size());
    }
    return drain(std::forward<F>(on_packet));
  }

  /// Bytes buffered but not yet yielded.
  std::size_t buffered() const noexcept { return end_ - begin_; }
  /// Memory currently reserved for buffering.
  std::size_t capacity() const noexcept { return cap_; }
  /// Drops the buffer memory if nothing is buffered (for idle connections).
  void shrink() noexcept;
  std::error_code error() const noexcept { return error_; }
  /// Size of the incomplete frame at the front (prefix included) once its header is
  /// buffered and drained over; 0 if unknown or none.
  std::size_t pending_frame() const noexcept { return pending_frame_; }

 private:
  // Length of the frame starting at begin_ (prefix included), 0 if not yet known.
  std::error_code next_frame_size(std::size_t& frame, std::size_t& skip) noexcept;
  void compact() noexcept;

  stream_framing framing_;
  decode_limits limits_;
  // Not a vector: growing it must not zero-fill what the next read overwrites anyway.
  std::unique_ptr<std::byte[]> buf_;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t pending_frame_ = 0;  // size of the incomplete frame at begin_, once known
  std::error_code error_;
};

template <class F>
std::error_code frame_decoder::drain(F&& on_packet) {
  if (error_) return error_;
  for (;;) {
    std::size_t frame = 0, skip = 0;
    if (auto ec = next_frame_size(frame, skip)) return error_ = ec;
    pending_frame_ = frame;
    if (frame == 0 || buffered() < frame) break;
    pending_frame_ = 0;
    bytes_view pkt{buf_.get() + begin_ + skip, frame - skip};
    begin_ += frame;
    if constexpr (std::is_same_v<decltype(on_packet(pkt)), bool>) {
      if (!on_packet(pkt)) break;
    } else {
      on_packet(pkt);
    }
  }
  if (begin_ == end_) begin_ = end_ = 0;
  return {};
}

}  // namespace msgtrans

// The msgtrans stream's send buffer. ngtcp2 does not copy stream data: bytes it has
// been handed stay referenced until the peer acknowledges them, so they live in fixed
// chunks that never move, and are released by acked offset.
#pragma once

#include <msgtrans/packet.hpp>

#include <ngtcp2/ngtcp2.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

namespace msgtrans::quic_detail {

class send_buffer {
 public:
  static constexpr std::size_t chunk_size = 64 * 1024;

  /// Appends a copy of `b` at the end of the stream.
  void append(bytes_view b) {
    const std::byte* p = b.data();
    std::size_t n = b.size();
    while (n > 0) {
      if (chunks_.empty() || chunks_.back().used == chunk_size) chunks_.push_back({take_chunk(), 0});
      chunk& c = chunks_.back();
      const std::size_t k = std::min(n, chunk_size - c.used);
      std::memcpy(c.data.get() + c.used, p, k);
      c.used += k;
      p += k;
      n -= k;
      end_ += k;
    }
  }

  /// Appends one msgtrans frame: the u32 big-endian length of `b`, then `b`. One call per
  /// message, so the common case (both fit in the last chunk) is two inline copies.
  void append_framed(bytes_view b) {
    const auto len = static_cast<std::uint32_t>(b.size());
    const std::byte prefix[4] = {std::byte(len >> 24), std::byte(len >> 16), std::byte(len >> 8), std::byte(len)};
    if (!chunks_.empty() && chunk_size - chunks_.back().used >= 4 + b.size()) {
      chunk& c = chunks_.back();
      std::memcpy(c.data.get() + c.used, prefix, 4);
      if (!b.empty()) std::memcpy(c.data.get() + c.used + 4, b.data(), b.size());
      c.used += 4 + b.size();
      end_ += 4 + b.size();
      return;
    }
    append({prefix, 4});
    append(b);
  }

  /// Up to `max` views of the bytes not yet handed to ngtcp2.
  std::size_t unsent(ngtcp2_vec* v, std::size_t max) const {
    std::size_t cnt = 0;
    std::uint64_t off = base_;
    for (const chunk& c : chunks_) {
      const std::uint64_t c_end = off + c.used;
      if (c_end > sent_ && cnt < max) {
        const std::size_t skip = sent_ > off ? static_cast<std::size_t>(sent_ - off) : 0;
        v[cnt++] = {reinterpret_cast<std::uint8_t*>(c.data.get()) + skip, c.used - skip};
      }
      off = c_end;
    }
    return cnt;
  }

  /// `n` more bytes were handed to ngtcp2.
  void consumed(std::size_t n) noexcept { sent_ += n; }
  /// The peer acknowledged everything below `offset`.
  void acked(std::uint64_t offset) {
    acked_ = std::max(acked_, offset);
    while (!chunks_.empty() && chunks_.front().used == chunk_size && base_ + chunk_size <= acked_) {
      give_back(std::move(chunks_.front().data));
      chunks_.pop_front();
      base_ += chunk_size;
    }
    if (acked_ == end_ && !chunks_.empty()) {  // everything acked: keep one chunk, free the rest
      base_ = end_;
      give_back(std::move(chunks_.front().data));
      chunks_.clear();
      spare_.resize(std::min<std::size_t>(spare_.size(), 1));
    }
  }

  bool has_unsent() const noexcept { return sent_ < end_; }
  std::uint64_t unsent_bytes() const noexcept { return end_ - sent_; }
  /// Bytes written but not yet acknowledged (what back-pressure counts).
  std::uint64_t unacked() const noexcept { return end_ - acked_; }
  bool all_acked() const noexcept { return acked_ == end_; }
  /// Stream offset after the last byte written.
  std::uint64_t end() const noexcept { return end_; }

 private:
  struct chunk {
    std::unique_ptr<std::byte[]> data;
    std::size_t used;
  };
  std::unique_ptr<std::byte[]> take_chunk() {
    if (!spare_.empty()) {
      auto c = std::move(spare_.back());
      spare_.pop_back();
      return c;
    }
    return std::unique_ptr<std::byte[]>(new std::byte[chunk_size]);
  }
  void give_back(std::unique_ptr<std::byte[]> c) {
    if (spare_.size() < 4) spare_.push_back(std::move(c));
  }

  std::deque<chunk> chunks_;
  std::vector<std::unique_ptr<std::byte[]>> spare_;
  std::uint64_t base_ = 0;   // stream offset of chunks_.front()
  std::uint64_t end_ = 0;    // stream offset after the last byte written
  std::uint64_t sent_ = 0;   // stream offset after the last byte handed to ngtcp2
  std::uint64_t acked_ = 0;  // everything below is acknowledged
};

}  // namespace msgtrans::quic_detail

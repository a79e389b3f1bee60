// Outgoing packets of one connection, waiting to be written. Sans-I/O.
//
// Packets are encoded straight into a reusable byte buffer (no allocation per packet once
// the buffers have grown); broadcast packets are shared, not copied. Two classes:
// high-priority packets leave before normal ones that are queued but not yet handed to
// the transport. `take_batch` hands everything queued to the transport at once (the cork);
// `batch_done` recycles the memory.
#pragma once

#include <msgtrans/packet.hpp>

#include <cstddef>
#include <memory>
#include <vector>

namespace msgtrans::detail {

class write_queue {
 public:
  using shared_bytes = std::shared_ptr<const byte_buffer>;

  /// Space for one packet of `n` bytes, to be encoded in place before the next call.
  std::span<std::byte> append(std::size_t n, bool high_priority) {
    lane& l = pending_[high_priority ? 0 : 1];
    const std::size_t off = l.data.size();
    l.data.resize(off + n);
    l.segments.push_back({nullptr, off, n});
    queued_ += n;
    return {l.data.data() + off, n};
  }
  /// Queues a packet shared with other connections (broadcast).
  void append_shared(shared_bytes b, bool high_priority) {
    lane& l = pending_[high_priority ? 0 : 1];
    const std::size_t n = b->size();
    l.segments.push_back({std::move(b), 0, n});
    queued_ += n;
  }

  bool has_pending() const noexcept { return !pending_[0].segments.empty() || !pending_[1].segments.empty(); }
  bool in_flight() const noexcept { return !batch_.empty(); }
  /// Bytes queued or being written.
  std::size_t queued_bytes() const noexcept { return queued_; }

  /// Moves everything pending into the batch being written (high priority first) and
  /// returns one view per packet. Only when no batch is in flight.
  std::span<const bytes_view> take_batch() {
    batch_.clear();
    for (int i = 0; i < 2; ++i) {
      std::swap(pending_[i], writing_[i]);
      for (const auto& s : writing_[i].segments) {
        const std::byte* base = s.shared ? s.shared->data() : writing_[i].data.data();
        batch_.push_back({base + s.offset, s.size});
        batch_bytes_ += s.size;
      }
    }
    return batch_;
  }
  /// The batch being written (what the last take_batch returned), until batch_done.
  std::span<const bytes_view> batch() const noexcept { return batch_; }
  /// Packets in the batch being written.
  std::size_t batch_count() const noexcept { return batch_.size(); }
  /// A lane keeps at most this much memory between batches: a large response is not
  /// held for the life of the connection (docs/reliability.md).
  static constexpr std::size_t keep_capacity = 256 * 1024;

  /// The batch was written: forget it, keep the memory (up to keep_capacity) for the
  /// next one.
  std::size_t batch_done() noexcept {
    const std::size_t n = batch_bytes_;
    queued_ -= n;
    batch_bytes_ = 0;
    batch_.clear();
    for (auto& l : writing_) {
      if (l.data.capacity() > keep_capacity) byte_buffer().swap(l.data);
      else l.data.clear();
      l.segments.clear();
    }
    return n;
  }
  /// Releases buffer memory when idle (low-memory mode).
  void shrink() {
    if (has_pending() || in_flight()) return;
    for (auto* ls : {&pending_, &writing_})
      for (auto& l : *ls) {
        byte_buffer().swap(l.data);
        std::vector<segment>().swap(l.segments);
      }
    std::vector<bytes_view>().swap(batch_);
  }

 private:
  struct segment {
    shared_bytes shared;  // null: bytes live in the lane's data
    std::size_t offset;
    std::size_t size;
  };
  struct lane {
    byte_buffer data;
    std::vector<segment> segments;
  };
  lane pending_[2];  // [0] high priority, [1] normal
  lane writing_[2];
  std::vector<bytes_view> batch_;
  std::size_t batch_bytes_ = 0;
  std::size_t queued_ = 0;
};

}  // namespace msgtrans::detail

// The one send path of a session, sans-I/O: the one encoder (outgoing_packet) and the
// outgoing queue with its one high-water rule (outbound_queue). Every way of sending —
// send, request, broadcast, a response, a heartbeat — goes through both.
#pragma once

#include "core/write_queue.hpp"

#include <msgtrans/error.hpp>
#include <msgtrans/options.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <span>
#include <system_error>

namespace msgtrans::detail {

/// One packet about to be encoded: its header, extension header and body. The body is
/// the payload itself, or its compressed form in this thread's scratch buffer (released
/// when this is destroyed). Compression is what send_options asks, else the automatic
/// mode of session_options decides.
class outgoing_packet {
 public:
  outgoing_packet(packet_type type, std::uint32_t message_id, bytes_view payload, const send_options& o,
                  const session_options& so);
  ~outgoing_packet();
  outgoing_packet(const outgoing_packet&) = delete;
  outgoing_packet& operator=(const outgoing_packet&) = delete;

  /// Compression failed, the extension header is over 65535 bytes, or the packet is over
  /// max_message_size (message_too_large).
  std::error_code error() const noexcept { return ec_; }
  /// Bytes on the wire.
  std::size_t size() const noexcept { return size_; }
  bool high_priority() const noexcept { return (v_.header.flags & flags::high_priority) != 0; }
  void set_message_id(std::uint32_t id) noexcept { v_.header.message_id = id; }  // size unchanged
  /// Writes the packet into `out` (exactly size() bytes).
  void encode_into(std::span<std::byte> out) const noexcept;

  /// The size a send is admitted with before it is compressed (from another thread).
  static std::size_t plain_size(bytes_view payload, const send_options& o) noexcept {
    return header_size + o.ext_header.size() + payload.size();
  }

 private:
  packet_view v_;
  std::size_t size_ = 0;  // encoded_size(v_), computed once
  bool in_scratch_ = false;
  std::error_code ec_;
};

/// The outgoing packets of one connection and the high-water rule, the same for every
/// path: a packet of n bytes is admitted unless something is queued (or posted from
/// another thread, on its way to the loop) and queued + posted + n passes
/// write_high_water (so one packet larger than the mark still goes out on an empty
/// queue). Reading from the peer pauses when a send is refused or the queue reaches the
/// mark, and resumes once it is at or below half of it.
///
/// admit() and the posted_* calls are safe from any thread; the rest runs on the loop.
class outbound_queue {
 public:
  explicit outbound_queue(std::size_t high_water) noexcept : high_water_(high_water) {}

  /// Any thread: errc::queue_full if `n` more bytes would pass the mark. A refusal also
  /// asks the loop to pause reading (at its next update_pause()); `first_refusal` is set
  /// when no refusal was pending yet (so another thread tells the loop once, not per send).
  std::error_code admit(std::size_t n, bool* first_refusal = nullptr) noexcept;
  /// Any thread: whether admit(n) would refuse now (without counting it as a refusal).
  bool would_refuse(std::size_t n) const noexcept {
    const std::size_t queued = load();
    return queued > 0 && queued + n > high_water_;
  }
  /// Any thread: `n` admitted bytes are posted to the loop / have arrived there.
  void posted_add(std::size_t n) noexcept { posted_.fetch_add(n, std::memory_order_relaxed); }
  void posted_sub(std::size_t n) noexcept { posted_.fetch_sub(n, std::memory_order_relaxed); }
  /// Any thread: queued plus posted bytes.
  std::size_t load() const noexcept {
    return queued_.load(std::memory_order_relaxed) + posted_.load(std::memory_order_relaxed);
  }

  /// Encodes `p` at the end of its lane.
  void push(const outgoing_packet& p);
  /// Queues a packet encoded once for several connections (broadcast).
  void push_shared(const std::shared_ptr<const byte_buffer>& encoded, bool high_priority);

  bool has_pending() const noexcept { return q_ && q_->has_pending(); }
  /// Everything pending, as one batch for connection::write.
  std::span<const bytes_view> take_batch() { return queue().take_batch(); }
  /// The batch being written (valid until batch_done).
  std::span<const bytes_view> batch() const noexcept {
    return q_ ? q_->batch() : std::span<const bytes_view>{};
  }
  struct done_batch {
    std::size_t packets = 0, bytes = 0;
  };
  /// The batch was written.
  done_batch batch_done() noexcept;

  /// Loop: whether update_pause() could start a pause now (a refusal is pending or the
  /// queue is at the mark); cheap, for every packet queued.
  bool may_pause() const noexcept {
    return !paused_ && (refused_.load(std::memory_order_relaxed) || load() >= high_water_);
  }
  /// Applies the pause rule; true while reading should stay paused for this queue.
  bool update_pause() noexcept;
  bool paused() const noexcept { return paused_; }

 private:
  write_queue& queue() {
    if (!q_) q_ = std::make_unique<write_queue>();  // an idle connection has none
    return *q_;
  }
  void mirror() noexcept { queued_.store(q_->queued_bytes(), std::memory_order_relaxed); }

  const std::size_t high_water_;
  std::unique_ptr<write_queue> q_;
  std::atomic<std::size_t> queued_{0};  // mirror of q_->queued_bytes() for other threads
  std::atomic<std::size_t> posted_{0};  // cross-thread sends on their way to the loop
  std::atomic<bool> refused_{false};    // a send was refused since the last update_pause
  bool paused_ = false;
};

}  // namespace msgtrans::detail

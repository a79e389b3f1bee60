#include "runtime/outbound_queue.hpp"

#include "core/scratch_region.hpp"

namespace msgtrans::detail {

namespace {
// Outgoing: compressed bytes live here until encoded into the write queue (per loop
// thread, not per session).
byte_buffer& out_scratch() {
  thread_local byte_buffer b;
  return b;
}
}  // namespace

outgoing_packet::outgoing_packet(packet_type type, std::uint32_t message_id, bytes_view payload, const send_options& o,
                                 const session_options& so) {
  const compression c = o.compression.value_or(
      so.auto_compress != compression::none && payload.size() >= so.auto_compress_min ? so.auto_compress
                                                                                      : compression::none);
  v_.header.compression = c;
  v_.header.type = type;
  v_.header.biz_type = o.biz_type;
  v_.header.message_id = message_id;
  v_.header.flags = o.flags;
  v_.ext_header = o.ext_header;
  v_.payload = payload;
  if (o.ext_header.size() > 0xFFFF) {
    ec_ = errc::invalid_argument;
    return;
  }
  if (c != compression::none) {
    in_scratch_ = true;
    out_scratch().clear();
    ec_ = compress(c, payload, out_scratch());
    v_.payload = out_scratch();
  }
  size_ = encoded_size(v_);
  if (!ec_ && size_ > so.max_message_size) ec_ = errc::message_too_large;
}

outgoing_packet::~outgoing_packet() {
  if (!in_scratch_) return;
  // A large buffer is not kept.
  auto& b = out_scratch();
  if (b.capacity() > scratch_region::keep) byte_buffer().swap(b);
  else b.clear();
}

void outgoing_packet::encode_into(std::span<std::byte> out) const noexcept { (void)encode_to(v_, out); }

std::error_code outbound_queue::admit(std::size_t n, bool* first_refusal) noexcept {
  if (!would_refuse(n)) return {};
  const bool was = refused_.exchange(true, std::memory_order_relaxed);
  if (first_refusal) *first_refusal = !was;
  return errc::queue_full;
}

void outbound_queue::push(const outgoing_packet& p) {
  p.encode_into(queue().append(p.size(), p.high_priority()));
  mirror();
}

void outbound_queue::push_shared(const std::shared_ptr<const byte_buffer>& encoded, bool high_priority) {
  queue().append_shared(encoded, high_priority);
  mirror();
}

outbound_queue::done_batch outbound_queue::batch_done() noexcept {
  done_batch d;
  if (!q_) return d;
  d.packets = q_->batch_count();
  d.bytes = q_->batch_done();
  mirror();
  return d;
}

bool outbound_queue::update_pause() noexcept {
  const std::size_t q = load();
  if (refused_.load(std::memory_order_relaxed)) {  // a plain load first: this runs per packet
    refused_.store(false, std::memory_order_relaxed);
    paused_ = true;
  }
  if (q >= high_water_) paused_ = true;
  if (paused_ && q <= high_water_ / 2) paused_ = false;
  return paused_;
}

}  // namespace msgtrans::detail

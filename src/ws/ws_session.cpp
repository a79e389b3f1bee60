// The RFC 6455 connection state without I/O. See ws_session.hpp.
#include "ws/ws_session.hpp"

#include <msgtrans/error.hpp>

#include <algorithm>
#include <cstring>
#include <utility>

namespace msgtrans::ws {

namespace {

// Packets no bigger than this are copied next to their frame header; bigger ones are
// referenced in place by a gather write.
constexpr std::size_t copy_threshold = 2048;
// The write buffer keeps at most this much between batches.
constexpr std::size_t keep_write_buffer = 256 * 1024;

// memcpy, but an empty copy may come with null pointers (empty spans).
void copy_bytes(std::byte* to, const std::byte* from, std::size_t n) noexcept {
  if (n) std::memcpy(to, from, n);
}

}  // namespace

std::uint16_t close_code_for(const close_info& info) noexcept {
  if (info.transport_code >= 1000 && info.transport_code <= 4999 &&
      is_valid_close_code(static_cast<std::uint16_t>(info.transport_code)))
    return static_cast<std::uint16_t>(info.transport_code);
  switch (info.reason) {
    case close_reason::shutdown: return close_code::going_away;
    case close_reason::idle_timeout: return close_code::going_away;
    case close_reason::handshake_timeout: return close_code::going_away;
    case close_reason::protocol_error: return close_code::protocol_error;
    case close_reason::limit_reached: return close_code::policy_violation;
    case close_reason::rate_limited: return close_code::policy_violation;
    case close_reason::error: return close_code::internal_error;
    case close_reason::normal:
    case close_reason::peer_closed: return close_code::normal;
  }
  return close_code::normal;
}

void write_batch::shrink() noexcept {
  if (cap <= keep_write_buffer) return;
  buf.reset();
  cap = 0;
}

session::session(const session_config& cfg, time_point now) : cfg_(cfg) {
  if (cfg_.keep_alive_interval.count() > 0) next_ping_ = now + cfg_.keep_alive_interval;
}

// ---- input ------------------------------------------------------------------------------

receive_result session::receive(std::span<std::byte> in, time_point now) {
  message_done();
  receive_result r;
  if (rx_broken_ || state_ == state::closed) {
    r.consumed = in.size();
    return r;
  }
  const std::size_t max = cfg_.limits.max_message_size;
  const std::uint64_t room = frag_active_ ? max - std::min(max, frag_.size()) : max;
  auto p = parse_frame_header(in, cfg_.self, room);
  if (p.status == parse_result::need_more) {
    r.need = in.size() + 1;
    return r;
  }
  if (p.status == parse_result::fail) {
    // The byte stream can no longer be cut into frames: say why, then drop the
    // connection once the close frame is out, without waiting for an answer.
    fail(p.close_code, p.reason, now);
    rx_broken_ = true;
    r.consumed = in.size();
    return r;
  }
  const auto& h = p.header;
  const std::size_t total = h.header_len + static_cast<std::size_t>(h.payload_len);
  if (in.size() < total) {
    r.need = total;
    return r;
  }
  std::span<std::byte> payload = in.subspan(h.header_len, static_cast<std::size_t>(h.payload_len));
  if (h.masked) apply_mask(payload.data(), payload.size(), h.mask);
  r.consumed = total;
  handle_frame(h, payload, now, r);
  return r;
}

void session::message_done() noexcept {
  if (!frag_active_ && !frag_.empty()) byte_buffer().swap(frag_);
}

void session::handle_frame(const frame_header& h, std::span<std::byte> payload, time_point now,
                           receive_result& r) {
  switch (h.op) {
    case opcode::text:
      fail(close_code::unsupported_data,
           "text messages are not part of the msgtrans protocol: send each packet as one binary message", now);
      return;
    case opcode::binary:
    case opcode::continuation:
      return on_data_frame(h, payload, now, r);
    case opcode::ping:
      return on_ping(payload, now, r);
    case opcode::pong:
      awaiting_pong_ = false;
      pong_deadline_ = no_deadline;
      return;
    case opcode::close:
      return on_close_frame(payload, now);
  }
}

void session::on_data_frame(const frame_header& h, std::span<std::byte> payload, time_point now,
                            receive_result& r) {
  if (h.op == opcode::binary && frag_active_)
    return fail(close_code::protocol_error, "a new message started before the fragmented one ended", now);
  if (h.op == opcode::continuation && !frag_active_)
    return fail(close_code::protocol_error, "continuation frame without a message to continue", now);
  if (h.op == opcode::binary && h.fin) {
    // closing: data after our close is dropped
    r.has_message = state_ == state::open;
    r.message = payload;
    return;
  }
  frag_active_ = true;
  frag_.insert(frag_.end(), payload.begin(), payload.end());
  if (!h.fin) return;
  frag_active_ = false;  // frag_ is freed by message_done()
  r.has_message = state_ == state::open;
  r.message = frag_;
}

void session::on_ping(bytes_view payload, time_point now, receive_result& r) {
  if (state_ != state::open) return;
  if (ping_refill_ == time_point{}) ping_refill_ = now;
  ping_tokens_ =
      std::min(ping_burst, ping_tokens_ + ping_rate * std::chrono::duration<double>(now - ping_refill_).count());
  ping_refill_ = now;
  if (ping_tokens_ < 1) {
    r.ping_flood = true;
    fail(close_code::policy_violation,
         "ping flood: more than " + std::to_string(static_cast<int>(ping_burst)) + " pings at once or " +
             std::to_string(static_cast<int>(ping_rate)) + " per second",
         now);
    return;
  }
  ping_tokens_ -= 1;
  pong_len_ = static_cast<std::uint8_t>(payload.size());  // at most 125 (checked by the frame parser)
  copy_bytes(pong_body_.data(), payload.data(), pong_len_);
  pong_pending_ = true;
}

void session::on_close_frame(bytes_view payload, time_point now) {
  auto c = parse_close_payload(payload);
  if (state_ == state::closing) {
    // The answer to our close frame (or a crossing one): the handshake is complete.
    peer_close_seen_ = true;
    if (close_written_) state_ = state::closed;
    return;
  }
  if (state_ != state::open) return;
  if (c.error) {
    fail(c.error,
         c.error == close_code::invalid_payload ? "close reason is not valid UTF-8"
                                                : "invalid close frame (bad code or length)",
         now);
    return;
  }
  peer_close_seen_ = true;
  final_ = {close_reason::peer_closed, {}, std::string(c.reason), c.code};
  enter_closing(now);
  // Echo the code (RFC 6455 5.5.1); a close without a code is answered without one.
  std::byte body[max_control_payload];
  const std::size_t n = c.code == close_code::no_status ? 0 : encode_close_payload(body, c.code, {});
  queue_control(opcode::close, {body, n});
  close_queued_ = true;
}

bool session::on_eof(std::error_code ec, bool clean, bytes_view unprocessed) {
  if (state_ == state::closed) return false;
  if (state_ == state::closing) {
    state_ = state::closed;
    return false;
  }
  std::string truncated = truncated_packet(unprocessed);
  const bool was_truncated = !truncated.empty();
  final_ = {close_reason::peer_closed, ec,
            was_truncated ? std::move(truncated)
            : clean       ? "the peer dropped the connection without a close frame"
                          : "read failed: " + ec.message(),
            close_code::abnormal};
  state_ = state::closed;
  return was_truncated;
}

// The input ended: if in the middle of a message (a fragmented one, or a binary frame
// partly received), "truncated packet: N of M bytes" (M from the packet header once its
// 16 bytes came); else empty.
std::string session::truncated_packet(bytes_view avail) const {
  std::size_t have = frag_active_ ? frag_.size() : 0;
  std::byte head[header_size];
  std::size_t head_len = std::min(have, header_size);
  copy_bytes(head, frag_.data(), head_len);
  auto r = parse_frame_header(avail, cfg_.self, cfg_.limits.max_message_size);
  const bool data_frame =
      r.status == parse_result::ok && (r.header.op == opcode::binary || r.header.op == opcode::continuation);
  if (data_frame) {
    const std::size_t part = std::min<std::size_t>(avail.size() - r.header.header_len, r.header.payload_len);
    for (std::size_t i = 0; head_len < header_size && i < part; ++i)  // unmask what the header needs
      head[head_len++] = avail[r.header.header_len + i] ^
                         std::byte{r.header.masked ? r.header.mask[i % 4] : std::uint8_t{0}};
    have += part;
  }
  if (!frag_active_ && !data_frame) return {};
  if (head_len < header_size)
    return "truncated packet: " + std::to_string(have) + " of at least " + std::to_string(header_size) + " bytes";
  auto h = decode_header({head, header_size}, cfg_.limits);
  if (!h) return {};  // not a packet anyway: "dropped the connection" says enough
  return "truncated packet: " + std::to_string(have) + " of " + std::to_string(h->total_size()) + " bytes";
}

void session::on_write_failed(std::error_code ec) {
  if (state_ == state::closed) return;
  if (state_ == state::open)
    final_ = {close_reason::error, ec, "write failed: " + ec.message(), close_code::abnormal};
  state_ = state::closed;
}

void session::on_written() noexcept {
  if (!close_in_flight_ || state_ == state::closed) return;
  close_written_ = true;
  // The server closes the TCP connection once both close frames have passed; a client
  // whose close is answered does the same rather than wait for the server.
  if (peer_close_seen_ || rx_broken_ || peer_unresponsive_) state_ = state::closed;
}

// ---- time -------------------------------------------------------------------------------

time_point session::next_deadline() const noexcept {
  switch (state_) {
    case state::closed: return no_deadline;
    case state::closing: return close_deadline_;
    case state::open: return awaiting_pong_ ? pong_deadline_ : next_ping_;
  }
  return no_deadline;
}

void session::on_timer(time_point now) {
  if (state_ == state::closing) {
    if (now >= close_deadline_) state_ = state::closed;  // the peer never answered our close
    return;
  }
  if (state_ != state::open) return;
  if (awaiting_pong_ && now >= pong_deadline_) {
    close_info info{close_reason::idle_timeout, make_error_code(errc::timeout),
                    "no pong within " + std::to_string(cfg_.keep_alive_timeout.count()) + " ms", 0};
    peer_unresponsive_ = true;  // no point waiting for its close frame
    std::string reason = info.detail;
    begin_close(close_code::going_away, reason, std::move(info), now);
    return;
  }
  if (!awaiting_pong_ && next_ping_ != no_deadline && now >= next_ping_) {
    queue_control(opcode::ping, {});
    awaiting_pong_ = true;
    pong_deadline_ = now + cfg_.keep_alive_timeout;
    next_ping_ = now + cfg_.keep_alive_interval;
  }
}

// ---- closing ----------------------------------------------------------------------------

void session::close(close_info info, time_point now) {
  if (state_ != state::open) return;
  const std::uint16_t code = close_code_for(info);
  const std::string reason = info.detail.empty() ? to_string(info.reason) : info.detail;
  begin_close(code, reason, std::move(info), now);
}

// A protocol violation by the peer: close with `code` and say why.
void session::fail(std::uint16_t code, std::string reason, time_point now) {
  if (state_ != state::open) return;
  const bool too_big = code == close_code::too_big;
  close_info info;
  info.reason = too_big ? close_reason::limit_reached : close_reason::protocol_error;
  info.error = make_error_code(too_big ? errc::message_too_large : errc::protocol_error);
  info.detail = reason;
  begin_close(code, reason, std::move(info), now);
}

void session::begin_close(std::uint16_t code, std::string_view reason, close_info info, time_point now) {
  final_ = std::move(info);
  final_.transport_code = code;
  enter_closing(now);
  std::byte body[max_control_payload];
  const std::size_t n = encode_close_payload(body, code, reason);
  queue_control(opcode::close, {body, n});
  close_queued_ = true;
}

void session::enter_closing(time_point now) {
  state_ = state::closing;
  close_deadline_ = now + cfg_.close_timeout;
}

// ---- output -----------------------------------------------------------------------------

mask_source& session::masks() {
  if (!masks_) masks_ = std::make_unique<mask_source>();
  return *masks_;
}

void session::queue_control(opcode op, bytes_view payload) {
  if (close_queued_) return;  // nothing may follow a close frame
  const bool mask = cfg_.self == role::client;
  std::byte hdr[max_header_size];
  std::array<std::uint8_t, 4> m{};
  if (mask) m = masks().next();
  const std::size_t hl = encode_frame_header(hdr, op, payload.size(), mask ? m.data() : nullptr);
  const std::size_t at = ctl_.size();
  ctl_.insert(ctl_.end(), hdr, hdr + hl);
  ctl_.insert(ctl_.end(), payload.begin(), payload.end());
  if (mask) apply_mask(ctl_.data() + at + hl, payload.size(), m);
}

void session::build_batch(std::span<const bytes_view> packets, bool with_data, bool gather, write_batch& b) {
  const bool mask = cfg_.self == role::client;
  gather = gather && !mask;
  with_data = with_data && state_ == state::open;
  if (std::exchange(pong_pending_, false)) queue_control(opcode::pong, {pong_body_.data(), pong_len_});
  std::size_t need = ctl_.size();
  if (with_data)
    for (auto p : packets) {
      need += frame_header_size(p.size(), mask);
      if (!gather || p.size() <= copy_threshold) need += p.size();
    }
  if (need > b.cap) {
    b.cap = std::max(need, b.cap * 2);
    b.buf.reset(new std::byte[b.cap]);
  }
  std::byte* w = b.buf.get();
  b.segments.clear();
  std::size_t pos = ctl_.size(), seg = 0;
  copy_bytes(w, ctl_.data(), ctl_.size());
  ctl_.clear();
  close_in_flight_ = close_queued_;
  b.has_data = with_data;
  for (std::size_t i = 0; with_data && i < packets.size(); ++i) {
    const bytes_view p = packets[i];
    std::array<std::uint8_t, 4> m{};
    if (mask) m = masks().next();
    pos += encode_frame_header(w + pos, opcode::binary, p.size(), mask ? m.data() : nullptr);
    if (gather && p.size() > copy_threshold) {
      b.segments.emplace_back(w + seg, pos - seg);
      b.segments.push_back(p);
      seg = pos;
      continue;
    }
    copy_bytes(w + pos, p.data(), p.size());
    if (mask) apply_mask(w + pos, p.size(), m);
    pos += p.size();
  }
  if (pos > seg) b.segments.emplace_back(w + seg, pos - seg);
}

}  // namespace msgtrans::ws

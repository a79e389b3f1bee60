/// @file ws_session.hpp
/// One WebSocket connection's RFC 6455 state, sans-I/O (ngtcp2-style): fed the bytes
/// received and the current time, it hands back whole binary messages (= packets, as
/// bytes: it never decodes them), the bytes to send (pong, ping and close frames, and the
/// data frames built from packets), a close decision and its next deadline. No sockets,
/// no Asio, no clock: time is always a parameter, so tests run on fake time.
///
/// It owns: fragment reassembly, text frames (close 1003), the control-frame rules, one
/// pending pong (a newer ping replaces an unsent pong), the ping-flood bucket (a burst
/// of 100, then 50 per second; past it close 1008 "ping flood"), the keep-alive ping and
/// its timeout, the size limit from the frame header (close 1009 before buffering), the
/// close handshake and its bound, and "truncated packet: N of M bytes" at end of input.
#pragma once

#include "ws/ws_frame.hpp"

#include <msgtrans/packet.hpp>
#include <msgtrans/transport.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace msgtrans::ws {

using time_point = std::chrono::steady_clock::time_point;
inline constexpr time_point no_deadline = time_point::max();

/// Pings a peer may send: a burst of ping_burst, then ping_rate per second; past that it
/// is closed with 1008 "ping flood" (docs/reliability.md).
inline constexpr double ping_burst = 100;
inline constexpr double ping_rate = 50;

/// What every session of one listener or connector shares (kept by reference).
struct session_config {
  role self = role::server;  ///< our end: a server receives masked frames and sends unmasked ones
  decode_limits limits;      ///< limits.max_message_size bounds each message, from its frame headers
  std::chrono::milliseconds keep_alive_interval{0};  ///< ping this often (0 = never)
  std::chrono::milliseconds keep_alive_timeout{0};   ///< a ping unanswered this long closes (1001)
  std::chrono::milliseconds close_timeout{5000};     ///< bound on the close handshake
};

/// The close code for a close() the application asked for: info.transport_code when it
/// is a valid close code, else by reason (shutdown/idle → 1001, protocol_error → 1002,
/// limit_reached → 1008, error → 1011, otherwise 1000).
std::uint16_t close_code_for(const close_info& info) noexcept;

/// The outcome of one receive() step.
struct receive_result {
  std::size_t consumed = 0;  ///< input bytes used; 0: the frame at the front is not complete
  std::size_t need = 0;      ///< when consumed == 0: bytes that frame needs in all (at least)
  bool has_message = false;  ///< `message` holds one whole binary message
  bytes_view message;        ///< valid until message_done() or the next receive()
  bool ping_flood = false;   ///< the peer flooded pings: closing, outcome().detail says so
};

/// One write's worth of frames: control frames first, then one binary frame per packet.
/// `segments` are the bytes to write, in order (pointing into `buf` and, for big packets
/// of a gather write, into the packets themselves).
struct write_batch {
  std::unique_ptr<std::byte[]> buf;
  std::size_t cap = 0;
  std::vector<bytes_view> segments;
  bool has_data = false;
  /// After a big message, drop the copy rather than keep it between batches.
  void shrink() noexcept;
};

class session {
 public:
  /// `cfg` must outlive the session. `now` starts the keep-alive schedule.
  session(const session_config& cfg, time_point now);
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  // --- input ---
  /// Handles the frame at the front of `in` (unmasking it in place). Call again with the
  /// rest until consumed == 0. Data after a framing error, or after our close while the
  /// peer's is awaited, is consumed and dropped.
  receive_result receive(std::span<std::byte> in, time_point now);
  /// Frees a delivered fragmented message (call once the message has been handed on).
  void message_done() noexcept;
  /// The input ended (`clean`: EOF; else the read failed with `ec`). `unprocessed` is
  /// what was received but not consumed. Returns true when it ended inside a packet
  /// (outcome().detail: "truncated packet: N of M bytes").
  bool on_eof(std::error_code ec, bool clean, bytes_view unprocessed);
  /// The write of the last batch failed.
  void on_write_failed(std::error_code ec);
  /// The last batch was written.
  void on_written() noexcept;
  /// Time passed: sends the keep-alive ping, closes on a missing pong, ends a close
  /// handshake that took too long.
  void on_timer(time_point now);
  /// The application closes (see close_code_for). Ignored unless open.
  void close(close_info info, time_point now);

  // --- output ---
  /// Control frames are waiting to be written.
  bool has_output() const noexcept { return pong_pending_ || !ctl_.empty(); }
  /// Frames the waiting control frames and, when `with_data` (ignored unless open), one
  /// binary frame per packet into `b`. `gather`: packets over 2 KiB are referenced in
  /// place rather than copied (unmasked output only).
  void build_batch(std::span<const bytes_view> packets, bool with_data, bool gather, write_batch& b);
  /// When next to call on_timer (no_deadline: never).
  time_point next_deadline() const noexcept;

  // --- state ---
  bool is_open() const noexcept { return state_ == state::open; }
  bool is_closing() const noexcept { return state_ == state::closing; }
  /// The connection is over: close the socket and report outcome().
  bool finished() const noexcept { return state_ == state::closed; }
  /// How and why it ended (or is ending).
  const close_info& outcome() const noexcept { return final_; }
  close_info take_outcome() noexcept { return std::move(final_); }
  /// Bytes of a fragmented message held (for the inbound budget).
  std::size_t fragment_bytes() const noexcept { return frag_.size(); }

 private:
  enum class state : std::uint8_t { open, closing, closed };

  void handle_frame(const frame_header& h, std::span<std::byte> payload, time_point now, receive_result& r);
  void on_data_frame(const frame_header& h, std::span<std::byte> payload, time_point now, receive_result& r);
  void on_ping(bytes_view payload, time_point now, receive_result& r);
  void on_close_frame(bytes_view payload, time_point now);
  void fail(std::uint16_t code, std::string reason, time_point now);
  void begin_close(std::uint16_t code, std::string_view reason, close_info info, time_point now);
  void enter_closing(time_point now);
  void queue_control(opcode op, bytes_view payload);
  std::string truncated_packet(bytes_view unprocessed) const;
  mask_source& masks();

  const session_config& cfg_;
  state state_ = state::open;
  bool frag_active_ = false;
  bool rx_broken_ = false;  // a framing error: the rest of the input is discarded
  bool pong_pending_ = false;
  bool awaiting_pong_ = false;
  bool close_queued_ = false;
  bool close_in_flight_ = false;
  bool close_written_ = false;
  bool peer_close_seen_ = false;
  bool peer_unresponsive_ = false;
  std::uint8_t pong_len_ = 0;
  std::array<std::byte, max_control_payload> pong_body_{};
  byte_buffer frag_;
  byte_buffer ctl_;  // our ping and close frames, framed (one of each at most)
  double ping_tokens_ = ping_burst;
  time_point ping_refill_{};
  time_point next_ping_ = no_deadline;
  time_point pong_deadline_ = no_deadline;
  time_point close_deadline_ = no_deadline;
  std::unique_ptr<mask_source> masks_;  // clients only (they mask), made on first use
  close_info final_;
};

}  // namespace msgtrans::ws

// One connection as the runtime sees it: the transport connection, the outgoing queue
// (the one send path), the requests it sent, its one timer and its counters. Lives on
// one loop; the methods marked "any thread" post to it.
#pragma once

#include "core/op_allocator.hpp"
#include "core/request_table.hpp"
#include "runtime/host_counters.hpp"
#include "runtime/outbound_queue.hpp"
#include "runtime/peer_limits.hpp"
#include "runtime/session_deadlines.hpp"

#include <msgtrans/error.hpp>
#include <msgtrans/events.hpp>
#include <msgtrans/session.hpp>
#include <msgtrans/stats.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <chrono>
#include <memory>
#include <vector>

namespace msgtrans::detail {

class session_core;

/// Calls an Asio completion handler with `args` from a fresh handler on `loop`, then on
/// the handler's own associated executor (a coroutine resumes where it belongs).
template <class Handler, class... Args>
void complete_later(Handler h, boost::asio::io_context& loop, Args... args) {
  boost::asio::post(loop, [h = std::move(h), args...]() mutable {
    auto ex = boost::asio::get_associated_executor(h);
    boost::asio::dispatch(ex, [h = std::move(h), args...]() mutable { std::move(h)(std::move(args)...); });
  });
}

using response_handler = boost::asio::any_completion_handler<void(std::error_code, packet)>;

/// What a session reports to its server or client. Called on the session's loop.
class session_host {
 public:
  virtual void session_established(session_core& s) = 0;
  virtual void session_message(session_core& s, const message& m) = 0;
  virtual void session_request(session_core& s, request& r) = 0;
  virtual void session_closed(session_core& s, const close_info& info) = 0;
  /// A packet with this message_id was handed to the kernel (acknowledged, on QUIC).
  /// Called only if wants_sent() was true when the session was made.
  virtual void session_sent(session_core&, std::uint32_t /*message_id*/) {}
  virtual bool wants_sent() const noexcept { return false; }
  /// An inbound request was answered (or its responder dropped).
  virtual void request_answered() noexcept {}
  virtual host_counters& counters() noexcept = 0;
  /// The session went over session_options::max_messages_per_second or
  /// max_bytes_per_second (`detail` says which); it is being closed or paused, as
  /// `action` says. Counted already in counters().
  virtual void session_rate_limited(session_core&, rate_limit_action /*action*/, const std::string& /*detail*/) {}
  /// The inbound decoding budget that decompression counts against (null: none).
  virtual inbound_budget* budget() noexcept { return nullptr; }
  /// True on a loop thread of the runtime the sessions live on (a blocking call there
  /// returns errc::wrong_thread).
  virtual bool on_loop_thread() const noexcept { return false; }
  /// Server: true when a connection must authenticate before it is established
  /// (server_builder::on_authenticate).
  virtual bool authenticates() const noexcept { return false; }
  /// Server: asks the authentication hook; `done` runs once, on any thread.
  virtual void authenticate(session_core&, auth_request, std::function<void(auth_outcome)> done) { (void)done; }

 protected:
  ~session_host() = default;
};

class session_core final : public connection_owner, public std::enable_shared_from_this<session_core> {
 public:
  using clock = std::chrono::steady_clock;

  session_core(session_host& host, boost::asio::io_context& loop, std::unique_ptr<connection> conn, session_id id,
               const session_options& opts, bool server_side);
  ~session_core();

  session_id id() const noexcept { return id_; }
  boost::asio::io_context& loop() noexcept { return loop_; }
  bool on_loop() const noexcept { return loop_.get_executor().running_in_this_thread(); }
  bool is_open() const noexcept { return state_.load(std::memory_order_acquire) == state::open; }
  connection_info info() const;
  const endpoint_info& endpoint() const noexcept { return endpoint_; }

  /// On the loop: report established, then start reading and the timer. A server
  /// session of a host that authenticates waits for its authentication packet first
  /// (session_auth.cpp); `defer_established` (a client presenting credentials) starts
  /// reading and leaves the report to report_established().
  void start(bool defer_established = false);
  /// On the loop: reports the session established (after start(true)).
  void report_established();
  /// True once reported established (authenticated, if the host authenticates).
  bool established() const noexcept { return established_.load(std::memory_order_acquire); }
  /// Who it is, once established (null without authentication).
  std::shared_ptr<const msgtrans::identity> identity() const noexcept {
    return established() ? identity_ : nullptr;
  }

  // Any thread. Each goes through the one send path (admit, then enqueue on the loop).
  std::error_code send(packet_type type, std::uint32_t response_id, bytes_view payload, const send_options& o);
  /// A packet encoded once for several sessions (broadcast).
  std::error_code send_shared(const std::shared_ptr<const byte_buffer>& encoded, bool high_priority);
  void request(bytes_view payload, std::chrono::milliseconds timeout, const send_options& o, response_handler h);
  /// Flushes what is queued, then closes with `info`.
  void close(close_info info);
  /// Pauses or resumes reading on behalf of a full event stream.
  void set_event_backpressure(bool paused);

  /// Called by a responder that is destroyed or used (inbound request bookkeeping).
  void inbound_request_done() noexcept;
  void record_response_time(std::chrono::steady_clock::duration d) noexcept {
    host_.counters().response_latency.record(std::chrono::duration_cast<std::chrono::nanoseconds>(d));
  }

  // connection_owner (on the loop)
  void on_packet(bytes_view bytes) override;
  void on_write_done() override;
  void on_acked(std::size_t packets) override;
  void on_closed(close_info info) override;

 private:
  enum class state { open, closing, closed };
  struct new_request {
    std::chrono::milliseconds timeout;
    response_handler& done;
  };

  // The loop side of the send path: encodes the packet into the queue, unless the queue
  // refuses it (`admitted`: another thread admitted it already). `r`: register a request.
  std::error_code enqueue(packet_type type, std::uint32_t id, bytes_view payload, const send_options& o,
                          bool admitted, new_request* r = nullptr);
  std::error_code enqueue_shared(const std::shared_ptr<const byte_buffer>& encoded, bool high, bool admitted);
  // Admission (any thread): counts a refusal; on the loop, a refusal pauses reading. The
  // check is inline: it runs for every packet sent.
  std::error_code admit(std::size_t n) { return out_.would_refuse(n) ? refuse(n) : std::error_code(); }
  std::error_code refuse(std::size_t n);
  // backpressure_mode::wait, off the loop: waits for room for `n` bytes.
  std::error_code wait_for_room(std::size_t n) {
    if (opts_.backpressure != backpressure_mode::wait || !out_.would_refuse(n)) return {};
    return wait_until_room(n);
  }
  std::error_code wait_until_room(std::size_t n);
  void register_request(std::uint32_t id, new_request& r);
  void queued();
  void schedule_flush();
  void flush();
  void update_reading();
  void collect_sent();
  void deliver_sent();
  void arm_timer();
  void on_timer();
  void expire_requests(clock::time_point now);
  void close_for(close_reason why, const char* detail);
  // Charges a received packet of `n` bytes to the rate buckets; false if it must not be
  // delivered (rate_limit_action::close: the connection is closing).
  bool within_rate(clock::time_point now, std::size_t n);
  void rate_exceeded(std::string detail);
  void resume_after_rate(clock::time_point now);
  void fail_all_requests(std::error_code ec);
  void protocol_violation(std::error_code ec, std::string detail);
  // Decompresses into the loop's scratch region, then dispatches.
  void on_compressed(const packet_view& v);
  // Hands a validated packet, its payload decompressed, to the request table or the host.
  void dispatch(const packet_view& v, bytes_view payload);
  void dispatch_response(const packet_view& v, bytes_view payload);
  // Authentication, server side (session_auth.cpp): the first packet, then the verdict.
  void on_auth_packet(bytes_view bytes);
  void auth_decided(auth_outcome o);

  session_host& host_;
  boost::asio::io_context& loop_;
  std::unique_ptr<connection> conn_;
  endpoint_info endpoint_;
  std::shared_ptr<const peer_certificate> certificate_;  // mutual TLS: the client's, fixed at the handshake
  session_id id_;
  const session_options& opts_;  // the host's: it outlives its sessions
  std::chrono::system_clock::time_point established_at_;

  std::atomic<state> state_{state::open};
  // Set by close(): what to tell the transport after the flush (made then: most
  // connections never hold one while idle).
  std::unique_ptr<close_info> pending_close_;
  close_info pending_close() const { return pending_close_ ? *pending_close_ : close_info{}; }
  bool started_ = false;
  std::atomic<bool> established_{false};
  std::shared_ptr<const msgtrans::identity> identity_;
  // Made while a server session waits to authenticate; gone once decided.
  struct auth_wait {
    bool asked = false;           // the authentication packet came; the hook was asked
    std::uint32_t request_id = 0;  // its message_id, for the answer
    // Packets that came behind the credentials (already read): delivered once accepted,
    // in order; dropped if rejected. Bounded (auth_hold_limit).
    std::vector<byte_buffer> held;
    std::size_t held_bytes = 0;
  };
  std::unique_ptr<auth_wait> auth_;
  bool flush_posted_ = false;
  bool writing_ = false;
  bool paused_by_events_ = false;
  bool reading_ = true;
  bool paused_by_rate_ = false;
  // Sent events: reported at all (the host wants them; only then is sent_ made).
  const bool report_sent_;
  struct sent_state {
    bool by_ack = false;               // the transport acknowledges (QUIC): report at on_acked
    std::vector<std::uint32_t> ids;    // to report now
    std::deque<std::pair<std::uint32_t, bool>> unacked;  // by_ack: written, not acked (id, report it)
    std::size_t acked_ahead = 0;       // acknowledged before their on_write_done came
  };
  std::unique_ptr<sent_state> sent_;

  outbound_queue out_;
  message_id_allocator ids_;
  std::unique_ptr<request_table<response_handler>> requests_;  // made by the first request sent

  // The rate limits' buckets; made only when a limit is set (an unlimited session pays
  // one test per packet).
  struct rate_state {
    gcra messages, bytes;
    std::int64_t message_cost = 0;  // ns per packet (0: no packet limit)
    std::uint64_t byte_rate = 0;    // bytes per second (0: no byte limit)
    std::int64_t burst = 0;         // ns
  };
  std::unique_ptr<rate_state> rate_;

  // Bound to the loop's own executor type (not any_io_executor): smaller timer, smaller op.
  boost::asio::basic_waitable_timer<clock, boost::asio::wait_traits<clock>, boost::asio::io_context::executor_type>
      timer_;
  clock::time_point timer_at_ = clock::time_point::max();
  session_deadlines deadlines_;

  std::atomic<std::uint64_t> packets_in_{0}, packets_out_{0}, bytes_in_{0}, bytes_out_{0}, batches_out_{0};

  // backpressure_mode::wait: senders on other threads wait here for room. Made only in
  // that mode (an idle connection should not carry a mutex and a condition variable).
  struct room_wait {
    std::mutex mu;
    std::condition_variable cv;
  };
  std::unique_ptr<room_wait> room_;
  std::atomic<int> room_waiters_{0};
};

}  // namespace msgtrans::detail

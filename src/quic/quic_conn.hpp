// One QUIC connection: the ngtcp2_conn state machine, its TLS session, its timer, and
// the msgtrans stream (send buffer + frame decoder). Shared by both sides; a `conn_host`
// (the server endpoint, or a client's own socket) moves its datagrams.
//
// Lifetime: the host only points at its connections. A connection is kept alive by its
// pending timer wait (ngtcp2 always has an expiry until the connection is over) and, once
// delivered, by the msgtrans::connection handle the runtime holds.
#pragma once

#include "quic/send_buffer.hpp"
#include "quic/tls.hpp"

#include <msgtrans/frame_decoder.hpp>
#include <msgtrans/quic.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <array>
#include <memory>
#include <optional>
#include <vector>

namespace msgtrans::quic_detail {

class quic_conn;

inline constexpr std::size_t server_cid_len = 18;
using static_secret = std::array<std::uint8_t, 32>;

ngtcp2_tstamp now_ts() noexcept;
void random_bytes(std::uint8_t* p, std::size_t n) noexcept;
/// The ngtcp2 callback table of a server or a client connection (quic_conn_callbacks.cpp).
ngtcp2_callbacks make_callbacks(bool server);

/// Moves a connection's datagrams and learns about its life events.
class conn_host {
 public:
  virtual void send_packets(const ngtcp2_addr& remote, const std::uint8_t* buf, const std::size_t* lens,
                            std::size_t n) = 0;
  /// A CONNECTION_CLOSE: leaves now (after anything sent before it), never deferred to a
  /// later loop turn that a stopping loop may not run.
  virtual void send_close(const ngtcp2_addr& remote, const std::uint8_t* buf, std::size_t len) {
    send_packets(remote, buf, &len, 1);
  }
  /// True while the socket's send buffer is full (what is sent now waits in a queue):
  /// connections stop producing packets until `wait_writable` calls them back.
  virtual bool send_blocked() const { return false; }
  /// Calls `c->flush()` once the socket has drained.
  virtual void wait_writable(const std::shared_ptr<quic_conn>& c) { (void)c; }
  /// A new connection ID of `c` (server: route datagrams carrying it to `c`).
  virtual void add_cid(quic_conn& c, const ngtcp2_cid& cid) = 0;
  virtual void remove_cid(const ngtcp2_cid& cid) = 0;
  /// The handshake completed: the connection can carry packets.
  virtual void on_established(const std::shared_ptr<quic_conn>& c) = 0;
  /// The connection ended before it was established (handshake failure, timeout).
  virtual void on_failed(quic_conn& c, const close_info& why) = 0;
  /// The connection is over (also called from its destructor if it never got there).
  virtual void on_terminated(quic_conn& c) = 0;

 protected:
  ~conn_host() = default;
};

/// Everything a connection needs from its listener or connector configuration.
struct conn_config {
  quic_connection_options opts;
  std::chrono::milliseconds handshake_timeout{10000};
  decode_limits limits;
  std::chrono::milliseconds close_timeout{5000};  // bounds the flush before CONNECTION_CLOSE
  notice_sink* notices = nullptr;  // where a server's connections report notices (may be null)
  static_secret secret{};  // stateless reset tokens
  // A listener with several sockets on one port (one per loop): the kernel picks a
  // datagram's socket by the first byte of its destination connection ID modulo
  // `steer_count` (endpoint.cpp), so every connection ID a server connection issues
  // starts with a byte that leads back to its own socket, `steer_index`.
  std::uint8_t steer_index = 0;
  std::uint8_t steer_count = 1;
  void steer(std::uint8_t* cid) const noexcept {
    if (steer_count > 1) cid[0] = static_cast<std::uint8_t>(steer_index + steer_count * (cid[0] % (256 / steer_count)));
  }
};

class quic_conn : public std::enable_shared_from_this<quic_conn> {
 public:
  struct server_args {
    const ngtcp2_pkt_hd* hd;             // the client's first Initial
    const ngtcp2_cid* odcid;             // original DCID when the Initial carried a Retry token
    ngtcp2_cid scid;                     // our first connection ID
  };
  struct client_args {
    std::string server_name;
    bool verify = true;
    std::vector<std::string> alpn;
  };

  /// Creates a connection; nullptr with `detail` on failure. `local`/`remote` are copied.
  static std::shared_ptr<quic_conn> make_server(boost::asio::io_context& loop, std::shared_ptr<conn_host> host,
                                                std::shared_ptr<const tls_credentials> cred, const conn_config& cfg,
                                                const sockaddr* local, socklen_t locallen, const sockaddr* remote,
                                                socklen_t remotelen, const server_args& args, std::string& detail);
  static std::shared_ptr<quic_conn> make_client(boost::asio::io_context& loop, std::shared_ptr<conn_host> host,
                                                const tls_credentials& cred, const conn_config& cfg,
                                                const sockaddr* local, socklen_t locallen, const sockaddr* remote,
                                                socklen_t remotelen, const client_args& args, std::string& detail);
  ~quic_conn();
  quic_conn(const quic_conn&) = delete;
  quic_conn& operator=(const quic_conn&) = delete;

  /// A datagram for this connection arrived on `local` from `remote`.
  void on_datagram(const sockaddr* local, socklen_t locallen, const sockaddr* remote, socklen_t remotelen,
                   const std::uint8_t* data, std::size_t len);
  /// Sends everything ngtcp2 has to send now (handshake, stream data, ACKs, ...).
  void flush();
  /// Ends the connection at once without telling the peer (connect timeout, shutdown).
  void abort(close_info why);

  // msgtrans::connection, through the handle.
  void start(connection_owner& owner);
  void write(std::span<const bytes_view> packets);
  void set_reading(bool enabled);
  void close(close_info info);
  void detach();  // the handle is gone
  /// From now on, tell the owner (on_acked) when the peer acknowledged written packets.
  bool report_acks() noexcept {
    report_acks_ = true;
    return true;
  }
  endpoint_info info() const { return info_; }
  /// Server: the client's verified certificate (mutual TLS), known once established.
  const std::optional<peer_certificate>& peer_cert() const noexcept { return peer_cert_; }

  bool established() const noexcept { return phase_ == phase::established; }
  bool handshaking() const noexcept { return phase_ == phase::handshake; }
  const std::vector<ngtcp2_cid>& cids() const noexcept { return cids_; }
  const ngtcp2_cid& original_dcid() const noexcept { return odcid_; }

 private:
  enum class phase { handshake, established, flushing, closing, draining, done };
  quic_conn(boost::asio::io_context& loop, std::shared_ptr<conn_host> host, const conn_config& cfg, bool server);
  bool init_common(const sockaddr* local, socklen_t locallen, const sockaddr* remote, socklen_t remotelen);

  // ngtcp2 callbacks (static trampolines live in quic_conn_callbacks.cpp)
  friend struct callbacks;
  int on_recv_stream_data(std::uint32_t flags, std::int64_t sid, const std::uint8_t* data, std::size_t len);
  int on_handshake_completed();
  void open_stream();

  void after_lib_call();
  void handle_lib_error(int rv);
  void deliver_packets();
  void stream_cut_short();
  void schedule_flush();
  std::size_t next_stream_data(ngtcp2_vec* vec, std::size_t cap, std::int64_t& sid, std::uint32_t& flags);
  void arm_timer();
  void on_timer();
  void send_connection_close(const ngtcp2_connection_close_error& ccerr, close_info info);
  void close_now(close_info info);  // app close: CONNECTION_CLOSE with an application code
  void enter_draining(close_info info);
  void terminate();
  void notify_closed(close_info info);
  void extend_credit(std::uint64_t n);
  static std::uint64_t app_code(const close_info& info);

  boost::asio::io_context& loop_;
  std::shared_ptr<conn_host> host_;
  conn_config cfg_;
  bool server_;
  bool pacing_ = true;  // off on a loopback path (flush())
  phase phase_ = phase::handshake;
  ngtcp2_conn* conn_ = nullptr;
  gnutls_session_t tls_ = nullptr;
  std::shared_ptr<const tls_credentials> cred_;  // server: what tls_ points at, kept alive
  std::optional<peer_certificate> peer_cert_;
  ngtcp2_crypto_conn_ref ref_{};
  ngtcp2_path_storage path_{};
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer close_timer_;  // bounds the flush of close()
  ngtcp2_tstamp armed_expiry_ = 0;
  bool timer_armed_ = false;
  bool expiry_posted_ = false;
  endpoint_info info_;
  std::string server_name_;
  std::vector<ngtcp2_cid> cids_;
  ngtcp2_cid odcid_{};

  connection_owner* owner_ = nullptr;
  bool started_ = false;
  std::int64_t stream_id_ = -1;
  bool stream_announced_ = false;
  bool stream_blocked_ = false;
  send_buffer sendq_;
  bool want_write_done_ = false;
  // report_acks(): the stream end offset of each packet written and not yet acknowledged
  // (from ack_head_ on), and how many were acknowledged since the owner was last told.
  bool report_acks_ = false;
  std::vector<std::uint64_t> ack_marks_;
  std::size_t ack_head_ = 0;
  std::size_t acked_untold_ = 0;
  void acked_up_to(std::uint64_t offset);
  frame_decoder decoder_;
  bool reading_ = true;
  bool draining_decoder_ = false;
  std::uint64_t pending_credit_ = 0;

  int in_lib_ = 0;  // > 0 while inside an ngtcp2 call (callbacks may not call it back)
  bool flush_scheduled_ = false;  // a flush is posted
  bool flush_wanted_ = false;     // something happened since the last flush
  bool established_pending_ = false;
  std::optional<close_info> pending_close_;      // decided inside a callback, done after it
  std::optional<close_info> pending_app_close_;  // close() called from on_packet
  std::optional<close_info> closed_info_;    // set once: what on_closed reports
  bool closed_notified_ = false;
  std::vector<std::uint8_t> close_pkt_;     // our CONNECTION_CLOSE, resent in the closing period
  std::size_t close_resend_budget_ = 0;
};

/// The msgtrans::connection handed to the runtime.
class quic_connection final : public connection {
 public:
  explicit quic_connection(std::shared_ptr<quic_conn> c) : c_(std::move(c)) {}
  ~quic_connection() override { c_->detach(); }
  void start(connection_owner& owner) override { c_->start(owner); }
  void write(std::span<const bytes_view> packets) override { c_->write(packets); }
  void set_reading(bool enabled) override { c_->set_reading(enabled); }
  void close(close_info info) override { c_->close(std::move(info)); }
  endpoint_info info() const override { return c_->info(); }
  bool report_acks() override { return c_->report_acks(); }
  std::optional<peer_certificate> peer_certificate_info() const override { return c_->peer_cert(); }

 private:
  std::shared_ptr<quic_conn> c_;
};

}  // namespace msgtrans::quic_detail

/// @file transport.hpp
/// The interface every transport implements: a listener (server side), a connector
/// (client side) and a connection that turns bytes into packets and packets into bytes.
///
/// TCP, WebSocket and QUIC are built on it, and so can an application's own transport
/// (examples/unix_socket_transport shows one). Rules:
/// - A connection lives on one loop (`boost::asio::io_context`) for its whole life. The
///   runtime calls its methods only on that loop, and the connection calls its
///   `connection_owner` only on that loop.
/// - The transport frames and unframes; it does not interpret packets. It hands each
///   received packet's bytes to `on_packet`, and writes the encoded packets it is given.
/// - `on_closed` is called exactly once, after which the owner is never called again.
#pragma once

#include <msgtrans/error.hpp>
#include <msgtrans/auth.hpp>
#include <msgtrans/packet.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

struct sockaddr;

namespace msgtrans {

/// Why a connection ended.
enum class close_reason {
  normal,             ///< closed by this side's application (close / disconnect)
  peer_closed,        ///< the peer closed it, or the network dropped it
  idle_timeout,       ///< no traffic within the idle timeout
  handshake_timeout,  ///< no handshake (or first packet) within the handshake timeout
  protocol_error,     ///< the peer sent something the protocol forbids
  limit_reached,      ///< a configured limit refused it (max_connections, ...)
  shutdown,           ///< the server or client is stopping
  error,              ///< an I/O or TLS error
  /// the peer sent faster than session_options::max_messages_per_second or
  /// max_bytes_per_second allow (rate_limit_action::close)
  rate_limited,
};

/// Human-readable name of a close reason ("peer_closed", ...).
const char* to_string(close_reason r) noexcept;

/// How and why a connection ended.
struct close_info {
  close_reason reason = close_reason::normal;
  std::error_code error;  ///< the underlying error, if any
  std::string detail;     ///< what a person needs to know, e.g. "version 2 is not supported"
  int transport_code = 0; ///< transport-specific: WebSocket close code, QUIC error code
};

/// Where a connection runs.
struct endpoint_info {
  std::string protocol;       ///< "tcp", "ws", "wss", "quic", ...
  std::string local_address;  ///< "127.0.0.1:8001"
  std::string peer_address;
};

/// Implemented by the runtime. A transport calls it on the connection's loop.
class connection_owner {
 public:
  /// One whole received packet, framing removed. Valid only during the call.
  virtual void on_packet(bytes_view packet) = 0;
  /// Everything passed to `connection::write` has been handed to the OS (or the
  /// transport's own bounded buffer); the next write may follow.
  virtual void on_write_done() = 0;
  /// The connection ended. Called exactly once.
  virtual void on_closed(close_info info) = 0;
  /// Only after connection::report_acks() returned true: the peer's transport has
  /// acknowledged the next `packets` packets passed to `write`, in write order.
  virtual void on_acked(std::size_t packets) { (void)packets; }

 protected:
  ~connection_owner() = default;
};

/// One established connection of some transport.
class connection {
 public:
  virtual ~connection() = default;

  /// Starts reading. Called once, on the connection's loop, before any other call.
  virtual void start(connection_owner& owner) = 0;

  /// Writes these encoded packets, in order, each one whole packet. The caller keeps the
  /// bytes alive until `on_write_done`, and never calls `write` again before it.
  virtual void write(std::span<const bytes_view> packets) = 0;

  /// Stops or resumes reading from the peer (back-pressure).
  virtual void set_reading(bool enabled) = 0;

  /// Ends the connection: finishes the write in progress (bounded in time), tells the
  /// peer why where the protocol can (WebSocket close frame, QUIC CONNECTION_CLOSE),
  /// then calls `on_closed` with this info. Calling it twice is harmless.
  virtual void close(close_info info) = 0;

  /// Protocol and addresses.
  virtual endpoint_info info() const = 0;

  /// Asks the connection to report, through connection_owner::on_acked, when the peer
  /// acknowledged the packets written (QUIC does: stream data acked). Returns false if
  /// the transport has no such acknowledgement (TCP, WebSocket: on_write_done is the last
  /// word). Called at most once, before `start`; a connection never asked keeps no
  /// per-packet record.
  virtual bool report_acks() { return false; }

  /// Server side: the identity this connection's own handshake established (a WebSocket
  /// upgrade that transport_context::authenticate accepted); null when the runtime is to
  /// authenticate it from its first packet, or when the server does not authenticate.
  virtual std::shared_ptr<const identity> authenticated_identity() const { return nullptr; }
  /// Client side: true when the handshake carried transport_context::credentials (the
  /// runtime then sends no authentication packet).
  virtual bool sent_credentials() const { return false; }
  /// The peer's verified TLS certificate, if it presented one (mutual TLS).
  virtual std::optional<peer_certificate> peer_certificate_info() const { return std::nullopt; }
};

/// What the authentication hook decided (transport_context::authenticate).
struct auth_outcome {
  bool accepted = false;
  std::shared_ptr<const identity> who;  ///< when accepted
  std::string reason;                   ///< when rejected
  /// No credentials at all were presented (WebSocket answers 401 rather than 403).
  bool missing_credentials = false;
};

/// Something an operator needs to hear about that no session's close event carries:
/// a refusal before a session exists, or a limit that fired.
enum class notice_kind {
  upgrade_refused,    ///< a WebSocket upgrade was answered with an HTTP error (detail: status, reason)
  handshake_timeout,  ///< a TLS / WebSocket / QUIC handshake did not finish in time
  connection_limit,   ///< max_connections (server-wide or a listener's) refused a connection
  fd_exhausted,       ///< accept failed for want of file descriptors (EMFILE/ENFILE); accepting backs off
  truncated_packet,   ///< the peer closed in the middle of a packet ("truncated packet: N of M bytes")
  ping_flood,         ///< a WebSocket peer pinged faster than allowed and was closed
  budget_full,        ///< the server-wide inbound decoding budget is used up; reading paused
  /// max_connections_per_ip or max_handshakes_per_second_per_ip refused a connection
  /// (at most one per address per minute reaches on_notice; every one is counted)
  peer_limit,
  /// a connection went over max_messages_per_second / max_bytes_per_second and was
  /// closed or paused (at most one per address per minute reaches on_notice)
  rate_limited,
};

/// Name of a notice kind ("upgrade_refused", ...), as in the logs and the metrics.
const char* to_string(notice_kind k) noexcept;

/// One notice. The server rate-limits them per kind (see server_builder::on_notice):
/// `suppressed` says how many of this kind were counted but not reported since the last.
struct notice {
  notice_kind kind = notice_kind::upgrade_refused;
  std::string protocol;  ///< "tcp", "ws", ... (empty if none applies)
  std::string peer;      ///< the peer's address, if known
  std::string detail;    ///< what happened, e.g. "404 Not Found: no WebSocket endpoint at /x"
  std::uint64_t suppressed = 0;
};

/// Where a transport reports notices. Implemented by the runtime; callable from any
/// thread; never blocks.
class notice_sink {
 public:
  virtual void report(notice n) noexcept = 0;

 protected:
  ~notice_sink() = default;
};

/// Decides, before any handshake work (TLS, WebSocket upgrade, QUIC), whether a new peer
/// may start one: the runtime's max_handshakes_per_second_per_ip. A listener asks once
/// per accepted socket or new QUIC client, and on a refusal closes the socket (refuses the
/// QUIC Initial) at once. Implemented by the runtime; any thread; never blocks.
class admission_control {
 public:
  /// False: refuse this peer now. `peer` is the peer's socket address (AF_INET or
  /// AF_INET6; any other family is admitted).
  virtual bool admit_handshake(const ::sockaddr* peer, const std::string& protocol) noexcept = 0;

 protected:
  ~admission_control() = default;
};

/// A server-wide budget of bytes for inbound decoding: partly received messages held by
/// the transports, and decompression. A connection that needs more than a small
/// allowance for an unfinished message takes the message's whole size from the budget
/// (so one that was admitted can always finish); if the budget cannot give it, the
/// connection stops reading and asks to be woken when bytes come back. Thread-safe.
class inbound_budget {
 public:
  /// `limit` bytes in all (0 = no limit).
  explicit inbound_budget(std::size_t limit) noexcept : limit_(limit) {}
  inbound_budget(const inbound_budget&) = delete;
  inbound_budget& operator=(const inbound_budget&) = delete;

  /// Takes `n` bytes; false (taking nothing) if that would pass the limit. A request
  /// larger than the whole limit is granted when nothing else is held, so no single
  /// message below the size limit can wait forever.
  bool try_acquire(std::size_t n) noexcept;
  /// Takes `n` bytes even past the limit (for memory that is bounded elsewhere and must
  /// not wait, such as a loop's decompression buffer); others then wait for it.
  void force_acquire(std::size_t n) noexcept;
  /// Gives `n` bytes back and wakes every waiter.
  void release(std::size_t n) noexcept;
  /// Calls `resume` once, posted to `loop`, after the next release (or at once, posted,
  /// if bytes were released since the caller's failed try_acquire raced with it).
  void wait(boost::asio::io_context& loop, std::function<void()> resume);

  std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_; }
  /// How many times a connection had to wait.
  std::uint64_t waits() const noexcept { return waits_.load(std::memory_order_relaxed); }

 private:
  const std::size_t limit_;
  std::atomic<std::size_t> used_{0};
  std::atomic<std::uint64_t> waits_{0};
  std::atomic<std::uint64_t> releases_{0};
  std::mutex mu_;
  std::vector<std::pair<boost::asio::io_context*, std::function<void()>>> waiters_;
};

/// What the runtime gives a listener or connector. The runtime's limits reach the
/// transports only through here; a transport's own config holds protocol knobs only.
struct transport_context {
  /// Limits the transport enforces while framing (from the header, before buffering).
  decode_limits limits;
  /// The one bound on ending a connection: the final flush and any close handshake
  /// (WebSocket close frames, QUIC CONNECTION_CLOSE, TCP's linger for the peer's FIN).
  /// From session_options::close_timeout.
  std::chrono::milliseconds close_timeout{5000};
  /// Every loop of the runtime, the accept loop first (empty: only the accept loop). For
  /// a listener that spreads its own work over the loops, as QUIC does (a socket per loop).
  std::vector<boost::asio::io_context*> loops;
  /// Where to report notices (may be null: a client, or a custom host).
  notice_sink* notices = nullptr;
  /// The server-wide inbound decoding budget (may be null: no budget).
  inbound_budget* budget = nullptr;
  /// Server: set when the server authenticates connections. A transport whose handshake
  /// carries credentials (WebSocket) calls it before completing its handshake, from the
  /// connection's loop; `done` runs once, on any thread; the accepted identity is then
  /// handed over with the connection (connection::authenticated_identity). Transports
  /// that do not call it are authenticated by the runtime from their first packet.
  std::function<void(auth_request, std::function<void(auth_outcome)> done)> authenticate;
  /// Client: credentials to present where the handshake can carry them (WebSocket sends
  /// `Authorization: Bearer ...`); empty: none.
  std::string credentials;
  /// Asked before each new peer's handshake (may be null: every peer is admitted).
  admission_control* admission = nullptr;

  /// True if there is no admission control or it admits `peer`.
  bool admit(const ::sockaddr* peer, const std::string& protocol) const noexcept {
    return !admission || admission->admit_handshake(peer, protocol);
  }
  /// Reports `n` if there is a sink.
  void report(notice n) const noexcept {
    if (notices) notices->report(std::move(n));
  }
};

/// Accepts connections for a server.
class listener {
 public:
  using loop_picker = std::function<boost::asio::io_context&()>;
  /// Receives each new connection, on the loop the connection lives on.
  using accept_handler = std::function<void(std::unique_ptr<connection>)>;

  virtual ~listener() = default;

  /// Binds and starts accepting, on `accept_loop`'s thread. Each accepted connection
  /// is created on `pick_loop()` and delivered to `on_accept` on that loop once it is
  /// ready to carry packets (after any TLS / WebSocket / QUIC handshake). Errors, each
  /// with the address or file in the detail: address_error (unparsable or unresolvable
  /// address), bind_failed (cannot bind), tls_error (certificate files).
  virtual error_info start(boost::asio::io_context& accept_loop, loop_picker pick_loop, accept_handler on_accept,
                           const transport_context& ctx) = 0;
  /// Stops accepting, on the accept loop's thread. Established connections are not
  /// touched. Idempotent.
  virtual void stop() = 0;
  /// The bound address, with the real port when port 0 was asked for.
  virtual std::string local_address() const = 0;
  /// "tcp", "ws", ...
  virtual std::string protocol() const = 0;
  /// Reads the certificate and key files again: new handshakes use them, established
  /// connections carry on with theirs. Any thread. On failure nothing changes and the
  /// error (errc::tls_error) names the file. Default: nothing to reload (no TLS).
  virtual error_info reload_tls() { return {}; }
};

/// Makes client connections.
class connector {
 public:
  /// On failure the error_info's detail says what failed for this attempt ("connect to
  /// 127.0.0.1:9: Connection refused", "HTTP 403 Forbidden: origin not allowed").
  using connect_handler = std::function<void(error_info, std::unique_ptr<connection>)>;

  virtual ~connector() = default;

  /// Connects on `loop`; calls `done` exactly once on that loop, within `timeout`, with an
  /// empty error_info and the connection, or with the failure and nullptr.
  virtual void connect(boost::asio::io_context& loop, std::chrono::milliseconds timeout,
                       const transport_context& ctx, connect_handler done) = 0;
  /// e.g. "tcp://127.0.0.1:8001"
  virtual std::string target() const = 0;
};

}  // namespace msgtrans

/// @file server.hpp
/// The server: any number of listeners (TCP, WebSocket, QUIC, or your own transport)
/// behind one API for sessions, messages and requests in both directions.
///
///     auto server = msgtrans::server_builder{}
///         .listen(msgtrans::tcp_server_config{"127.0.0.1:8001"})
///         .on_request([](msgtrans::request& req) { req.respond(req.payload); })
///         .build();
///     server.start();
///
/// Every method may be called from any thread; handlers run on the connection's loop. The
/// exceptions (blocking calls on a loop thread) are in threads.hpp, the one place that
/// states the thread rules.
#pragma once

#include <msgtrans/cluster.hpp>
#include <msgtrans/error.hpp>
#include <msgtrans/events.hpp>
#include <msgtrans/options.hpp>
#include <msgtrans/session.hpp>
#include <msgtrans/stats.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace msgtrans {

namespace detail {
class server_impl;
}

/// Handlers a server or client may set. Each runs on the connection's loop.
struct handlers {
  std::function<void(const connection_info&)> on_connected;
  std::function<void(const message&)> on_message;
  std::function<void(request&)> on_request;
  std::function<void(session_id, const close_info&)> on_closed;
  std::function<void(const error_event&)> on_error;
  /// A packet left (see sent_event): session and message_id.
  std::function<void(session_id, std::uint32_t)> on_sent;
};

class server;

/// The node-level settings of a cluster on a bus of your own (nats_cluster_config carries
/// the same fields for NATS).
struct cluster_node_options {
  std::string cluster_name = "msgtrans";  ///< prefixes every subject; nodes sharing it share rooms
  std::string node_name;                  ///< unique per node (empty: host, pid and a random part)
  std::chrono::milliseconds presence_interval{1000};  ///< see nats_cluster_config
};

/// Which count room_size() gives: this node's members, or every node's (eventually
/// consistent: at most about one presence_interval old).
enum class room_scope { local, cluster };

/// What publish() did: members on this node that accepted the packet, and the error of
/// the cross-node publish (none without a cluster; errc::not_connected while the broker
/// is away, also counted in server_stats::cluster_publish_errors).
struct publish_result {
  std::size_t local = 0;
  std::error_code cluster;
};

/// Collects a server's configuration. `build()` checks it and throws
/// std::invalid_argument naming the field when something is wrong.
class server_builder {
 public:
  server_builder();
  ~server_builder();
  server_builder(server_builder&&) noexcept;
  server_builder& operator=(server_builder&&) noexcept;

  /// Adds a listener; `max_connections` (0 = no own limit) caps this listener alone, and
  /// `max_connections_per_ip` (0 = none) its connections from one address (see
  /// max_connections_per_ip below).
  server_builder& listen(std::unique_ptr<listener> l, std::size_t max_connections = 0,
                         std::size_t max_connections_per_ip = 0);
  /// Adds a listener from a transport config (tcp_server_config, ws_server_config, ...),
  /// with its max_connections and max_connections_per_ip.
  template <class Config>
    requires requires(const Config& c) { make_listener(c); }
  server_builder& listen(const Config& c) {
    std::size_t limit = 0, per_ip = 0;
    if constexpr (requires { c.max_connections; }) limit = c.max_connections;
    if constexpr (requires { c.max_connections_per_ip; }) per_ip = c.max_connections_per_ip;
    return listen(make_listener(c), limit, per_ip);
  }
  /// Event loops (threads); 0 = hardware threads (default).
  server_builder& threads(std::size_t n);
  /// Connections open at once, over all listeners (default 10000). Extra ones are closed
  /// at once with close_reason::limit_reached and counted in stats().rejected_by_limit.
  server_builder& max_connections(std::size_t n);
  /// Connections open at once from one address, over all listeners (default 0 = no
  /// limit). An IPv4 address counts whole, an IPv6 address by its /64 prefix. Counted
  /// when a connection is established (after any TLS / WebSocket / QUIC handshake, as
  /// max_connections); one more is closed at once (no thread waits), counted in
  /// stats().refused["per_ip"] and reported as a peer_limit notice (at most one per
  /// address per minute). See docs/security.md.
  server_builder& max_connections_per_ip(std::size_t n);
  /// New connections per second from one address (default 0 = no limit), a token bucket
  /// holding one second's worth: n may arrive at once, then n per second. Checked when the
  /// socket is accepted (TCP, WebSocket) or the first QUIC Initial arrives, before any
  /// handshake work; a refused one is closed at once (QUIC: CONNECTION_REFUSED), counted
  /// in stats().refused["handshake_rate"] and reported as above. Addresses are counted as
  /// for max_connections_per_ip; at most 131,072 addresses are remembered at once.
  server_builder& max_handshakes_per_second_per_ip(std::size_t n);
  /// Per-connection settings (limits, timeouts, back-pressure, compression).
  server_builder& options(const session_options& o);
  /// Applies a named preset on top of the current settings.
  server_builder& apply(preset p);
  server_builder& on_connected(std::function<void(const connection_info&)> f);
  server_builder& on_message(std::function<void(const message&)> f);
  server_builder& on_request(std::function<void(request&)> f);
  server_builder& on_closed(std::function<void(session_id, const close_info&)> f);
  /// Called once per packet this server sent, when its bytes were handed to the kernel
  /// (TCP, WebSocket) or acknowledged by the client's QUIC stack, with the packet's
  /// message_id (a response carries its request's). Heartbeats are not reported. Costs
  /// nothing when neither this nor sent_events() is set.
  server_builder& on_sent(std::function<void(session_id, std::uint32_t message_id)> f);
  /// Enables the event stream for events that have no handler (capacity in events).
  server_builder& events(std::size_t capacity = 4096);
  /// Also puts a sent_event in the event stream for each packet sent, when no on_sent
  /// handler is set (off by default: it is one event per packet).
  server_builder& sent_events(bool enabled = true);
  /// Called with refusals and limits that no close event carries (refused WebSocket
  /// upgrades, handshake timeouts, max_connections, fd exhaustion, truncated packets,
  /// ping floods, a full inbound budget, the per-address and rate limits; the last two
  /// also at most once per address per minute): at most once per kind every 10 s, the rest
  /// counted in `notice::suppressed` and in stats().notices. Any thread; must not block.
  server_builder& on_notice(std::function<void(const notice&)> f);
  /// Bytes that partly received messages and decompression may hold, over all
  /// connections (default 256 MiB; 0 = no limit). Past it, connections that need more
  /// pause reading until memory comes back; see docs/reliability.md.
  server_builder& inbound_memory_limit(std::size_t bytes);
  /// Authenticates every new connection before on_connected (auth.hpp): the handler is
  /// called once per connection, on a loop thread, and answers through its auth_responder
  /// now or later, from any thread. Until it accepts, nothing of the connection reaches
  /// the handlers. `msgtrans::jwt_authenticator{cfg}` is a ready handler.
  server_builder& on_authenticate(auth_handler h);
  /// Time the handler has to answer before the connection is rejected (default 10 s).
  server_builder& auth_timeout(std::chrono::milliseconds t);
  /// Connections waiting for the handler at once; more are rejected at once ("server
  /// busy") and counted in stats().auth_refused_busy (default 1024).
  server_builder& max_pending_auth(std::size_t n);
  /// Joins a cluster over NATS: rooms, publish, send, request and close then reach
  /// sessions on every node (docs/scaling.md). Without it, rooms live in this process.
  server_builder& cluster(const nats_cluster_config& c);
  /// Joins a cluster over a bus of your own (or an in_process_hub's).
  server_builder& cluster(std::unique_ptr<cluster_bus> bus, cluster_node_options o = {});

  server build();

  const session_options& current_options() const noexcept;

 private:
  friend class server;
  std::unique_ptr<struct server_config> cfg_;
};

/// A running (or ready to run) server. Movable; stopping is explicit or at destruction.
class server {
 public:
  server(server&&) noexcept;
  server& operator=(server&&) noexcept;
  ~server();

  /// Binds every listener and starts serving. On failure nothing stays bound, and the
  /// error's detail names the address and the cause (`if (auto e = s.start())
  /// std::cerr << e.message();`).
  error_info start();
  /// `protocol address` of each listener, with real ports (after start).
  std::vector<std::pair<std::string, std::string>> local_addresses() const;

  /// Sends a one-way packet. errc::unknown_session if it is gone, errc::queue_full past
  /// the high-water mark.
  std::error_code send(session_id s, bytes_view payload, const send_options& o = {});
  std::error_code send(session_id s, std::string_view text, const send_options& o = {}) {
    return send(s, as_bytes(text), o);
  }
  /// Sends a request to a client. Completion: void(std::error_code, packet).
  template <class CompletionToken>
  auto request(session_id s, bytes_view payload, std::chrono::milliseconds timeout, CompletionToken&& token,
               const send_options& o = {}) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, packet)>(
        [this, s, payload, timeout, o](auto handler) { request_impl(s, payload, timeout, o, std::move(handler)); }, token);
  }
  /// Sends to every session (or to `targets`): encoded once, the same bytes fan out.
  /// Returns how many sessions accepted it.
  std::size_t broadcast(bytes_view payload, const send_options& o = {});
  std::size_t broadcast(std::span<const session_id> targets, bytes_view payload, const send_options& o = {});

  /// Closes one session (after flushing what was queued). The close event says `normal`.
  std::error_code close(session_id s, std::string detail = {});

  // ---- rooms ----
  // A room name is 1 to 255 bytes of UTF-8; any other name throws std::invalid_argument.
  // Names are opaque: "a.b", "*" and ">" are ordinary names, never broker wildcards.
  // send(), request() and close() above also reach a session on another node of the
  // cluster (session ids carry their node); for one that is gone, send() and close()
  // still succeed once published, request() completes with errc::unknown_session (or
  // errc::timeout when its node is gone too).

  /// Adds a session of this node to a room (no-op if already in). errc::unknown_session
  /// if it is gone. A closing session leaves all its rooms by itself.
  std::error_code join(session_id s, std::string_view room);
  /// Removes a session from a room (no-op if not in).
  std::error_code leave(session_id s, std::string_view room);
  /// Removes a session from every room.
  void leave_all(session_id s);
  /// The rooms a session of this node is in, sorted.
  std::vector<std::string> rooms_of(session_id s) const;
  /// Members of a room: this node's, or the whole cluster's (see room_scope).
  std::size_t room_size(std::string_view room, room_scope scope = room_scope::local) const;
  /// Sends a one-way packet to every member of a room on every node, except `except`
  /// (the sender, say). Encoded once per node; members past their high-water mark miss
  /// it (counted in stats().queue_full_rejections).
  publish_result publish(std::string_view room, bytes_view payload, const send_options& o = {},
                         session_id except = {});
  publish_result publish(std::string_view room, std::string_view text, const send_options& o = {},
                         session_id except = {}) {
    return publish(room, as_bytes(text), o, except);
  }
  std::vector<session_id> sessions() const;
  std::optional<connection_info> info(session_id s) const;
  /// Who a session belongs to (on_authenticate); null without authentication or when
  /// the session is gone.
  std::shared_ptr<const msgtrans::identity> identity(session_id s) const;
  /// Reads every TLS listener's certificate, key and client-CA files again (tls://,
  /// wss://, QUIC): new handshakes use them, open connections carry on. Returns the
  /// first failure (that listener keeps its old certificate; the others are reloaded
  /// anyway), naming the listener and the file. A QUIC listener with a generated
  /// certificate has nothing to reload. Any thread; `msgtrans serve` calls it on SIGHUP.
  error_info reload_tls();
  server_stats stats() const;
  /// The event stream (enabled with server_builder::events).
  event_stream& events();

  /// Graceful shutdown: stop accepting; let answered-in-flight requests finish (up to
  /// `timeout`); flush every queue; close every connection with reason `shutdown`
  /// (one close event each), waiting up to session_options::close_timeout past `timeout`
  /// for the closes; return. Blocking: on one of the server's loop threads (in
  /// a handler) it does nothing and returns errc::wrong_thread (see threads.hpp).
  std::error_code stop(std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  friend class server_builder;
  explicit server(std::shared_ptr<detail::server_impl> impl);
  void request_impl(session_id s, bytes_view payload, std::chrono::milliseconds timeout, const send_options& o,
                    boost::asio::any_completion_handler<void(std::error_code, packet)> h);
  std::shared_ptr<detail::server_impl> impl_;
};

}  // namespace msgtrans

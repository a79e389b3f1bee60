/// @file client.hpp
/// The client: one connection to a server over any transport, with one-way messages,
/// requests in both directions, events and an optional reconnect policy.
///
///     auto client = msgtrans::client_builder{}
///         .connect_to(msgtrans::tcp_client_config{"127.0.0.1:8001"})
///         .build();
///     client.connect();
///     auto reply = client.call(msgtrans::as_bytes("What time is it?"));
///
/// Every method may be called from any thread; the exceptions (blocking calls on a loop
/// thread) are in threads.hpp, the one place that states the thread rules.
#pragma once

#include <msgtrans/events.hpp>
#include <msgtrans/options.hpp>
#include <msgtrans/runtime.hpp>
#include <msgtrans/server.hpp>  // handlers
#include <msgtrans/session.hpp>
#include <msgtrans/stats.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace msgtrans {

namespace detail {
class client_impl;
}

/// How the client retries. Attempt n (from 0) waits
/// min(initial_delay * multiplier^n, max_delay), spread by +-jitter.
struct reconnect_policy {
  int max_attempts = 1;  ///< connection attempts per connect() (1 = no retry)
  std::chrono::milliseconds initial_delay = std::chrono::milliseconds(100);
  std::chrono::milliseconds max_delay = std::chrono::seconds(10);
  double multiplier = 2.0;
  double jitter = 0.2;  ///< fraction of the delay, 0..1
  /// Reconnect by itself when an established connection is lost (not after disconnect()).
  bool auto_reconnect = false;
};

class client;

class client_builder {
 public:
  client_builder();
  ~client_builder();
  client_builder(client_builder&&) noexcept;
  client_builder& operator=(client_builder&&) noexcept;

  /// Where to connect: a connector, or a transport config (tcp_client_config, ...).
  client_builder& connect_to(std::unique_ptr<connector> c);
  template <class Config>
    requires requires(const Config& c) { make_connector(c); }
  client_builder& connect_to(const Config& c) {
    return connect_to(make_connector(c));
  }
  /// Credentials for a server that authenticates (auth.hpp): over WebSocket an
  /// `Authorization: Bearer TOKEN` header on the upgrade; over TCP, TLS and QUIC the first
  /// packet (docs/wire-format.md). connect() completes once the server accepted them;
  /// a rejection fails it with errc::unauthenticated and the server's reason (and is not
  /// retried). Default none.
  client_builder& credentials(std::string token);
  /// Time allowed for one connection attempt, handshakes included (default 10 s).
  client_builder& connect_timeout(std::chrono::milliseconds t);
  client_builder& reconnect(const reconnect_policy& p);
  client_builder& options(const session_options& o);
  client_builder& apply(preset p);
  /// Shares a loop pool with other clients (default: the client's own one-thread pool).
  client_builder& use_runtime(std::shared_ptr<runtime> rt);
  client_builder& on_connected(std::function<void(const connection_info&)> f);
  client_builder& on_message(std::function<void(const message&)> f);
  client_builder& on_request(std::function<void(request&)> f);
  client_builder& on_closed(std::function<void(session_id, const close_info&)> f);
  /// A connection attempt failed (reported for every failed attempt, auto-reconnect included).
  client_builder& on_error(std::function<void(const error_event&)> f);
  /// Called once per packet this client sent, when its bytes were handed to the kernel
  /// (TCP, WebSocket) or acknowledged by the server's QUIC stack (see server_builder::on_sent).
  client_builder& on_sent(std::function<void(session_id, std::uint32_t message_id)> f);
  client_builder& events(std::size_t capacity = 4096);
  /// Also puts a sent_event in the event stream for each packet sent (see server_builder).
  client_builder& sent_events(bool enabled = true);

  client build();

 private:
  friend class client;
  std::unique_ptr<struct client_config> cfg_;
};

class client {
 public:
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;
  ~client();

  /// Connects (with retries per the reconnect policy). Completion: void(std::error_code);
  /// the failed attempts' details arrive as error events (on_error).
  template <class CompletionToken>
  auto async_connect(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this](auto handler) { connect_impl(std::move(handler)); }, token);
  }
  /// Blocking connect. Returns the last attempt's code and what failed (its detail,
  /// e.g. "HTTP 403 Forbidden: origin not allowed"); empty on success:
  ///     if (auto e = client.connect()) std::cerr << e.message() << '\n';
  /// On a loop thread of the client's runtime (in a handler) it returns
  /// errc::wrong_thread: use async_connect there (threads.hpp).
  error_info connect();
  /// Graceful: flushes what send() accepted, then closes, waiting up to `timeout` for the
  /// close. Stops auto-reconnect. On a loop thread of the client's runtime it starts the
  /// close and returns without waiting (threads.hpp).
  void disconnect(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  /// True only while a connection is established (false as soon as it is lost).
  bool is_connected() const noexcept;
  std::optional<connection_info> info() const;

  std::error_code send(bytes_view payload, const send_options& o = {});
  std::error_code send(std::string_view text, const send_options& o = {}) { return send(as_bytes(text), o); }

  /// Sends a request; completion: void(std::error_code, packet). With a deferred token
  /// (use_awaitable, deferred) `payload` must stay valid until the operation starts.
  /// Errors: timeout,
  /// connection_closed, not_connected, queue_full.
  template <class CompletionToken>
  auto request(bytes_view payload, std::chrono::milliseconds timeout, CompletionToken&& token,
               const send_options& o = {}) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, packet)>(
        [this, payload, timeout, o](auto handler) { request_impl(payload, timeout, o, std::move(handler)); }, token);
  }
  /// Request with the default timeout (session_options::request_timeout, 10 s).
  template <class CompletionToken>
  auto request(bytes_view payload, CompletionToken&& token) {
    return request(payload, default_timeout(), std::forward<CompletionToken>(token));
  }
  /// Blocking request. On a loop thread of the client's runtime (in a handler) it
  /// returns errc::wrong_thread: use request() there (threads.hpp).
  result<packet> call(bytes_view payload, std::chrono::milliseconds timeout, const send_options& o = {});
  result<packet> call(bytes_view payload) { return call(payload, default_timeout()); }
  result<packet> call(std::string_view text) { return call(as_bytes(text)); }

  client_stats stats() const;
  event_stream& events();

 private:
  friend class client_builder;
  explicit client(std::shared_ptr<detail::client_impl> impl);
  std::chrono::milliseconds default_timeout() const noexcept;
  void connect_impl(boost::asio::any_completion_handler<void(std::error_code)> h);
  void request_impl(bytes_view payload, std::chrono::milliseconds timeout, const send_options& o,
                    boost::asio::any_completion_handler<void(std::error_code, packet)> h);
  std::shared_ptr<detail::client_impl> impl_;
};

}  // namespace msgtrans

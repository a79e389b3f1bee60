/// @file events.hpp
/// The event model, shared by server and client, and the awaitable event stream.
///
/// Events go to a handler when one is set (it runs on the connection's loop, no thread
/// hop), otherwise to the event stream when it is enabled. The stream is bounded but
/// never drops: when it is full, the connections that feed it stop reading until the
/// consumer catches up (TCP back-pressure reaches the peers).
#pragma once

#include <msgtrans/session.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <variant>

namespace msgtrans {

/// A connection was established (server: accepted; client: connected).
struct connected_event {
  session_id session;
  connection_info info;
};
/// A one-way packet arrived.
struct message_event {
  session_id session;
  msgtrans::packet packet;
};
/// A request arrived; answer it through `reply`.
struct request_event {
  session_id session;
  msgtrans::packet packet;
  msgtrans::responder reply;
};
/// The connection ended. Exactly one per connected_event.
struct closed_event {
  session_id session;
  close_info info;
};

/// A packet this side sent left: its bytes were handed to the kernel (TCP, WebSocket)
/// or acknowledged by the peer's QUIC stack. One per packet sent by the application
/// (send, request, broadcast, response; not heartbeats). In the stream only when enabled
/// with server_builder::sent_events / client_builder::sent_events.
struct sent_event {
  session_id session;
  std::uint32_t message_id = 0;  ///< as on the wire (a response carries its request's id)
};

/// Something failed outside any connection: a client's connection attempt (each failed
/// attempt, and the last one when the reconnect policy gives up).
struct error_event {
  std::error_code error;
  std::string detail;  ///< e.g. "connect to tcp://127.0.0.1:8001 failed (attempt 2 of 5): Connection refused"
};

using event = std::variant<connected_event, message_event, request_event, closed_event, error_event, sent_event>;

namespace detail {
class event_queue;
}

/// A bounded, multi-producer single-consumer stream of events.
class event_stream {
 public:
  explicit event_stream(std::shared_ptr<detail::event_queue> q) : q_(std::move(q)) {}

  /// Waits for the next event. Completion signature: void(std::error_code, event).
  /// Completes with errc::shutting_down once the owner stopped and the stream is empty.
  template <class CompletionToken>
  auto next(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, event)>(
        [this](auto handler) { next_impl(std::move(handler)); }, token);
  }
  /// Blocks up to `timeout` for the next event (not from a loop thread: see threads.hpp).
  std::optional<event> wait_for(std::chrono::milliseconds timeout);
  /// The next event if one is ready.
  std::optional<event> try_next();
  std::size_t size() const;

 private:
  void next_impl(boost::asio::any_completion_handler<void(std::error_code, event)> h);
  std::shared_ptr<detail::event_queue> q_;
};

}  // namespace msgtrans

// One stream (TCP) listening socket for every transport that runs over TCP (tcp, ws, and
// TLS over TCP): resolve the bind address, open, set the socket options, bind, listen,
// accept with back-off when descriptors run out, stop.
//
// Threads: `start` runs on the accept loop (the runtime calls listener::start there).
// Accepted sockets are handed to the handler on the accept loop, each already bound to
// the loop `pick_loop()` chose for it; the handler posts the connection's work there.
// `stop` may be called from any thread: it closes the socket on the accept loop, and no
// handler runs after that close. The object may be destroyed right after `stop`:
// pending completions hold their own reference to the state.
#pragma once

#include <msgtrans/error.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <string>

namespace msgtrans::net {

struct stream_listener_options {
  std::string protocol = "tcp";  ///< names the listener in details and notices
  std::string bind_address;      ///< "host:port" / "[v6]:port" (net::address::parse_bind)
  bool reuse_address = true;     ///< SO_REUSEADDR
  bool reuse_port = false;       ///< SO_REUSEPORT
  int backlog = 1024;            ///< listen() backlog
};

class stream_listener {
 public:
  /// An accepted socket (bound to `loop`), on the accept loop.
  using socket_handler = std::function<void(boost::asio::ip::tcp::socket, boost::asio::io_context& loop)>;

  /// How long accepting pauses after EMFILE/ENFILE (or any other accept error).
  static constexpr std::chrono::milliseconds accept_backoff{50};

  stream_listener() = default;
  stream_listener(const stream_listener&) = delete;
  stream_listener& operator=(const stream_listener&) = delete;
  ~stream_listener() { stop(); }

  /// Binds and starts accepting. Errors: address_error (unparsable or unresolvable
  /// address), bind_failed (open/bind/listen), each with the address in the detail.
  error_info start(boost::asio::io_context& accept_loop, listener::loop_picker pick_loop,
                   const transport_context& ctx, const stream_listener_options& options, socket_handler on_socket);
  /// Stops accepting; idempotent; any thread.
  void stop();
  /// The bound address with the real port ("127.0.0.1:41234"); empty before start.
  const std::string& local_address() const noexcept { return local_; }

 private:
  struct state;
  std::shared_ptr<state> st_;
  std::string local_;
};

}  // namespace msgtrans::net

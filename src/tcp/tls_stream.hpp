// TLS over TCP (tls://): the handshakes, each side, on a socket that is already
// connected. Plain declarations: the TLS socket (tls_socket.hpp) and the connection over
// it are built in tls_transport.cpp.
#pragma once

#include "net/tls_context.hpp"

#include <msgtrans/transport.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace msgtrans::detail {

// What a TLS listener's handshakes share; outlives the listener while handshakes run.
struct tls_server_shared {
  net::reloadable_tls_context tls;  // replaced by listener::reload_tls
  listener::accept_handler on_accept;
  transport_context ctx;
  std::chrono::milliseconds handshake_timeout{10'000};
  std::atomic<bool> stopped{false};  // set by listener::stop: finished handshakes are dropped
};

// Server side, on the socket's loop: the TLS handshake, bounded by handshake_timeout (a
// handshake_timeout notice, then the socket is closed), then `on_accept` gets the
// connection (protocol "tls"). A failed handshake closes the socket without a word.
void tls_accept(const std::shared_ptr<tls_server_shared>& sh, boost::asio::ip::tcp::socket socket);

struct tls_client_target {
  net::tls_context_ptr tls;
  std::string server_name;  // SNI and the name checked
  bool verify = true;
};

// Client side, on the socket's loop: the TLS handshake with `peer` (for the details),
// bounded by `timeout`; then `done` exactly once, with the connection or an error
// (tls_error with the reason, timeout, or the socket's error).
void tls_connect(const tls_client_target& target, boost::asio::ip::tcp::socket socket, const std::string& peer,
                 const transport_context& ctx, std::chrono::milliseconds timeout, connector::connect_handler done);

}  // namespace msgtrans::detail

/// @file tcp.hpp
/// The TCP transport: packets back to back on a byte stream, each framed by its own
/// 16-byte header.
#pragma once

#include <msgtrans/transport.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace msgtrans {

/// A TCP listener. `make_listener` throws std::invalid_argument naming the field on a
/// bad value.
struct tcp_server_config {
  /// "host:port" or "[v6]:port"; port 0 picks a free port; an empty host (":8001")
  /// binds every IPv4 address.
  std::string bind_address = "127.0.0.1:8001";
  /// Connections this listener keeps open at once (0 = only the server-wide limit).
  std::size_t max_connections = 0;
  /// Connections of this listener open at once from one address (IPv4 whole, IPv6 by
  /// its /64); more are closed at once. 0 (the default): only the server-wide
  /// server_builder::max_connections_per_ip. Applied by `server_builder::listen(config)`.
  std::size_t max_connections_per_ip = 0;
  bool nodelay = true;  ///< TCP_NODELAY on accepted sockets
  /// SO_KEEPALIVE with this idle time (TCP_KEEPIDLE, whole seconds, rounded up); 0 turns
  /// keep-alive off. Default 60 s.
  std::chrono::milliseconds keep_alive_interval{60'000};
  bool reuse_address = true;  ///< SO_REUSEADDR on the listening socket
  /// SO_REUSEPORT on the listening socket: several listeners (in this process or in
  /// others of the same user) that all set it may bind the same address and port, and
  /// the kernel spreads new connections over them (`msgtrans serve --workers`).
  /// Default false: a second bind of the port fails with bind_failed.
  bool reuse_port = false;
  int backlog = 1024;         ///< listen() backlog (at least 1)
};

/// A TCP client target. `make_connector` throws std::invalid_argument naming the field
/// on a bad value.
struct tcp_client_config {
  /// "host:port" or "[v6]:port"; host names are resolved at each connect.
  std::string address = "127.0.0.1:8001";
  bool nodelay = true;  ///< TCP_NODELAY
  /// As tcp_server_config::keep_alive_interval. Default 60 s.
  std::chrono::milliseconds keep_alive_interval{60'000};
};

std::unique_ptr<listener> make_listener(const tcp_server_config& c);
std::unique_ptr<connector> make_connector(const tcp_client_config& c);

}  // namespace msgtrans

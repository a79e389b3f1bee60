/// @file tcp.hpp
/// The TCP transport: packets back to back on a byte stream, each framed by its own
/// 16-byte header; and the same stream inside TLS (`tls://`).
///
/// TLS over TCP is not a separate config: a `tcp_server_config` with `tls_cert_file` and
/// `tls_key_file` set is a TLS listener (protocol "tls"), and a `tcp_client_config` with
/// `tls = true` is a TLS client (the URL `tls://host:port`). The TLS fields have the
/// names and meaning of ws.hpp's (`wss://`), and the two transports share one TLS
/// configuration (OpenSSL, through asio::ssl): TLS 1.2 and 1.3 only, session tickets on,
/// clients verify the certificate chain against the system trust store plus
/// `tls_ca_file` and check the server's name. The framing inside TLS is exactly TCP's.
/// A failed verification is errc::tls_error whose detail ends with OpenSSL's reason in
/// parentheses ("(certificate has expired)", "(unable to get local issuer
/// certificate)", "(hostname mismatch)"). See docs/security.md.
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
  /// PEM certificate chain and private key. Both set: the listener speaks TLS only
  /// (`protocol()` is "tls"; clients connect to tls://). Both empty (default): plain TCP.
  /// One without the other is a configuration error. The files are read by
  /// `listener::start`, which reports a bad file as errc::tls_error naming it.
  std::string tls_cert_file{};
  std::string tls_key_file{};
  /// TLS only: time from TCP accept until the TLS handshake is done; then the socket is
  /// closed without a word and a handshake_timeout notice is reported. Must be positive.
  /// Default 10 s. (The first packet after it is bounded by
  /// session_options::first_packet_timeout, as on plain TCP.)
  std::chrono::milliseconds handshake_timeout{10'000};
  /// TLS, mutual: PEM file of the CAs that vouch for clients. Set: the server asks each
  /// client for a certificate and verifies one that is sent against these CAs only (not
  /// the system store); a certificate that does not verify fails the handshake (alert
  /// unknown_ca, bad_certificate or certificate_expired). Empty (default): no client
  /// certificate is asked for. Needs tls_cert_file.
  std::string tls_client_ca_file{};
  /// TLS, mutual: refuse a client that sends no certificate (alert
  /// certificate_required). Needs tls_client_ca_file. Default false: a client without
  /// a certificate is let in, one with a bad certificate is not.
  bool require_client_cert = false;
};

/// A TCP client target. `make_connector` throws std::invalid_argument naming the field
/// on a bad value.
struct tcp_client_config {
  /// "host:port" or "[v6]:port"; host names are resolved at each connect.
  std::string address = "127.0.0.1:8001";
  bool nodelay = true;  ///< TCP_NODELAY
  /// As tcp_server_config::keep_alive_interval. Default 60 s.
  std::chrono::milliseconds keep_alive_interval{60'000};
  /// Speak TLS (tls://) instead of plain TCP. Default false.
  bool tls = false;
  /// TLS: also trust the CA certificates in this PEM file (the system's trust store is
  /// always used). Default none.
  std::string tls_ca_file{};
  /// TLS: the server name sent (SNI) and the name the certificate must match. Default:
  /// the host of `address` (no SNI is sent for an IP literal, whose certificate must
  /// name that IP).
  std::string tls_server_name{};
  /// TLS: DANGEROUS. Accept any certificate, for any name: anyone on the path can read
  /// and change the traffic. For tests against throw-away certificates only. Default
  /// false.
  bool tls_insecure_skip_verify = false;
  /// TLS, mutual: this client's PEM certificate chain and private key, presented when the
  /// server asks for one. Both or neither; needs `tls`. Default none. With TLS 1.3 the
  /// server judges the certificate after the client's side of the handshake is done, so
  /// a refusal arrives as the connection's first read: it closes with the server's alert
  /// in the detail ("TLS: tlsv13 alert certificate required", "... unknown ca").
  std::string tls_cert_file{};
  std::string tls_key_file{};
  /// TLS: bound on the TLS handshake after the TCP connect. Must be positive. Default
  /// 10 s. The `timeout` passed to `connector::connect` bounds the whole attempt as well.
  std::chrono::milliseconds handshake_timeout{10'000};
};

/// A TCP listener, or a TLS one when both certificate files are set. Throws
/// std::invalid_argument naming the field on a bad value.
std::unique_ptr<listener> make_listener(const tcp_server_config& c);
/// A TCP (or, with `tls`, TLS) connector; `target()` is "tcp://..." or "tls://...".
/// Throws std::invalid_argument naming the field on a bad value (a CA file that cannot
/// be loaded included). `connector::connect` reports failures as address_error,
/// timeout, tls_error (handshake, verification: the detail says which), or the socket's
/// own error.
std::unique_ptr<connector> make_connector(const tcp_client_config& c);

}  // namespace msgtrans

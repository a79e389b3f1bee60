/// @file ws.hpp
/// The WebSocket transport (RFC 6455): `ws://` and, with a certificate, `wss://`.
///
/// Mapping onto the wire format (docs: shared/spec/WIRE_FORMAT.md):
/// - Exactly one msgtrans packet per binary message. The transport frames and unframes
///   only: it hands each binary message's bytes to `connection_owner::on_packet` without
///   decoding them. The runtime's session decodes each packet once; a binary message that
///   is not exactly one valid packet is closed by it (close_reason::protocol_error, so
///   1002, with "packet rejected: ..." as the reason).
/// - A text message is not part of the protocol: the connection is closed with 1003
///   (unsupported data).
/// - A message larger than the runtime's `decode_limits::max_message_size`
///   (`transport_context::limits`) is refused from its frame header, before its body is
///   buffered: close 1009 (message too big).
/// - Ping, pong and close frames are handled here and never reach the application. The
///   server pings every `keep_alive_interval`; a peer that does not answer within
///   `keep_alive_timeout` is closed (close_reason::idle_timeout, code 1001). Idle
///   connections are closed by the session (`session_options::idle_timeout`).
/// - A close frame from the peer becomes `on_closed` with reason `peer_closed`,
///   `transport_code` = the close code (1005 when the frame had none) and `detail` = the
///   close reason. A connection that drops without a close frame reports 1006.
/// - `connection::close(info)` sends a close frame and completes the close handshake
///   (bounded by `transport_context::close_timeout`, from `session_options::close_timeout`):
///   reason `shutdown` → 1001,
///   `protocol_error` → 1002, `limit_reached` and `rate_limited` → 1008, `idle_timeout` → 1001, anything
///   else → 1000. `info.transport_code`, when set (1000..4999), is sent as is.
/// - No extensions (permessage-deflate) and no subprotocol are negotiated; msgtrans
///   compresses payloads itself.
///
/// Beast parses the HTTP upgrade; the frames are read and written by the transport
/// itself (a sans-I/O session), so that the packets corked into one `connection::write`
/// leave in one gather write (server) or one masked buffer (client), and Beast's
/// WebSocket templates are not compiled at all. Only one translation unit of the library
/// includes Beast and asio::ssl's stream; the TLS settings are the ones `tls://` uses
/// too (docs/security.md).
#pragma once

#include <msgtrans/transport.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace msgtrans {

/// A WebSocket server endpoint. Configuration mistakes make `make_listener` throw
/// `std::invalid_argument` with a message naming the field.
struct ws_server_config {
  /// "host:port" to bind ("127.0.0.1:8002", "[::1]:0", "localhost:8002"). Port 0 picks a
  /// free port; `listener::local_address()` tells which. Default "127.0.0.1:0".
  std::string bind_address = "127.0.0.1:0";
  /// The only request path accepted (the query string is ignored); a handshake on any
  /// other path gets HTTP 404. Must start with '/'. Default "/".
  std::string path = "/";
  /// Connections of this listener open at once: more are dropped right after their
  /// upgrade, counted in `server_stats::rejected_by_limit` and reported as a
  /// connection_limit notice. 0 (the default): only the server-wide limit. Applied by
  /// `server_builder::listen(config)`.
  std::size_t max_connections = 0;
  /// Connections of this listener open at once from one address (IPv4 whole, IPv6 by
  /// its /64); more are closed at once. 0 (the default): only the server-wide
  /// server_builder::max_connections_per_ip. Applied by `server_builder::listen(config)`.
  std::size_t max_connections_per_ip = 0;
  /// Time from TCP accept until the upgrade (TLS handshake included) is done; then the
  /// socket is closed without a word. Default 10 s.
  std::chrono::milliseconds handshake_timeout{10'000};
  /// How often the server pings each connection. 0 disables pings. Default 30 s.
  std::chrono::milliseconds keep_alive_interval{30'000};
  /// How long a ping may wait for its pong before the connection is closed
  /// (close_reason::idle_timeout, code 1001). Must be positive when pings are on.
  /// Default 10 s.
  std::chrono::milliseconds keep_alive_timeout{10'000};
  /// Largest HTTP upgrade request header accepted (bytes); bigger gets 431.
  /// Default 8 KiB.
  std::size_t max_handshake_size = 8 * 1024;
  /// When not empty, only handshakes whose Origin header equals one of these
  /// (ASCII case-insensitive, e.g. "https://app.example.com") are accepted; others get
  /// HTTP 403, and so do requests without an Origin. Empty (the default) accepts any
  /// origin, and none.
  std::vector<std::string> allowed_origins;
  /// PEM certificate chain and private key. Both set: the server speaks wss:// only.
  /// Both empty (default): ws://. One without the other is a configuration error.
  std::string tls_cert_file;
  std::string tls_key_file;
  /// wss, mutual TLS: PEM file of the CAs that client certificates must chain to. Set,
  /// every client is asked for a certificate; one that is sent and does not verify fails
  /// the TLS handshake, and a verified one reaches on_authenticate and connection_info.
  /// Empty (the default): no certificate is asked for. Needs tls_cert_file.
  std::string tls_client_ca_file;
  /// With tls_client_ca_file: a client without a certificate is refused in the TLS
  /// handshake. Default false.
  bool require_client_cert = false;
  /// SO_REUSEPORT on the listening socket: several listeners (in this process or in
  /// others of the same user) that all set it may bind the same address and port, and
  /// the kernel spreads new connections over them (`msgtrans serve --workers`).
  /// Default false: a second bind of the port fails with bind_failed.
  bool reuse_port = false;
};

/// A WebSocket client target. Configuration mistakes make `make_connector` throw
/// `std::invalid_argument` with a message naming the field. The largest message accepted
/// and the close-handshake bound come from the runtime (`transport_context`).
struct ws_client_config {
  /// "ws://host:port/path" or "wss://host:port/path". The host may be a name (resolved at
  /// each connect) or an IP literal ("[::1]" for IPv6). Default port: 80 / 443. Default
  /// path: "/". No default URL.
  std::string url;
  /// Extra handshake headers, e.g. {"Origin", "https://app"} or {"Authorization", ...}.
  /// Host, Upgrade, Connection and Sec-WebSocket-* are set by the transport and may not be
  /// given here. Default none.
  std::vector<std::pair<std::string, std::string>> headers;
  /// Bound on resolving the host and the TCP connect. Default 10 s. The `timeout`
  /// passed to `connector::connect` bounds the whole attempt as well.
  std::chrono::milliseconds connect_timeout{10'000};
  /// Bound on the TLS handshake plus the HTTP upgrade. Default 10 s.
  std::chrono::milliseconds handshake_timeout{10'000};
  /// wss: also trust the CA certificates in this PEM file (the system's trust store is
  /// always used). Default none.
  std::string tls_ca_file;
  /// wss: the TLS server name (SNI) and the name the certificate must match. Default: the
  /// URL's host (no SNI is sent for an IP literal, whose certificate must name that IP).
  std::string tls_server_name;
  /// wss: DANGEROUS. Accept any certificate, for any name: anyone on the path can read
  /// and change the traffic. For tests against throw-away certificates only. Default
  /// false: certificates are verified against the trust store and `tls_ca_file`, and the
  /// host name is checked.
  bool tls_insecure_skip_verify = false;
  /// wss, mutual TLS: this client's PEM certificate chain and key, presented when the
  /// server asks (both or neither). Default: none.
  std::string tls_cert_file;
  std::string tls_key_file;
};

/// A WebSocket listener (`protocol()` is "ws" or "wss"; `local_address()` is
/// "HOST:PORT/PATH", so that "ws://" + it is the URL to connect to). Throws std::invalid_argument on a
/// bad configuration (the message names the field). The certificate files are read by
/// `listener::start`, which reports a bad file as errc::tls_error with the file in
/// `detail`.
std::unique_ptr<listener> make_listener(const ws_server_config& config);

/// A WebSocket connector. Throws std::invalid_argument on a bad URL or header.
/// `connector::connect` reports failures as: address_error (resolve), timeout,
/// tls_error (handshake, verification; detail says which), protocol_error (the server
/// refused the upgrade; detail carries the HTTP status), or the socket's own error.
std::unique_ptr<connector> make_connector(const ws_client_config& config);

}  // namespace msgtrans

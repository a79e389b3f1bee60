/// @file quic.hpp
/// The QUIC transport (RFC 9000, on ngtcp2 + GnuTLS).
///
/// Mapping (see the wire format spec): one bidirectional stream, opened by the client
/// right after the handshake, carries every packet in both directions, each preceded by
/// a u32 big-endian length. A frame over 16 MiB ends the connection with application
/// error 1 (protocol error) and a reason. ALPN: the client offers "msgtrans"; the server
/// accepts "msgtrans" or no ALPN at all, and refuses any other with a TLS
/// no_application_protocol alert (a CONNECTION_CLOSE with CRYPTO_ERROR 0x178).
///
/// Threading: a listener has one UDP socket per runtime loop, all bound to its port
/// (quic_server_config::sockets); each connection lives on the loop of the socket its
/// datagrams arrive on, which the kernel picks by connection ID. No datagram is handed
/// between threads. Each client connection owns its own UDP socket on the loop it was
/// connected on.
///
/// The server can send as soon as the handshake completes: the client announces the
/// stream at once with an empty STREAM frame, and anything the server writes before that
/// frame arrives is kept in the connection's send buffer and leaves when it does.
#pragma once

#include <msgtrans/transport.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace msgtrans {

/// Options shared by both sides of a QUIC connection.
struct quic_connection_options {
  /// Idle timeout advertised to the peer (the smaller of both sides wins). Default 30 s.
  std::chrono::milliseconds max_idle_timeout = std::chrono::seconds(30);
  /// A PING is sent after this much silence, so an idle connection stays up; 0 turns
  /// keep-alive off. Default 15 s.
  std::chrono::milliseconds keep_alive_interval = std::chrono::seconds(15);
  /// Connection flow-control window (bytes the peer may have in flight on all streams).
  /// Default 24 MiB.
  std::uint64_t connection_window = 24u * 1024 * 1024;
  /// Stream flow-control window (bytes the peer may have in flight on the msgtrans
  /// stream). This bounds what is buffered for a paused reader. Default 16 MiB.
  std::uint64_t stream_window = 16u * 1024 * 1024;
  /// Bytes written but not yet acknowledged by the peer past which `write` stops
  /// reporting completion (back-pressure). Default 8 MiB.
  std::size_t send_buffer_limit = 8u * 1024 * 1024;
  /// Initial RTT estimate before a sample is taken. QUIC's default is 333 ms; lower it
  /// on known-fast paths (tests use 10 ms). Default 100 ms.
  std::chrono::milliseconds initial_rtt = std::chrono::milliseconds(100);
  /// SO_SNDBUF / SO_RCVBUF of the UDP socket. Default 8 MiB. Set with SO_*BUFFORCE
  /// where the process may (CAP_NET_ADMIN); otherwise the kernel caps it at
  /// net.core.{w,r}mem_max.
  int udp_buffer_size = 8 * 1024 * 1024;
  /// Send runs of equal-size datagrams as one UDP GSO message, and receive coalesced
  /// ones with UDP GRO, where the kernel supports them (Linux 5.0+); otherwise one
  /// datagram per message, still many per sendmmsg/recvmmsg. Default on.
  bool udp_gso = true;
  /// Largest UDP payload this side sends, in bytes (1200..65527). 0, the default, picks
  /// it per path: ngtcp2's 1452 bytes (with path MTU probing) on a network path, and
  /// 65,000 on a loopback path (127.0.0.0/8, ::1), whose MTU is 64 KiB, so local
  /// traffic needs about 45 times fewer packets; a loopback path also acknowledges every
  /// packet at once, so the ACK rides on the reply instead of following it in a datagram
  /// of its own (lock-step request/response: 2 datagrams per round trip instead of 3).
  /// A non-zero value is used on every path
  /// as is, without probing; set it to 1452 or less if a loopback address is forwarded
  /// to another host.
  std::size_t max_udp_payload = 0;
};

/// Configuration of a QUIC listener.
struct quic_server_config {
  /// "host:port" or "[v6]:port"; port 0 picks a free port. Default "127.0.0.1:4433".
  std::string bind_address = "127.0.0.1:4433";
  /// PEM certificate chain and private key files. Both empty (the default): a self-signed
  /// ECDSA P-256 certificate is generated at start for `localhost`, 127.0.0.1, ::1 and
  /// `certificate_names`.
  std::string tls_cert_file;
  std::string tls_key_file;
  /// Mutual TLS: PEM file of the CAs that client certificates must chain to. Set, every
  /// client is asked for a certificate; one that is sent and does not verify fails the
  /// handshake, and a verified one reaches on_authenticate and connection_info. Empty
  /// (the default): no certificate is asked for.
  std::string tls_client_ca_file;
  /// With tls_client_ca_file: a client without a certificate is refused in the handshake.
  /// Default false (it connects, with no certificate, for the authentication hook to judge).
  bool require_client_cert = false;
  /// Extra DNS names (or IP addresses) of the generated self-signed certificate.
  std::vector<std::string> certificate_names;
  /// If set, the generated self-signed certificate is written there as PEM, so a client
  /// can trust exactly it with `quic_client_config::ca_file`. Default: not written.
  std::string write_self_signed_cert_to;
  /// Connections this listener keeps at once, handshakes included; past it new clients
  /// get CONNECTION_CLOSE with CONNECTION_REFUSED. 0 (the default): only the server-wide
  /// limit (server_builder::max_connections) applies, as on every listener.
  std::size_t max_connections = 0;
  /// Connections of this listener open at once from one address (IPv4 whole, IPv6 by
  /// its /64); more are closed at once. 0 (the default): only the server-wide
  /// server_builder::max_connections_per_ip. Applied by `server_builder::listen(config)`.
  std::size_t max_connections_per_ip = 0;
  /// A connection whose handshake has not completed within this time is dropped.
  /// Default 10 s.
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(10);
  /// Address validation: answer every new client with a Retry packet first (costs one
  /// round trip, protects against spoofed-source floods). Default off.
  bool retry = false;
  /// Handshakes in progress past which new clients are sent a Retry even when `retry` is
  /// off, so a flood of Initials cannot commit unbounded state. Default 512.
  std::size_t max_pending_handshakes = 512;
  /// UDP sockets on the port, one per runtime loop, so connections are spread over the
  /// loops as TCP's are. They share the port with SO_REUSEPORT, and a classic BPF program
  /// makes the kernel give each datagram to the socket of its connection: every
  /// connection ID the server issues starts with a byte that names its socket, so
  /// connections survive address changes (NAT rebinding) and none is ever handed between
  /// threads. 0 (the default): as many as the runtime has loops (at most 64). 1: one
  /// socket, every connection on the accept loop.
  std::size_t sockets = 0;
  quic_connection_options connection;
};

/// Configuration of a QUIC connector.
struct quic_client_config {
  /// "host:port" or "[v6]:port"; host names are resolved. Default "127.0.0.1:4433".
  std::string address = "127.0.0.1:4433";
  /// Name sent as SNI and checked against the certificate. Empty (the default): the host
  /// part of `address`.
  std::string tls_server_name;
  /// PEM file of the certificate authorities to trust. Empty (the default): the system
  /// trust store.
  std::string tls_ca_file;
  /// Accepts any server certificate. Only for tests and closed networks: anyone on the
  /// path can impersonate the server. Default false (certificates are verified).
  bool tls_insecure_skip_verify = false;
  /// Mutual TLS: this client's PEM certificate chain and key, presented when the server
  /// asks (both or neither). Default: none.
  std::string tls_cert_file;
  std::string tls_key_file;
  /// Used when `connector::connect` is given no timeout (0). Default 10 s.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
  /// ALPN protocols offered. Default {"msgtrans"}; an empty list offers none (as the Rust
  /// original does).
  std::vector<std::string> alpn{"msgtrans"};
  quic_connection_options connection;
};

/// A QUIC listener; see quic_server_config. Throws std::invalid_argument naming the
/// field on a bad value (an unparsable address, one TLS file without the other, ...).
std::unique_ptr<listener> make_listener(const quic_server_config& c);
/// A QUIC connector; see quic_client_config. Throws std::invalid_argument as above.
std::unique_ptr<connector> make_connector(const quic_client_config& c);

/// Application error codes msgtrans puts in CONNECTION_CLOSE frames.
namespace quic_app_error {
inline constexpr std::uint64_t no_error = 0;        ///< normal close
inline constexpr std::uint64_t protocol_error = 1;  ///< bad frame (e.g. over 16 MiB)
inline constexpr std::uint64_t shutdown = 2;        ///< the server or client is stopping
inline constexpr std::uint64_t limit_reached = 3;   ///< a configured limit refused it
inline constexpr std::uint64_t idle = 4;            ///< closed by the application for inactivity
inline constexpr std::uint64_t internal = 5;        ///< any other local reason
inline constexpr std::uint64_t rate_limited = 6;    ///< the peer sent faster than its rate limits allow
}  // namespace quic_app_error

}  // namespace msgtrans

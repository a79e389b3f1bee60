// The one TLS configuration of the stream transports (wss:// and tls://), on OpenSSL
// through asio::ssl: what a server context loads, what a client context verifies, and
// how a failed verification is explained. QUIC has its own stack (GnuTLS, src/quic).
//
// Both sides: TLS 1.2 and 1.3 only (1.0 and 1.1 are refused in the handshake).
// Server: the certificate chain and key from PEM files; session tickets are on (OpenSSL's
// default, kept), with a fixed session id context. Mutual TLS: with `client_ca_file`
// the server asks for a client certificate and verifies one that is sent against those
// CAs only (not the system store); `require_client_cert` refuses a client without one.
// Client: optionally presents a certificate (mutual TLS); verifies by default, against the system trust store plus `ca_file`, and checks
// the server's name (a DNS name against the certificate's names, with SNI sent; an IP
// literal against its IP addresses, without SNI). `insecure` accepts anything. The last
// session a connector's context received is offered again on its next connect
// (resumption).
//
// Only plain declarations here: the contexts are built in tls_context.cpp, and a file
// that makes streams from them includes asio::ssl itself.
#pragma once

#include <msgtrans/auth.hpp>
#include <msgtrans/error.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

struct ssl_st;  // OpenSSL's SSL

namespace boost::asio::ssl {
class context;
}

namespace msgtrans::net {

using tls_context_ptr = std::shared_ptr<boost::asio::ssl::context>;

struct tls_server_options {
  std::string cert_file, key_file;  ///< PEM chain and key (both required)
  std::string client_ca_file;       ///< mutual TLS: client certificates must chain to these
  bool require_client_cert = false;  ///< with client_ca_file: a client without one is refused
};

/// A listener's server context, which reload_tls may replace while handshakes (on any
/// loop) take the current one. A handshake keeps the context it started with: OpenSSL
/// counts references, so a replaced context lives on in the connections made from it.
class reloadable_tls_context {
 public:
  tls_context_ptr get() const {
    std::lock_guard lock(mu_);
    return ctx_;
  }
  void set(tls_context_ptr c) {
    std::lock_guard lock(mu_);
    ctx_ = std::move(c);
  }

 private:
  mutable std::mutex mu_;
  tls_context_ptr ctx_;
};

/// Builds a server context into `out`; errc::tls_error naming the file(s) and OpenSSL's
/// reason if they cannot be loaded.
error_info make_server_tls_context(const tls_server_options& o, tls_context_ptr& out);

struct tls_client_options {
  std::string ca_file;      ///< also trust these CAs (PEM); empty: the system store only
  bool insecure = false;    ///< verify nothing
  std::string cert_file, key_file;  ///< mutual TLS: this client's PEM chain and key (both or neither)
};

/// A client context. Throws std::invalid_argument("<config>.tls_ca_file: ...", or
/// ".tls_cert_file: ...") when a file cannot be loaded.
tls_context_ptr make_client_tls_context(const tls_client_options& o, const std::string& config);

/// Prepares one client connection: the name to check (unless `verify` is false) and to
/// send as SNI (unless it is an IP literal), and the session to resume, if the context
/// has one. `name` may be an IP literal, IPv6 with or without brackets.
void prepare_client_ssl(ssl_st* ssl, const std::string& name, bool verify);

/// After a failed handshake: " (OpenSSL's verification result)", e.g. " (certificate has
/// expired)", or "" when the certificate was not the problem.
std::string verify_failure(const ssl_st* ssl);

/// After a server handshake: the client's certificate, if it sent one and it verified
/// (mutual TLS): subject (RFC 2253), subjectAltNames, SHA-256 fingerprint.
std::optional<peer_certificate> verified_peer_certificate(ssl_st* ssl);

}  // namespace msgtrans::net

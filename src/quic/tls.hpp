// GnuTLS side of the QUIC transport: credentials (loaded or self-signed) and the
// per-connection session set up for ngtcp2's crypto helper.
#pragma once

#include <msgtrans/auth.hpp>

#include <gnutls/gnutls.h>

#include <optional>
#include <string>
#include <system_error>
#include <vector>

struct ngtcp2_crypto_conn_ref;

namespace msgtrans::quic_detail {

/// What a QUIC listener loads: its certificate (or none: self-signed) and, for mutual
/// TLS, the CAs that client certificates must chain to.
struct server_tls_files {
  std::string cert_file, key_file;
  std::string client_ca_file;        ///< set: ask every client for a certificate
  bool require_client_cert = false;  ///< with client_ca_file: refuse a client without one
};

/// Certificate credentials shared by the connections of one listener or connector. A
/// listener's are replaced by reload_tls; each connection keeps (a shared_ptr to) the
/// ones its session was made with, since GnuTLS sessions point at them uncounted.
class tls_credentials {
 public:
  tls_credentials() = default;
  tls_credentials(const tls_credentials&) = delete;
  tls_credentials& operator=(const tls_credentials&) = delete;
  ~tls_credentials();

  /// Server: loads cert + key PEM files, or generates a self-signed certificate for
  /// localhost, 127.0.0.1, ::1 and `names` (written to `write_cert_to` if not empty).
  /// With `f.client_ca_file`, client certificates are asked for and verified against
  /// those CAs only (a sent certificate that does not verify fails the handshake).
  std::error_code init_server(const server_tls_files& f, const std::vector<std::string>& names,
                              const std::string& write_cert_to, std::string& detail);
  /// Client: trusts `ca_file`, or the system store when empty; presents `cert_file` /
  /// `key_file` when the server asks (mutual TLS; both or neither).
  std::error_code init_client(const std::string& ca_file, const std::string& cert_file,
                              const std::string& key_file, std::string& detail);

  gnutls_certificate_credentials_t get() const noexcept { return cred_; }
  /// Server: GNUTLS_CERT_IGNORE, _REQUEST or _REQUIRE (mutual TLS).
  gnutls_certificate_request_t client_cert_request() const noexcept { return request_; }

 private:
  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_certificate_request_t request_ = GNUTLS_CERT_IGNORE;
};

/// After the handshake (server): the client's certificate, if it sent one (it verified,
/// or the handshake would have failed): subject (RFC 4514), SANs, SHA-256 fingerprint.
std::optional<peer_certificate> client_certificate(gnutls_session_t s);

/// Creates a TLS 1.3 session wired to ngtcp2 through `ref`. Server: ALPN "msgtrans" is
/// accepted, no ALPN is accepted, anything else aborts the handshake. Client: offers
/// `alpn`, sends SNI `server_name`, and verifies the certificate against it (the string must
/// outlive the session: GnuTLS keeps the pointer) unless
/// `verify` is false. Returns nullptr (and `detail`) on failure.
gnutls_session_t make_server_session(const tls_credentials& cred, ngtcp2_crypto_conn_ref* ref,
                                     std::string& detail);
gnutls_session_t make_client_session(const tls_credentials& cred, ngtcp2_crypto_conn_ref* ref,
                                     const std::string& server_name, bool verify,
                                     const std::vector<std::string>& alpn, std::string& detail);

}  // namespace msgtrans::quic_detail

// GnuTLS side of the QUIC transport: credentials (loaded or self-signed) and the
// per-connection session set up for ngtcp2's crypto helper.
#pragma once

#include <gnutls/gnutls.h>

#include <string>
#include <system_error>
#include <vector>

struct ngtcp2_crypto_conn_ref;

namespace msgtrans::quic_detail {

/// Certificate credentials shared by every connection of one listener or connector.
class tls_credentials {
 public:
  tls_credentials() = default;
  tls_credentials(const tls_credentials&) = delete;
  tls_credentials& operator=(const tls_credentials&) = delete;
  ~tls_credentials();

  /// Server: loads cert + key PEM files, or generates a self-signed certificate for
  /// localhost, 127.0.0.1, ::1 and `names` (written to `write_cert_to` if not empty).
  std::error_code init_server(const std::string& cert_file, const std::string& key_file,
                              const std::vector<std::string>& names, const std::string& write_cert_to,
                              std::string& detail);
  /// Client: trusts `ca_file`, or the system store when empty.
  std::error_code init_client(const std::string& ca_file, std::string& detail);

  gnutls_certificate_credentials_t get() const noexcept { return cred_; }

 private:
  gnutls_certificate_credentials_t cred_ = nullptr;
};

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

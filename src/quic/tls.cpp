// GnuTLS credentials and sessions for QUIC. TLS 1.3 only (QUIC requires it).
#include "quic/tls.hpp"

#include <msgtrans/error.hpp>

#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <arpa/inet.h>

#include <cstdio>
#include <ctime>
#include <memory>

namespace msgtrans::quic_detail {
namespace {

// TLS 1.3 with the QUIC-capable AEADs. %DISABLE_TLS13_COMPAT_MODE: QUIC forbids the
// middlebox-compatibility ChangeCipherSpec.
constexpr const char* priority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"
    "%DISABLE_TLS13_COMPAT_MODE";

constexpr unsigned char alpn_msgtrans[] = "msgtrans";

std::error_code fail(std::string& detail, const std::string& what, int rv) {
  detail = what + ": " + gnutls_strerror(rv);
  return errc::tls_error;
}

void add_san(gnutls_x509_crt_t crt, const std::string& name) {
  unsigned char ip[16];
  if (inet_pton(AF_INET, name.c_str(), ip) == 1) {
    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_APPEND);
  } else if (inet_pton(AF_INET6, name.c_str(), ip) == 1) {
    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16, GNUTLS_FSAN_APPEND);
  } else {
    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name.data(),
                                         static_cast<unsigned>(name.size()), GNUTLS_FSAN_APPEND);
  }
}

// A certificate chain and its key from PEM files, both or neither (`config` names the
// config in the error, `what` the certificate).
std::error_code load_key_pair(gnutls_certificate_credentials_t cred, const std::string& cert_file,
                              const std::string& key_file, const char* config, const char* what,
                              std::string& detail) {
  if (cert_file.empty() || key_file.empty()) {
    detail = std::string(config) + ": tls_cert_file and tls_key_file must be given together";
    return errc::invalid_argument;
  }
  if (int rv = gnutls_certificate_set_x509_key_file(cred, cert_file.c_str(), key_file.c_str(), GNUTLS_X509_FMT_PEM);
      rv < 0)
    return fail(detail, std::string("loading ") + what + " " + cert_file + " / key " + key_file, rv);
  return {};
}

}  // namespace

tls_credentials::~tls_credentials() {
  if (cred_) gnutls_certificate_free_credentials(cred_);
}

namespace {

// Mutual TLS, server side: a client certificate that was sent must chain to the client
// CAs; none sent is left to the request mode (REQUIRE fails the handshake itself).
int verify_client(gnutls_session_t s) {
  unsigned n = 0;
  if (!gnutls_certificate_get_peers(s, &n) || n == 0) return 0;
  unsigned status = 0;
  if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0) return GNUTLS_E_CERTIFICATE_ERROR;
  return 0;
}

}  // namespace

std::error_code tls_credentials::init_server(const server_tls_files& f, const std::vector<std::string>& names,
                                             const std::string& write_cert_to, std::string& detail) {
  if (int rv = gnutls_certificate_allocate_credentials(&cred_); rv != 0)
    return fail(detail, "allocating TLS credentials", rv);
  if (!f.client_ca_file.empty()) {
    const int rv = gnutls_certificate_set_x509_trust_file(cred_, f.client_ca_file.c_str(), GNUTLS_X509_FMT_PEM);
    if (rv < 0) return fail(detail, "loading tls_client_ca_file " + f.client_ca_file, rv);
    if (rv == 0) {
      detail = "tls_client_ca_file " + f.client_ca_file + " holds no certificate";
      return errc::tls_error;
    }
    gnutls_certificate_set_verify_function(cred_, verify_client);
    request_ = f.require_client_cert ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST;
  }
  if (!f.cert_file.empty() || !f.key_file.empty())
    return load_key_pair(cred_, f.cert_file, f.key_file, "quic_server_config", "certificate", detail);

  // Self-signed ECDSA P-256 certificate, valid from an hour ago for ten years.
  gnutls_x509_privkey_t key = nullptr;
  gnutls_x509_crt_t crt = nullptr;
  struct cleanup {
    gnutls_x509_privkey_t& k;
    gnutls_x509_crt_t& c;
    ~cleanup() {
      if (c) gnutls_x509_crt_deinit(c);
      if (k) gnutls_x509_privkey_deinit(k);
    }
  } guard{key, crt};
  int rv = gnutls_x509_privkey_init(&key);
  if (rv == 0)
    rv = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  if (rv != 0) return fail(detail, "generating the self-signed key", rv);
  if ((rv = gnutls_x509_crt_init(&crt)) != 0) return fail(detail, "creating the certificate", rv);
  unsigned char serial[16];
  gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  const std::time_t now = std::time(nullptr);
  gnutls_x509_crt_set_version(crt, 3);
  gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
  gnutls_x509_crt_set_activation_time(crt, now - 3600);
  gnutls_x509_crt_set_expiration_time(crt, now + 10L * 365 * 24 * 3600);
  gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9);
  add_san(crt, "localhost");
  add_san(crt, "127.0.0.1");
  add_san(crt, "::1");
  for (auto& n : names) add_san(crt, n);
  gnutls_x509_crt_set_key(crt, key);
  // CA:TRUE so a client can load exactly this certificate as its trust anchor: GnuTLS
  // skips non-CA certificates in a trust list.
  gnutls_x509_crt_set_basic_constraints(crt, 1, 0);
  gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_CERT_SIGN);
  gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
  if ((rv = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) != 0)
    return fail(detail, "signing the self-signed certificate", rv);
  if ((rv = gnutls_certificate_set_x509_key(cred_, &crt, 1, key)) != 0)
    return fail(detail, "installing the self-signed certificate", rv);
  if (!write_cert_to.empty()) {
    gnutls_datum_t pem{};
    if ((rv = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem)) != 0)
      return fail(detail, "exporting the self-signed certificate", rv);
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(write_cert_to.c_str(), "wb"), &std::fclose);
    const bool ok = f && std::fwrite(pem.data, 1, pem.size, f.get()) == pem.size;
    gnutls_free(pem.data);
    if (!ok) {
      detail = "cannot write the self-signed certificate to " + write_cert_to;
      return errc::invalid_argument;
    }
  }
  return {};
}

std::error_code tls_credentials::init_client(const std::string& ca_file, const std::string& cert_file,
                                             const std::string& key_file, std::string& detail) {
  if (int rv = gnutls_certificate_allocate_credentials(&cred_); rv != 0)
    return fail(detail, "allocating TLS credentials", rv);
  if (!cert_file.empty() || !key_file.empty()) {
    if (auto e = load_key_pair(cred_, cert_file, key_file, "quic_client_config", "client certificate", detail))
      return e;
  }
  if (ca_file.empty()) {
    if (int rv = gnutls_certificate_set_x509_system_trust(cred_); rv < 0)
      return fail(detail, "loading the system trust store", rv);
  } else {
    int rv = gnutls_certificate_set_x509_trust_file(cred_, ca_file.c_str(), GNUTLS_X509_FMT_PEM);
    if (rv < 0) return fail(detail, "loading CA file " + ca_file, rv);
    if (rv == 0) {
      detail = "CA file " + ca_file + " holds no certificate";
      return errc::tls_error;
    }
  }
  return {};
}

namespace {

gnutls_session_t make_session(unsigned flags, const tls_credentials& cred, ngtcp2_crypto_conn_ref* ref,
                              std::string& detail) {
  gnutls_session_t s = nullptr;
  int rv = gnutls_init(&s, flags | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA);
  if (rv != 0) {
    detail = std::string("gnutls_init: ") + gnutls_strerror(rv);
    return nullptr;
  }
  const char* err = nullptr;
  if ((rv = gnutls_priority_set_direct(s, priority, &err)) != 0 ||
      (rv = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred.get())) != 0) {
    detail = std::string("TLS session setup: ") + gnutls_strerror(rv);
    gnutls_deinit(s);
    return nullptr;
  }
  const int q = (flags & GNUTLS_SERVER) ? ngtcp2_crypto_gnutls_configure_server_session(s)
                                        : ngtcp2_crypto_gnutls_configure_client_session(s);
  if (q != 0) {
    detail = "configuring the TLS session for QUIC failed";
    gnutls_deinit(s);
    return nullptr;
  }
  // The session pointer belongs to ngtcp2's crypto helper: it must be the conn_ref.
  gnutls_session_set_ptr(s, ref);
  return s;
}

}  // namespace

gnutls_session_t make_server_session(const tls_credentials& cred, ngtcp2_crypto_conn_ref* ref,
                                     std::string& detail) {
  gnutls_session_t s = make_session(GNUTLS_SERVER, cred, ref, detail);
  if (!s) return nullptr;
  // MANDATORY aborts the handshake when the client offers ALPN without "msgtrans"; a
  // client that offers no ALPN extension at all is still accepted (the Rust original).
  gnutls_datum_t p{const_cast<unsigned char*>(alpn_msgtrans), sizeof alpn_msgtrans - 1};
  gnutls_alpn_set_protocols(s, &p, 1, GNUTLS_ALPN_MANDATORY);
  if (cred.client_cert_request() != GNUTLS_CERT_IGNORE)
    gnutls_certificate_server_set_request(s, cred.client_cert_request());
  return s;
}

gnutls_session_t make_client_session(const tls_credentials& cred, ngtcp2_crypto_conn_ref* ref,
                                     const std::string& server_name, bool verify,
                                     const std::vector<std::string>& alpn, std::string& detail) {
  gnutls_session_t s = make_session(GNUTLS_CLIENT, cred, ref, detail);
  if (!s) return nullptr;
  if (!alpn.empty()) {
    std::vector<gnutls_datum_t> protos;
    for (auto& a : alpn)
      protos.push_back({reinterpret_cast<unsigned char*>(const_cast<char*>(a.data())),
                        static_cast<unsigned>(a.size())});
    gnutls_alpn_set_protocols(s, protos.data(), static_cast<unsigned>(protos.size()), 0);
  }
  unsigned char ip[16];
  const bool is_ip = inet_pton(AF_INET, server_name.c_str(), ip) == 1 ||
                     inet_pton(AF_INET6, server_name.c_str(), ip) == 1;
  if (!is_ip && !server_name.empty())  // SNI carries host names only (RFC 6066)
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, server_name.data(), server_name.size());
  if (verify) gnutls_session_set_verify_cert(s, server_name.c_str(), 0);
  return s;
}

std::optional<peer_certificate> client_certificate(gnutls_session_t s) {
  unsigned n = 0;
  const gnutls_datum_t* peers = gnutls_certificate_get_peers(s, &n);
  if (!peers || n == 0) return std::nullopt;
  gnutls_x509_crt_t crt = nullptr;
  if (gnutls_x509_crt_init(&crt) != 0) return std::nullopt;
  std::unique_ptr<gnutls_x509_crt_int, void (*)(gnutls_x509_crt_t)> guard(crt, gnutls_x509_crt_deinit);
  if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) != 0) return std::nullopt;
  peer_certificate c;
  gnutls_datum_t dn{};
  if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
    c.subject.assign(reinterpret_cast<const char*>(dn.data), dn.size);
    gnutls_free(dn.data);
  }
  for (unsigned i = 0;; ++i) {
    char buf[1024];
    std::size_t size = sizeof buf;
    unsigned type = 0;
    const int rv = gnutls_x509_crt_get_subject_alt_name2(crt, i, buf, &size, &type, nullptr);
    if (rv == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) break;
    if (rv < 0) continue;  // too long, or unreadable: skip it
    if (type == GNUTLS_SAN_DNSNAME || type == GNUTLS_SAN_RFC822NAME || type == GNUTLS_SAN_URI) {
      c.subject_alt_names.emplace_back(buf, size);
    } else if (type == GNUTLS_SAN_IPADDRESS && (size == 4 || size == 16)) {
      char text[INET6_ADDRSTRLEN] = {};
      if (inet_ntop(size == 4 ? AF_INET : AF_INET6, buf, text, sizeof text)) c.subject_alt_names.emplace_back(text);
    }
  }
  unsigned char md[32];
  std::size_t len = sizeof md;
  if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, md, &len) == 0) {
    static const char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < len; ++i) {
      c.sha256_fingerprint += hex[md[i] >> 4];
      c.sha256_fingerprint += hex[md[i] & 15];
    }
  }
  return c;
}

}  // namespace msgtrans::quic_detail

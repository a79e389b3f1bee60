// See tls_context.hpp. Includes asio::ssl's context only (not its stream templates).
#include "net/tls_context.hpp"

#include <boost/asio/ssl/context.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <openssl/x509.h>

#include <mutex>
#include <stdexcept>

namespace msgtrans::net {

namespace ssl = boost::asio::ssl;

namespace {

// TLS 1.2 and up, on either side.
tls_context_ptr base_context(ssl::context::method m) {
  auto tls = std::make_shared<ssl::context>(m);
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
  return tls;
}

// The last session a client context was given, offered on its next handshake.
struct session_slot {
  std::mutex mu;
  SSL_SESSION* session = nullptr;
};

void free_slot(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  auto* slot = static_cast<session_slot*>(ptr);
  if (!slot) return;
  if (slot->session) SSL_SESSION_free(slot->session);
  delete slot;
}

int slot_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_slot);
  return index;
}

session_slot* slot_of(SSL_CTX* ctx) { return static_cast<session_slot*>(SSL_CTX_get_ex_data(ctx, slot_index())); }

// OpenSSL hands over a reference to each new session (TLS 1.3: each ticket).
int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* slot = slot_of(SSL_get_SSL_CTX(ssl));
  if (!slot) return 0;
  std::lock_guard lock(slot->mu);
  if (slot->session) SSL_SESSION_free(slot->session);
  slot->session = session;
  return 1;  // we keep the reference
}

bool is_ip_literal(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

error_info make_server_tls_context(const tls_server_options& o, tls_context_ptr& out) {
  tls_context_ptr tls;
  try {
    tls = base_context(ssl::context::tls_server);
    tls->use_certificate_chain_file(o.cert_file);
    tls->use_private_key_file(o.key_file, ssl::context::pem);
  } catch (const boost::system::system_error& e) {
    return {errc::tls_error,
            "cannot load tls_cert_file " + o.cert_file + " / tls_key_file " + o.key_file + ": " + e.code().message()};
  }
  SSL_CTX* ctx = tls->native_handle();
  static const unsigned char id[] = "msgtrans";
  SSL_CTX_set_session_id_context(ctx, id, sizeof id - 1);
  if (!o.client_ca_file.empty()) {
    // Only these CAs (not the system store) vouch for clients; their names go into the
    // CertificateRequest so that a client can pick its certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca_file.c_str());
    if (!names || SSL_CTX_load_verify_locations(ctx, o.client_ca_file.c_str(), nullptr) != 1) {
      if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return {errc::tls_error, "cannot load tls_client_ca_file " + o.client_ca_file};
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (o.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nullptr);
  }
  out = std::move(tls);
  return {};
}

tls_context_ptr make_client_tls_context(const tls_client_options& o, const std::string& config) {
  auto tls = base_context(ssl::context::tls_client);
  SSL_CTX* ctx = tls->native_handle();
  SSL_CTX_set_ex_data(ctx, slot_index(), new session_slot);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  if (!o.cert_file.empty()) {
    boost::system::error_code ec;
    tls->use_certificate_chain_file(o.cert_file, ec);
    if (!ec) tls->use_private_key_file(o.key_file, ssl::context::pem, ec);
    if (ec)
      throw std::invalid_argument(config + ".tls_cert_file / tls_key_file: cannot load \"" + o.cert_file + "\" / \"" +
                                  o.key_file + "\": " + ec.message());
  }
  if (o.insecure) {
    tls->set_verify_mode(ssl::verify_none);
    return tls;
  }
  tls->set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  tls->set_default_verify_paths(ec);
  if (!o.ca_file.empty()) {
    tls->load_verify_file(o.ca_file, ec);
    if (ec) throw std::invalid_argument(config + ".tls_ca_file: cannot load \"" + o.ca_file + "\": " + ec.message());
  }
  return tls;
}

void prepare_client_ssl(ssl_st* s, const std::string& name_in, bool verify) {
  std::string name = name_in;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  const bool ip = is_ip_literal(name);
  if (!ip) SSL_set_tlsext_host_name(s, name.c_str());
  if (verify) {
    if (ip) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name.c_str());
    else SSL_set1_host(s, name.c_str());
  }
  if (auto* slot = slot_of(SSL_get_SSL_CTX(s))) {
    std::lock_guard lock(slot->mu);
    if (slot->session) SSL_set_session(s, slot->session);
  }
}

std::string verify_failure(const ssl_st* s) {
  const long v = SSL_get_verify_result(s);
  if (v == X509_V_OK) return "";
  return " (" + std::string(X509_verify_cert_error_string(v)) + ")";
}

std::optional<peer_certificate> verified_peer_certificate(ssl_st* ssl) {
  X509* x = SSL_get1_peer_certificate(ssl);
  if (!x) return std::nullopt;
  if (SSL_get_verify_result(ssl) != X509_V_OK) {
    X509_free(x);
    return std::nullopt;
  }
  peer_certificate c;
  if (BIO* b = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    char* p = nullptr;
    const long n = BIO_get_mem_data(b, &p);
    if (n > 0) c.subject.assign(p, static_cast<std::size_t>(n));
    BIO_free(b);
  }
  if (auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
      if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
        const ASN1_IA5STRING* s = g->d.ia5;
        c.subject_alt_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                         static_cast<std::size_t>(ASN1_STRING_length(s)));
      } else if (g->type == GEN_IPADD) {
        const int len = ASN1_STRING_length(g->d.ip);
        char text[INET6_ADDRSTRLEN] = {};
        if ((len == 4 || len == 16) &&
            inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.ip), text, sizeof text))
          c.subject_alt_names.emplace_back(text);
      }
    }
    GENERAL_NAMES_free(names);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(x, EVP_sha256(), md, &len) == 1) {
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < len; ++i) {
      c.sha256_fingerprint += hex[md[i] >> 4];
      c.sha256_fingerprint += hex[md[i] & 15];
    }
  }
  X509_free(x);
  return c;
}

}  // namespace msgtrans::net

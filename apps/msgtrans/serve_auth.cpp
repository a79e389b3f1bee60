#include "serve_auth.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fstream>
#include <memory>
#include <sstream>

namespace msgtrans::cli {

namespace {

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  out = s.str();
  return true;
}

// "RS256" or "ES256" from the PEM public key's type, or "" if it is neither.
std::string algorithm_of(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr),
                                                          &EVP_PKEY_free);
  if (!key) return "";
  switch (EVP_PKEY_get_base_id(key.get())) {
    case EVP_PKEY_RSA: return "RS256";
    case EVP_PKEY_EC: return "ES256";
    default: return "";
  }
}

}  // namespace

std::string add_auth(server_builder& b, const serve_options& o) {
  if (o.jwt_secret_file.empty() && o.jwt_public_key.empty()) {
    if (!o.jwt_audience.empty() || !o.jwt_issuer.empty())
      return "--jwt-audience/--jwt-issuer need --jwt-secret-file or --jwt-public-key";
    return "";
  }
  if (!o.jwt_secret_file.empty() && !o.jwt_public_key.empty())
    return "--jwt-secret-file and --jwt-public-key exclude each other";
  jwt_config c;
  c.audience = o.jwt_audience;
  c.issuer = o.jwt_issuer;
  if (!o.jwt_secret_file.empty()) {
    if (!read_file(o.jwt_secret_file, c.key)) return "--jwt-secret-file " + o.jwt_secret_file + ": cannot read it";
    while (!c.key.empty() && (c.key.back() == '\n' || c.key.back() == '\r')) c.key.pop_back();
    if (c.key.empty()) return "--jwt-secret-file " + o.jwt_secret_file + ": the file is empty";
    c.algorithm = "HS256";
  } else {
    if (!read_file(o.jwt_public_key, c.key)) return "--jwt-public-key " + o.jwt_public_key + ": cannot read it";
    c.algorithm = algorithm_of(c.key);
    if (c.algorithm.empty())
      return "--jwt-public-key " + o.jwt_public_key + ": not a PEM RSA or EC public key (RS256 / ES256)";
  }
  // The JWT check answers at once, on the loop thread: the library's auth_timeout and
  // max_pending_auth (for hooks that answer later) never come into play, so serve has
  // no flags for them.
  b.on_authenticate(jwt_authenticator{c});
  return "";
}

}  // namespace msgtrans::cli

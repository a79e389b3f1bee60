// `msgtrans cert`: writes a self-signed certificate and private key (PEM) for development:
// an EC P-256 key, CN = the first name, every --name as a subjectAltName (DNS, or IP when
// it parses as an address), usable as its own CA by `--ca` on the client side.
#include "commands.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <cstring>
#include <sys/stat.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace msgtrans::cli {

namespace {

struct cert_options {
  std::string out_cert, out_key;
  std::vector<std::string> names;
  int days = 365;
};

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

bool is_ip(const std::string& n) {
  unsigned char buf[16];
  return inet_pton(AF_INET, n.c_str(), buf) == 1 || inet_pton(AF_INET6, n.c_str(), buf) == 1;
}

bool add_ext(X509* x, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, decltype(&X509_EXTENSION_free)> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()), X509_EXTENSION_free);
  return ext && X509_add_ext(x, ext.get(), -1) == 1;
}

int run_cert(cert_options o) {
  if (o.names.empty()) o.names.push_back("localhost");
  if (o.days <= 0) {
    std::cerr << "cert: --days must be positive\n";
    return usage;
  }
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  if (!key || !x) {
    std::cerr << "cert: " << openssl_error() << "\n";
    return failed;
  }
  X509_set_version(x.get(), 2);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_new(), BN_free);
  BN_rand(bn.get(), 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x.get()));
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(o.days) * 24 * 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(o.names[0].c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  std::string san;
  for (auto& n : o.names) san += (san.empty() ? "" : ",") + std::string(is_ip(n) ? "IP:" : "DNS:") + n;
  if (!add_ext(x.get(), NID_subject_alt_name, san) || !add_ext(x.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(x.get(), NID_key_usage, "critical,digitalSignature,keyCertSign") ||
      !add_ext(x.get(), NID_ext_key_usage, "serverAuth") || !add_ext(x.get(), NID_subject_key_identifier, "hash")) {
    std::cerr << "cert: bad --name list '" << san << "': " << openssl_error() << "\n";
    return usage;
  }
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) {
    std::cerr << "cert: signing failed: " << openssl_error() << "\n";
    return failed;
  }

  // The key is written owner-only.
  auto write = [](const std::string& path, mode_t mode, auto&& body) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return false;
    ::chmod(path.c_str(), mode);
    bool ok = body(f);
    return std::fclose(f) == 0 && ok;
  };
  if (!write(o.out_key, 0600, [&](std::FILE* f) {
        return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
      })) {
    std::cerr << "cert: cannot write key to " << o.out_key << " (check the directory exists and is writable)\n";
    return failed;
  }
  if (!write(o.out_cert, 0644, [&](std::FILE* f) { return PEM_write_X509(f, x.get()) == 1; })) {
    std::cerr << "cert: cannot write certificate to " << o.out_cert
              << " (check the directory exists and is writable)\n";
    return failed;
  }
  std::cerr << "cert: wrote " << o.out_cert << " and " << o.out_key << " for " << san << ", valid " << o.days
            << " days\n";
  return ok;
}

}  // namespace

void add_cert(CLI::App& app, int& exit_status) {
  auto o = std::make_shared<cert_options>();
  auto* cmd = app.add_subcommand("cert", "Write a self-signed certificate and key (PEM) for development");
  cmd->add_option("--out-cert", o->out_cert, "certificate file to write (PEM)")->required();
  cmd->add_option("--out-key", o->out_key, "private key file to write (PEM, mode 0600)")->required();
  cmd->add_option("--name", o->names, "DNS name or IP address (repeatable; the first is the CN; default localhost)");
  cmd->add_option("--days", o->days, "days of validity")->capture_default_str();
  cmd->callback([o, &exit_status] { exit_status = run_cert(*o); });
}

}  // namespace msgtrans::cli

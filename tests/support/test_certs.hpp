// A throw-away PKI for the TLS tests, made with the openssl command in a temporary
// folder: two CAs (ca, other), a server certificate for localhost / 127.0.0.1 signed by
// ca (server.pem, server.key), the same one expired (expired.pem), and client
// certificates for mutual TLS: alice from ca (client.pem, client.key; SANs
// alice.example and 10.0.0.1) and the same key signed by the other CA (rogue.pem).
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace msgtrans::test {

class test_certs {
 public:
  explicit test_certs(const std::string& tag)
      : dir_(std::filesystem::temp_directory_path() / ("msgtrans_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    run("openssl req -x509" + ec + " -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem");
    run("openssl req -x509" + ec + " -days 2 -subj /CN=other-ca -keyout other.key -out other.pem");
    run("openssl req" + ec + " -subj /CN=localhost -keyout server.key -out server.csr");
    std::ofstream(dir_ / "san.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    run("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext"
        " -out server.pem");
    // Expired yesterday: -days -1 puts notAfter a day before notBefore (now).
    run("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days -1 -extfile san.ext"
        " -out expired.pem");
    run("openssl req" + ec + " -subj /CN=alice -keyout client.key -out client.csr");
    std::ofstream(dir_ / "client.ext") << "subjectAltName=DNS:alice.example,IP:10.0.0.1\n";
    run("openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext"
        " -out client.pem");
    run("openssl x509 -req -in client.csr -CA other.pem -CAkey other.key -CAcreateserial -days 2 -out rogue.pem");
  }
  ~test_certs() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  test_certs(const test_certs&) = delete;
  test_certs& operator=(const test_certs&) = delete;

  std::string file(const char* name) const { return (dir_ / name).string(); }
  const std::filesystem::path& dir() const { return dir_; }

  /// What `openssl x509 -fingerprint -sha256` says of `pem`: hex, lower case, no colons.
  std::string sha256_fingerprint(const char* pem) const {
    std::string out;
    if (FILE* f = ::popen(("openssl x509 -noout -fingerprint -sha256 -in " + file(pem)).c_str(), "r")) {
      char line[512] = {};
      if (std::fgets(line, sizeof line, f)) {
        std::string l(line);
        for (char ch : l.substr(l.find('=') + 1))
          if (std::isxdigit(static_cast<unsigned char>(ch))) out += static_cast<char>(std::tolower(ch));
      }
      ::pclose(f);
    }
    return out;
  }

  /// Runs `cmd` in the folder; fails the test if it fails.
  void run(const std::string& cmd) const {
    const int rc = std::system(("cd " + dir_.string() + " && " + cmd + " >/dev/null 2>&1").c_str());
    ASSERT_EQ(rc, 0) << cmd;
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace msgtrans::test

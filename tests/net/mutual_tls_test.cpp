// Mutual TLS on every TLS transport (tls://, wss://, quic://), over real sockets on
// loopback: a client certificate from the CA the listener trusts for clients is
// accepted, and the verified certificate (subject, subjectAltNames, SHA-256 fingerprint,
// as openssl itself prints it) reaches on_authenticate and connection_info; a client
// without one is refused with require_client_cert and let in without a certificate
// otherwise; a certificate from another CA never gets in with that certificate. Also
// certificate reload on QUIC: new handshakes see the new certificate, an open
// connection carries on, a bad file is named and the current certificate kept.
#include "support/test_certs.hpp"
#include "support/expect_invalid.hpp"
#include "support/test_support.hpp"

#include <msgtrans/quic.hpp>
#include <msgtrans/url.hpp>
#include <msgtrans/ws.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

namespace fs = std::filesystem;

class mutual_tls : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { certs_ = std::make_unique<test_certs>("mtls"); }
  static void TearDownTestSuite() { certs_.reset(); }
  static std::string file(const char* name) { return certs_->file(name); }

  // A listener of the parameter's protocol with the server certificate, asking for
  // client certificates from ca.pem.
  static void listen(server_builder& b, const std::string& proto, bool require, const char* cert = "server.pem") {
    auto set = [&](auto c) {  // the fields every TLS listener names alike
      c.bind_address = "127.0.0.1:0";
      c.tls_cert_file = file(cert);
      c.tls_key_file = file("server.key");
      c.tls_client_ca_file = file("ca.pem");
      c.require_client_cert = require;
      return c;
    };
    if (proto == "tls") {
      b.listen(set(tcp_server_config{}));
    } else if (proto == "wss") {
      ws_server_config w;
      w.path = "/ws";
      b.listen(set(w));
    } else {
      b.listen(set(quic_server_config{}));
    }
  }

  // The URL of the server's first listener, by name (the certificate is for localhost).
  static std::string url_of(const server& s, const std::string& proto) {
    auto a = address_of(s);  // 127.0.0.1:PORT or 127.0.0.1:PORT/ws
    return proto + "://localhost" + a.substr(a.find(':'));
  }

  // A client that trusts ca.pem and presents `cert` (signed-by key client.key), or none.
  static client make_client(const server& s, const std::string& proto, const char* cert) {
    url_options o;
    o.tls_ca_file = file("ca.pem");
    if (cert) {
      o.tls_cert_file = file(cert);
      o.tls_key_file = file("client.key");
    }
    std::string err;
    auto c = connector_for_url(url_of(s, proto), o, err);
    EXPECT_TRUE(c) << err;
    return client_builder{}.connect_to(std::move(c)).credentials("token").build();
  }

  // True if the client is kept out: its connect fails, or (TLS 1.3: the client's side
  // of the handshake may end before the server judges its certificate) its first
  // request fails.
  static bool refused(client& c) {
    if (c.connect()) return true;
    return !c.call(as_bytes("must not arrive"), 5s);
  }

  static inline std::unique_ptr<test_certs> certs_;
};

struct seen_log {
  std::mutex mu;
  std::vector<std::optional<peer_certificate>> at_auth, at_connected;
  std::atomic<int> delivered{0};
};

server make_server(const std::string& proto, bool require, seen_log& log,
                   void (*listen)(server_builder&, const std::string&, bool, const char*)) {
  server_builder b;
  listen(b, proto, require, "server.pem");
  b.threads(2);
  b.on_authenticate([&log](const auth_request& r, auth_responder a) {
    {
      std::lock_guard lock(log.mu);
      log.at_auth.push_back(r.certificate);
    }
    identity who;
    who.user = r.certificate ? r.certificate->subject : "anonymous";
    a.accept(std::move(who));
  });
  b.on_connected([&log](const connection_info& i) {
    std::lock_guard lock(log.mu);
    log.at_connected.push_back(i.certificate);
  });
  b.on_request([&log](request& r) {
    ++log.delivered;
    r.respond(r.payload);
  });
  return b.build();
}

TEST_P(mutual_tls, VerifiedCertificateReachesTheHookAndConnectionInfo) {
  const auto proto = GetParam();
  seen_log log;
  server s = make_server(proto, false, log, &mutual_tls::listen);
  ASSERT_FALSE(s.start());

  client alice = make_client(s, proto, "client.pem");
  ASSERT_FALSE(alice.connect());
  auto r = alice.call("with a certificate");
  ASSERT_TRUE(r) << r.error().message();
  client anonymous = make_client(s, proto, nullptr);
  ASSERT_FALSE(anonymous.connect());
  ASSERT_TRUE(anonymous.call("without"));
  EXPECT_EQ(log.delivered.load(), 2);

  const std::string fingerprint = certs_->sha256_fingerprint("client.pem");
  ASSERT_EQ(fingerprint.size(), 64u);
  std::lock_guard lock(log.mu);
  ASSERT_EQ(log.at_auth.size(), 2u);
  ASSERT_TRUE(log.at_auth[0]);
  EXPECT_EQ(log.at_auth[0]->subject, "CN=alice");
  EXPECT_EQ(log.at_auth[0]->subject_alt_names, (std::vector<std::string>{"alice.example", "10.0.0.1"}));
  EXPECT_EQ(log.at_auth[0]->sha256_fingerprint, fingerprint);
  EXPECT_FALSE(log.at_auth[1]);
  ASSERT_EQ(log.at_connected.size(), 2u);
  ASSERT_TRUE(log.at_connected[0]);
  EXPECT_EQ(log.at_connected[0]->sha256_fingerprint, fingerprint);
  EXPECT_FALSE(log.at_connected[1]);
}

// With require_client_cert, a client without a certificate or with one from another CA
// is refused and none of its packets arrive. Without it, the client with no certificate
// comes in without one; a certificate from another CA is refused in the handshake
// (OpenSSL sends it and the server's verification fails), or, on QUIC, GnuTLS does not
// offer a certificate the server's CA list does not name, so that client comes in with
// no certificate: either way, never with the rogue one.
TEST_P(mutual_tls, RequireClientCertRefusesClientsWithoutOneOrFromAnotherCa) {
  const auto proto = GetParam();
  for (bool require : {true, false}) {
    SCOPED_TRACE(require ? "require_client_cert" : "client certificate optional");
    seen_log log;
    server s = make_server(proto, require, log, &mutual_tls::listen);
    ASSERT_FALSE(s.start());
    client alice = make_client(s, proto, "client.pem");
    ASSERT_FALSE(alice.connect());
    ASSERT_TRUE(alice.call("alice"));

    client none = make_client(s, proto, nullptr);
    if (require) {
      EXPECT_TRUE(refused(none));
    } else {
      ASSERT_FALSE(none.connect());
      EXPECT_TRUE(none.call("no certificate, optional"));
    }
    client rogue = make_client(s, proto, "rogue.pem");
    const bool rogue_refused = refused(rogue);
    if (require || proto != "quic") {
      EXPECT_TRUE(rogue_refused);
    }
    const int expected = 1 + (require ? 0 : 1) + (rogue_refused ? 0 : 1);
    EXPECT_EQ(log.delivered.load(), expected);
    std::lock_guard lock(log.mu);
    for (auto& c : log.at_auth) {
      if (c) {
        EXPECT_EQ(c->sha256_fingerprint, certs_->sha256_fingerprint("client.pem"));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(transports, mutual_tls, ::testing::Values("tls", "wss", "quic"),
                         [](const auto& info) { return info.param; });

TEST(MutualTlsConfig, MistakesNameTheField) {
  ws_server_config ws;
  ws.tls_client_ca_file = "ca.pem";  // plain ws: no TLS to ask in
  expect_invalid_naming([&] { make_listener(ws); }, "ws_server_config.tls_client_ca_file");
  ws.tls_cert_file = "c.pem";
  ws.tls_key_file = "k.pem";
  ws.tls_client_ca_file.clear();
  ws.require_client_cert = true;
  expect_invalid_naming([&] { make_listener(ws); }, "ws_server_config.require_client_cert");
  quic_server_config q;
  q.require_client_cert = true;
  expect_invalid_naming([&] { make_listener(q); }, "quic_server_config.require_client_cert");
  ws_client_config wc;
  wc.url = "wss://localhost:1/";
  wc.tls_cert_file = "c.pem";
  expect_invalid_naming([&] { make_connector(wc); }, "ws_client_config.tls_cert_file");
  wc.url = "ws://localhost:1/";
  wc.tls_key_file = "k.pem";
  expect_invalid_naming([&] { make_connector(wc); }, "ws_client_config.tls_cert_file");
  quic_client_config qc;
  qc.tls_key_file = "k.pem";
  expect_invalid_naming([&] { make_connector(qc); }, "quic_client_config");
}

// A QUIC listener's reload_tls: new handshakes get the files as they are now (here an
// expired certificate, which the client refuses saying so), an open connection carries
// on with the credentials it was made with, and a file that cannot be loaded is named
// while the current certificate stays.
TEST(QuicReload, NewHandshakesSeeTheNewCertificateOpenConnectionsCarryOn) {
  test_certs certs("quic_reload");
  fs::copy_file(certs.file("server.pem"), certs.file("live.pem"), fs::copy_options::overwrite_existing);
  quic_server_config q;
  q.bind_address = "127.0.0.1:0";
  q.tls_cert_file = certs.file("live.pem");
  q.tls_key_file = certs.file("server.key");
  server_builder b;
  b.listen(q).threads(2).on_request([](request& r) { r.respond(r.payload); });
  server s = b.build();
  ASSERT_FALSE(s.start());
  auto connect = [&]() {
    quic_client_config c;
    c.address = "localhost" + address_of(s).substr(address_of(s).find(':'));
    c.tls_ca_file = certs.file("ca.pem");
    return client_builder{}.connect_to(c).build();
  };
  client before = connect();
  ASSERT_FALSE(before.connect());
  ASSERT_TRUE(before.call("before"));

  fs::copy_file(certs.file("expired.pem"), certs.file("live.pem"), fs::copy_options::overwrite_existing);
  auto e = s.reload_tls();
  ASSERT_FALSE(e) << e.message();
  client after = connect();
  auto ce = after.connect();
  ASSERT_TRUE(ce);
  EXPECT_EQ(ce.code, std::error_code(errc::tls_error)) << ce.message();
  EXPECT_NE(ce.message().find("expired"), std::string::npos) << ce.message();
  auto r = before.call("still here");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_string(r->payload), "still here");

  { std::ofstream(certs.file("live.pem")) << "not a certificate\n"; }
  e = s.reload_tls();
  ASSERT_TRUE(e);
  EXPECT_EQ(e.code, std::error_code(errc::tls_error)) << e.message();
  EXPECT_NE(e.message().find("live.pem"), std::string::npos) << e.message();
  client kept = connect();
  ce = kept.connect();
  ASSERT_TRUE(ce);
  EXPECT_NE(ce.message().find("expired"), std::string::npos) << ce.message();  // the expired one stays
  EXPECT_TRUE(before.call("and still"));
}

}  // namespace

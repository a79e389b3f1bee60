// TLS over TCP (tls://) through the runtime, over real sockets on loopback: requests of
// every size, many in flight, what the client refuses (wrong CA, expired certificate,
// wrong name) and why, the URL scheme, the configuration checks, and the server's
// handshake timeout against stalled handshakes. The certificates are made here with the
// openssl command. Independent peers (openssl s_client) are in tls_cli_test.sh.
#include "support/test_certs.hpp"
#include "support/test_support.hpp"

#include <msgtrans/quic.hpp>

#include <boost/asio/use_future.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <cctype>
#include <cstdio>
#include <future>
#include <mutex>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

namespace fs = std::filesystem;

class tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = std::make_unique<test_certs>("tls"); }
  static void TearDownTestSuite() { certs_.reset(); }

  static std::string file(const char* name) { return certs_->file(name); }

  static tcp_server_config server_config(const char* cert = "server.pem") {
    tcp_server_config c;
    c.bind_address = "127.0.0.1:0";
    c.tls_cert_file = file(cert);
    c.tls_key_file = file("server.key");
    return c;
  }

  static server make_echo(tcp_server_config c, std::function<void(server_builder&)> tweak = {}) {
    server_builder b;
    b.listen(c).threads(2);
    b.on_request([](request& r) { r.respond(r.payload); });
    if (tweak) tweak(b);
    return b.build();
  }

  static tcp_client_config client_config(const server& s, const char* ca = "ca.pem") {
    tcp_client_config c;
    c.address = "localhost:" + port_of(s);
    c.tls = true;
    if (ca) c.tls_ca_file = file(ca);
    return c;
  }

  static std::string port_of(const server& s) {
    auto a = address_of(s);
    return a.substr(a.rfind(':') + 1);
  }

  static inline std::unique_ptr<test_certs> certs_;
};

// Connects with `c` and returns the error's text ("" if it connected).
std::string connect_error(const tcp_client_config& c) {
  client cl = client_builder{}.connect_to(c).build();
  auto e = cl.connect();
  if (!e) return "";
  EXPECT_EQ(e.code, std::error_code(errc::tls_error)) << e.message();
  return e.message();
}

// True once the peer closes `fd` (EOF or reset) within `timeout`.
bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
  char b[256];
  return ::recv(fd, b, sizeof b, 0) <= 0;
}

// A TCP connection to `port` that sends `bytes` (maybe none) and then nothing more.
int stalled_connection(const std::string& port, std::string_view bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  if (!bytes.empty()) {
    EXPECT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  }
  return fd;
}

}  // namespace

TEST_F(tls, RequestsOfEverySizeAndManyInFlight) {
  auto s = make_echo(server_config());
  ASSERT_FALSE(s.start());
  ASSERT_EQ(s.local_addresses().at(0).first, "tls");
  client c = client_builder{}.connect_to(client_config(s)).build();
  auto e = c.connect();
  ASSERT_FALSE(e) << e.message();
  EXPECT_EQ(c.info()->endpoint.protocol, "tls");

  auto r = c.call("hello over tls");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_string(r->payload), "hello over tls");

  // 1 MiB each way: many TLS records, reads that grow.
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
  auto rb = c.call(as_bytes(big), 20s);
  ASSERT_TRUE(rb) << rb.error().message();
  EXPECT_EQ(as_string(rb->payload), big);

  // 500 requests in flight at once, each answered with its own payload.
  std::vector<std::string> payloads;
  for (int i = 0; i < 500; ++i) payloads.push_back("req-" + std::to_string(i) + std::string(i % 97, 'x'));
  std::vector<std::future<std::tuple<std::error_code, packet>>> pending;
  for (auto& p : payloads) pending.push_back(c.request(as_bytes(p), 20s, boost::asio::use_future));
  for (std::size_t i = 0; i < pending.size(); ++i) {
    auto [ec, p] = pending[i].get();
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(as_string(p.payload), payloads[i]);
  }

  auto st = s.stats();
  EXPECT_EQ(st.active_by_protocol["tls"], 1u);
  EXPECT_GE(st.packets_in, 502u);
}

TEST_F(tls, ClientRefusesWrongCaExpiredAndWrongNameSayingWhy) {
  auto good = make_echo(server_config());
  ASSERT_FALSE(good.start());
  auto expired = make_echo(server_config("expired.pem"));
  ASSERT_FALSE(expired.start());

  auto wrong_ca = connect_error(client_config(good, "other.pem"));
  EXPECT_NE(wrong_ca.find("certificate verify failed"), std::string::npos) << wrong_ca;
  EXPECT_NE(wrong_ca.find("unable to get local issuer certificate"), std::string::npos) << wrong_ca;
  // Without tls_ca_file only the system store is trusted: refused as well.
  auto no_ca = connect_error(client_config(good, nullptr));
  EXPECT_NE(no_ca.find("unable to get local issuer certificate"), std::string::npos) << no_ca;

  auto exp = connect_error(client_config(expired));
  EXPECT_NE(exp.find("certificate has expired"), std::string::npos) << exp;

  auto named = client_config(good);
  named.tls_server_name = "other.example";
  auto name = connect_error(named);
  EXPECT_NE(name.find("hostname mismatch"), std::string::npos) << name;

  // The certificate names 127.0.0.1 too: an IP literal is checked against it.
  auto by_ip = client_config(good);
  by_ip.address = "127.0.0.1:" + port_of(good);
  EXPECT_EQ(connect_error(by_ip), "");
  auto ip_mismatch = client_config(good);
  ip_mismatch.tls_server_name = "127.0.0.2";
  auto ipm = connect_error(ip_mismatch);
  EXPECT_NE(ipm.find("IP address mismatch"), std::string::npos) << ipm;

  // tls_insecure_skip_verify accepts all of them.
  for (auto* s : {&good, &expired}) {
    auto c = client_config(*s, "other.pem");
    c.tls_insecure_skip_verify = true;
    c.tls_server_name = "other.example";
    client cl = client_builder{}.connect_to(c).build();
    ASSERT_FALSE(cl.connect());
    auto r = cl.call("insecure");
    ASSERT_TRUE(r) << r.error().message();
  }
}

TEST_F(tls, UrlSchemeAndTarget) {
  auto s = make_echo(server_config());
  ASSERT_FALSE(s.start());
  std::string err;
  url_options o;
  o.tls_ca_file = file("ca.pem");
  auto conn = connector_for_url("tls://localhost:" + port_of(s), o, err);
  ASSERT_TRUE(conn) << err;
  EXPECT_EQ(conn->target(), "tls://localhost:" + port_of(s));
  client c = client_builder{}.connect_to(std::move(conn)).build();
  ASSERT_FALSE(c.connect());
  auto r = c.call("by url");
  ASSERT_TRUE(r) << r.error().message();

  // Without the CA the URL's client verifies and refuses.
  auto strict = connector_for_url("tls://localhost:" + port_of(s), url_options{}, err);
  ASSERT_TRUE(strict) << err;
  client c2 = client_builder{}.connect_to(std::move(strict)).build();
  EXPECT_EQ(c2.connect().code, std::error_code(errc::tls_error));

  EXPECT_FALSE(connector_for_url("tls://localhost:1/path", o, err));
  EXPECT_NE(err.find("tls://host:port"), std::string::npos) << err;
  auto schemes = url_schemes();
  EXPECT_NE(std::find(schemes.begin(), schemes.end(), "tls"), schemes.end());
}

TEST_F(tls, ConfigurationMistakesNameTheField) {
  auto c = server_config();
  c.tls_key_file.clear();
  expect_invalid_naming([&] { make_listener(c); }, "tcp_server_config.tls_cert_file");
  c = server_config();
  c.handshake_timeout = 0ms;
  expect_invalid_naming([&] { make_listener(c); }, "tcp_server_config.handshake_timeout");
  tcp_client_config cc;
  cc.tls = true;
  cc.tls_ca_file = file("missing-ca.pem");
  expect_invalid_naming([&] { make_connector(cc); }, "tcp_client_config.tls_ca_file");
  cc.tls_ca_file.clear();
  cc.handshake_timeout = 0ms;
  expect_invalid_naming([&] { make_connector(cc); }, "tcp_client_config.handshake_timeout");

  // A certificate file that cannot be read: start says tls_error, naming it.
  auto bad = server_config();
  bad.tls_cert_file = file("missing.pem");
  auto s = make_echo(bad);
  auto e = s.start();
  EXPECT_EQ(e.code, std::error_code(errc::tls_error)) << e.message();
  EXPECT_NE(e.detail.find("missing.pem"), std::string::npos) << e.detail;
}

TEST_F(tls, MutualTlsConfigurationMistakes) {
  auto c = server_config();
  c.require_client_cert = true;
  expect_invalid_naming([&] { make_listener(c); }, "tcp_server_config.require_client_cert");
  tcp_server_config plain;
  plain.tls_client_ca_file = file("ca.pem");
  expect_invalid_naming([&] { make_listener(plain); }, "tcp_server_config.tls_client_ca_file");
  tcp_client_config cc;
  cc.tls = true;
  cc.tls_cert_file = file("client.pem");
  expect_invalid_naming([&] { make_connector(cc); }, "tcp_client_config.tls_cert_file");
  cc.tls_key_file = file("missing.key");
  expect_invalid_naming([&] { make_connector(cc); }, "tcp_client_config.tls_cert_file");
  cc.tls = false;
  cc.tls_key_file = file("client.key");
  expect_invalid_naming([&] { make_connector(cc); }, "tcp_client_config.tls_cert_file");
  // A client CA file that cannot be read: start says tls_error, naming it.
  auto bad = server_config();
  bad.tls_client_ca_file = file("missing-ca.pem");
  auto s = make_echo(bad);
  auto e = s.start();
  EXPECT_EQ(e.code, std::error_code(errc::tls_error)) << e.message();
  EXPECT_NE(e.detail.find("tls_client_ca_file"), std::string::npos) << e.detail;
  // The URL path: a client certificate needs a TLS scheme; plain ones say so.
  url_options o;
  o.tls_cert_file = file("client.pem");
  o.tls_key_file = file("client.key");
  std::string err;
  EXPECT_FALSE(connector_for_url("ws://localhost:1/", o, err));
  EXPECT_NE(err.find("wss://"), std::string::npos) << err;
  EXPECT_FALSE(connector_for_url("tcp://localhost:1", o, err));
  EXPECT_NE(err.find("needs tls://"), std::string::npos) << err;
  for (const char* url : {"tls://localhost:1", "wss://localhost:1/", "quic://localhost:1"})
    EXPECT_TRUE(connector_for_url(url, o, err)) << url << ": " << err;
}

// A server-side close flushes what was queued, then close_notify: the client reads all
// of it and sees an orderly end, not a truncated stream.
TEST_F(tls, GracefulCloseFlushesThenSendsCloseNotify) {
  server* sp = nullptr;
  const std::string big(300'000, 'z');
  auto s = make_echo(server_config(), [&](server_builder& b) {
    b.on_message([&](const message& m) {
      sp->send(m.session, as_bytes(big));
      sp->close(m.session);
    });
  });
  sp = &s;
  ASSERT_FALSE(s.start());
  waiter w;
  std::size_t got = 0;
  std::optional<close_info> closed;
  client c = client_builder{}
                 .connect_to(client_config(s))
                 .on_message([&](const message& m) { w.update([&] { got += m.payload.size(); }); })
                 .on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); })
                 .build();
  ASSERT_FALSE(c.connect());
  ASSERT_FALSE(c.send("bye"));
  ASSERT_TRUE(w.wait([&] { return closed.has_value(); }));
  EXPECT_EQ(got, big.size());
  EXPECT_EQ(closed->reason, close_reason::peer_closed);
  EXPECT_EQ(closed->detail, "peer closed the connection");
}

// tcp_client_config::handshake_timeout: a server that takes the TCP connection (the
// kernel's backlog does) and never answers the ClientHello.
TEST_F(tls, ClientHandshakeTimeout) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor silent(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  tcp_client_config c;
  c.address = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  c.tls = true;
  c.tls_insecure_skip_verify = true;
  c.handshake_timeout = 300ms;
  client cl = client_builder{}.connect_to(c).build();
  const auto start = std::chrono::steady_clock::now();
  auto e = cl.connect();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(e.code, std::error_code(errc::timeout)) << e.message();
  EXPECT_NE(e.detail.find("TLS handshake with 127.0.0.1:"), std::string::npos) << e.detail;
  EXPECT_NE(e.detail.find("timed out after 300 ms"), std::string::npos) << e.detail;
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 5s);
}

TEST_F(tls, PlainTcpClientOnTlsPortGetsNoPackets) {
  auto s = make_echo(server_config());
  ASSERT_FALSE(s.start());
  raw_peer peer(address_of(s));
  ASSERT_TRUE(peer.write(encode_packet(packet_type::request, 1, "plain")));
  EXPECT_FALSE(peer.read_packet(2s));  // the server answers with a TLS alert and closes
  EXPECT_EQ(s.stats().packets_in, 0u);
}

// A TLS handshake that stalls (nothing sent, or a ClientHello cut short) is cut at the
// handshake timeout, with a notice; hundreds of them do not keep a normal client out.
TEST_F(tls, StalledHandshakesAreCutAtTheTimeoutAndDoNotBlockOthers) {
  constexpr auto timeout = 3000ms;
  auto cfg = server_config();
  cfg.handshake_timeout = timeout;
  std::atomic<int> timeouts{0};
  auto s = make_echo(cfg, [&](server_builder& b) {
    b.on_notice([&](const notice& n) {
      if (n.kind == notice_kind::handshake_timeout) timeouts += static_cast<int>(1 + n.suppressed);
    });
  });
  ASSERT_FALSE(s.start());
  const auto port = port_of(s);
  // A TLS record header announcing a 512-byte handshake message, then only 9 bytes of it.
  const std::string partial_hello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00", 14);
  constexpr int stalls = 2000;  // the number: 4,000 descriptors in this process
  std::vector<int> fds;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < stalls; ++i) {
    int fd = stalled_connection(port, i % 2 ? partial_hello : std::string_view());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  const auto made = std::chrono::steady_clock::now();
  // A normal client is served while all of them wait: none of them has been cut yet.
  {
    client c = client_builder{}.connect_to(client_config(s)).build();
    ASSERT_FALSE(c.connect());
    auto r = c.call("still served");
    ASSERT_TRUE(r) << r.error().message();
    const auto served = std::chrono::steady_clock::now();
    if (served - start < timeout - 200ms) {  // else a slow machine made the stalls too slowly to tell
      int cut = 0;
      for (int fd : fds) cut += closed_by_peer(fd, 0ms) ? 1 : 0;
      EXPECT_EQ(cut, 0) << "the client was served only after stalled handshakes were cut";
    }
  }
  // Each stalled one is closed by the server, not before the timeout and not long after.
  for (int fd : fds) {
    EXPECT_TRUE(closed_by_peer(fd, timeout + 10s));
    ::close(fd);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, timeout - 100ms);
  EXPECT_LT(took, (made - start) + timeout + 10s);
  EXPECT_EQ(s.stats().packets_in, 1u);
  // The notices are rate-limited per kind; the ones counted are all handshake timeouts.
  EXPECT_GE(timeouts.load(), 1);
}

// server::reload_tls: new handshakes get the files as they are now, an open connection
// carries on, a file that cannot be loaded keeps the current certificate and is named,
// and a QUIC listener with a generated certificate has nothing to reload (no error).
TEST_F(tls, ReloadTlsServesTheNewCertificateToNewHandshakes) {
  fs::copy_file(file("server.pem"), file("live.pem"), fs::copy_options::overwrite_existing);
  tcp_server_config c = server_config("live.pem");
  server_builder b;
  b.listen(c).threads(2).on_request([](request& r) { r.respond(r.payload); });
  quic_server_config q;
  q.bind_address = "127.0.0.1:0";
  b.listen(q);
  server s = b.build();
  ASSERT_FALSE(s.start());
  client before = client_builder{}.connect_to(client_config(s)).build();
  ASSERT_FALSE(before.connect());

  fs::copy_file(file("expired.pem"), file("live.pem"), fs::copy_options::overwrite_existing);
  auto e = s.reload_tls();
  ASSERT_FALSE(e) << e.message();
  auto now = connect_error(client_config(s));
  EXPECT_NE(now.find("certificate has expired"), std::string::npos) << now;
  auto r = before.call("still here");
  ASSERT_TRUE(r) << r.error().message();

  { std::ofstream(file("live.pem")) << "not a certificate\n"; }
  e = s.reload_tls();
  ASSERT_TRUE(e);
  EXPECT_EQ(e.code, std::error_code(errc::tls_error)) << e.message();
  EXPECT_NE(e.message().find("live.pem"), std::string::npos) << e.message();
  now = connect_error(client_config(s));
  EXPECT_NE(now.find("certificate has expired"), std::string::npos) << now;  // kept
}

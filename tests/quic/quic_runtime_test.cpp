// The QUIC transport through the runtime: server_builder / client_builder, quic:// URLs.
#include "support/test_support.hpp"

#include <msgtrans/quic.hpp>

#include <boost/asio/use_future.hpp>

#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <unistd.h>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

struct cert_file {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("msgtrans-quic-rt-" + std::to_string(::getpid()) + ".pem"))
                         .string();
  ~cert_file() { std::filesystem::remove(path); }
};

quic_server_config quic_any_port(const cert_file& c) {
  quic_server_config q;
  q.bind_address = "127.0.0.1:0";
  q.write_self_signed_cert_to = c.path;
  q.connection.initial_rtt = 10ms;
  return q;
}

quic_client_config quic_to(const server& s, const cert_file& c) {
  quic_client_config q;
  q.address = address_of(s);
  q.tls_ca_file = c.path;
  q.connection.initial_rtt = 10ms;
  return q;
}

}  // namespace

TEST(QuicRuntime, RequestResponseAndStats) {
  cert_file cert;
  auto s = server_builder{}
               .listen(quic_any_port(cert))
               .threads(2)
               .on_request([](request& r) { r.respond(r.payload); })
               .build();
  ASSERT_FALSE(s.start());
  EXPECT_EQ(s.local_addresses().at(0).first, "quic");
  auto c = client_builder{}.connect_to(quic_to(s, cert)).build();
  ASSERT_FALSE(c.connect());
  for (int i = 0; i < 100; ++i) {
    auto r = c.call(as_bytes("ping " + std::to_string(i)));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(as_string(r->payload), "ping " + std::to_string(i));
  }
  std::string big(1024 * 1024, 'x');
  auto r = c.call(as_bytes(big));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->payload.size(), big.size());
  EXPECT_EQ(s.stats().active_by_protocol["quic"], 1u);
  c.disconnect();
  s.stop();
}

TEST(QuicRuntime, ServerPushesRightAfterConnectAndRequestsClient) {
  cert_file cert;
  server* sp = nullptr;
  waiter w;
  std::optional<session_id> sid;
  auto s = server_builder{}
               .listen(quic_any_port(cert))
               .on_connected([&](const connection_info& i) {
                 sp->send(i.session, as_bytes("welcome"));  // before the client wrote anything
                 w.update([&] { sid = i.session; });
               })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  std::vector<std::string> got;
  auto c = client_builder{}
               .connect_to(quic_to(s, cert))
               .on_message([&](const message& m) { w.update([&] { got.emplace_back(m.text()); }); })
               .on_request([](request& r) { r.respond("client says " + std::string(r.text())); })
               .build();
  ASSERT_FALSE(c.connect());
  ASSERT_TRUE(w.wait([&] { return got.size() == 1 && sid.has_value(); }));
  EXPECT_EQ(got[0], "welcome");
  auto f = s.request(*sid, as_bytes("ping"), 5s, boost::asio::use_future);
  auto [ec, p] = f.get();
  EXPECT_FALSE(ec);
  EXPECT_EQ(as_string(p.payload), "client says ping");
  auto info = s.info(*sid);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->endpoint.protocol, "quic");
  c.disconnect();
  s.stop();
}

// quic_server_config::sockets: by default one socket per server loop, and the kernel
// steers each connection's datagrams to its own socket (and loop) by connection ID; with
// 1, every connection is served by one loop. Either way every request is answered.
std::set<std::thread::id> loops_serving(std::size_t sockets, std::size_t clients) {
  cert_file cert;
  std::mutex mu;
  std::set<std::thread::id> threads;
  auto cfg = quic_any_port(cert);
  cfg.sockets = sockets;
  auto s = server_builder{}
               .listen(cfg)
               .threads(2)
               .on_request([&](request& r) {
                 {
                   std::lock_guard lock(mu);
                   threads.insert(std::this_thread::get_id());
                 }
                 r.respond(r.payload);
               })
               .build();
  EXPECT_FALSE(s.start());
  auto rt = std::make_shared<runtime>(1);
  std::vector<client> cs;
  for (std::size_t i = 0; i < clients; ++i) {
    cs.push_back(client_builder{}.use_runtime(rt).connect_to(quic_to(s, cert)).build());
    EXPECT_FALSE(cs.back().connect());
  }
  for (int round = 0; round < 3; ++round)
    for (std::size_t i = 0; i < clients; ++i) {
      const std::string text = "client " + std::to_string(i) + " round " + std::to_string(round);
      auto r = cs[i].call(as_bytes(text));
      EXPECT_TRUE(r) << text << ": " << r.error().message();
      if (r) {
        EXPECT_EQ(as_string(r->payload), text);
      }
    }
  for (auto& c : cs) c.disconnect();
  s.stop();
  std::lock_guard lock(mu);
  return threads;
}

TEST(QuicRuntime, ConnectionsSpreadOverTheLoopsBySocket) {
  // 32 clients with random connection IDs all on one of 2 sockets: odds 2^-31.
  EXPECT_EQ(loops_serving(0, 32).size(), 2u) << "one socket per loop, connections on both";
  EXPECT_EQ(loops_serving(1, 32).size(), 1u) << "one socket: one loop";
}

TEST(QuicRuntime, StopClosesClientsWithShutdown) {
  cert_file cert;
  waiter w;
  bool accepted = false;
  auto s = server_builder{}
               .listen(quic_any_port(cert))
               .on_connected([&](const connection_info&) { w.update([&] { accepted = true; }); })
               .build();
  ASSERT_FALSE(s.start());
  std::optional<close_info> closed;
  auto c = client_builder{}
               .connect_to(quic_to(s, cert))
               .on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); })
               .build();
  ASSERT_FALSE(c.connect());
  // The client's handshake completes half a round trip before the server's.
  ASSERT_TRUE(w.wait([&] { return accepted; }));
  s.stop();
  ASSERT_TRUE(w.wait([&] { return closed.has_value(); }));
  EXPECT_EQ(closed->reason, close_reason::peer_closed);
  EXPECT_EQ(closed->transport_code, static_cast<int>(quic_app_error::shutdown));
}

TEST(QuicRuntime, StopRightAfterConnectStillTellsTheClient) {
  // The server may stop while a client's handshake is still finishing on its side: that
  // client must hear a CONNECTION_CLOSE, not wait for its idle timeout.
  cert_file cert;
  for (int i = 0; i < 5; ++i) {
    auto s = server_builder{}.listen(quic_any_port(cert)).build();
    ASSERT_FALSE(s.start());
    waiter w;
    std::optional<close_info> closed;
    auto q = quic_to(s, cert);
    q.connection.max_idle_timeout = 30s;
    auto c = client_builder{}
                 .connect_to(q)
                 .on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); })
                 .build();
    ASSERT_FALSE(c.connect());
    s.stop();
    ASSERT_TRUE(w.wait([&] { return closed.has_value(); }, 5s)) << "round " << i;
    EXPECT_EQ(closed->reason, close_reason::peer_closed);
  }
}

TEST(QuicRuntime, QuicUrl) {
  cert_file cert;
  auto s = server_builder{}.listen(quic_any_port(cert)).on_request([](request& r) { r.respond(r.payload); }).build();
  ASSERT_FALSE(s.start());
  std::string error;
  url_options o;
  o.tls_ca_file = cert.path;
  auto conn = connector_for_url("quic://" + address_of(s), o, error);
  ASSERT_TRUE(conn) << error;
  EXPECT_EQ(conn->target(), "quic://" + address_of(s));
  auto c = client_builder{}.connect_to(std::move(conn)).build();
  ASSERT_FALSE(c.connect());
  auto r = c.call(as_bytes("via url"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_string(r->payload), "via url");
  EXPECT_FALSE(connector_for_url("quic://host:1/path", o, error));
  // Verification is on by default: no CA, no connection.
  auto unverified = client_builder{}.connect_to(connector_for_url("quic://" + address_of(s), {}, error)).build();
  EXPECT_EQ(unverified.connect(), errc::tls_error);
  c.disconnect();
  s.stop();
}

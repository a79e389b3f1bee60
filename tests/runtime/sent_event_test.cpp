// The sent event over real sockets: exactly one on_sent per packet, on TCP, WebSocket and
// QUIC (where it waits for the peer's acknowledgement), server and client, and the
// sent_event in the event stream.
#include "support/test_support.hpp"

#include <msgtrans/quic.hpp>
#include <msgtrans/ws.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <unistd.h>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

struct cert_file {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("msgtrans-sent-" + std::to_string(::getpid()) + ".pem"))
                         .string();
  ~cert_file() { std::filesystem::remove(path); }
};

// message_id -> times reported
struct sent_log {
  waiter w;
  std::map<std::uint32_t, int> ids;
  int total = 0;
  void add(std::uint32_t id) {
    w.update([&] {
      ++ids[id];
      ++total;
    });
  }
  bool wait_total(int n) {
    return w.wait([&] { return total >= n; });
  }
};

enum class proto { tcp, ws, quic };

server make_server(proto p, const cert_file& cert, sent_log& log) {
  server_builder b;
  if (p == proto::tcp) b.listen(tcp_server_config{"127.0.0.1:0"});
  if (p == proto::ws) b.listen(ws_server_config{});
  if (p == proto::quic) {
    quic_server_config q;
    q.bind_address = "127.0.0.1:0";
    q.write_self_signed_cert_to = cert.path;
    q.connection.initial_rtt = 10ms;
    b.listen(q);
  }
  return b.threads(2)
      .on_request([](request& r) { (void)r.respond(r.payload); })
      .on_message([](const message&) {})
      .on_sent([&log](session_id, std::uint32_t id) { log.add(id); })
      .build();
}

client make_client(proto p, const server& s, const cert_file& cert, sent_log& log) {
  client_builder b;
  if (p == proto::tcp) b.connect_to(tcp_client_config{address_of(s)});
  if (p == proto::ws) {
    ws_client_config c;
    c.url = "ws://" + address_of(s);
    b.connect_to(c);
  }
  if (p == proto::quic) {
    quic_client_config q;
    q.address = address_of(s);
    q.tls_ca_file = cert.path;
    q.connection.initial_rtt = 10ms;
    b.connect_to(q);
  }
  return b.on_sent([&log](session_id, std::uint32_t id) { log.add(id); }).build();
}

class SentEvent : public ::testing::TestWithParam<proto> {};

}  // namespace

TEST_P(SentEvent, ExactlyOnePerPacketOnServerAndClient) {
  cert_file cert;
  sent_log server_sent, client_sent;
  auto s = make_server(GetParam(), cert, server_sent);
  ASSERT_FALSE(s.start());
  auto c = make_client(GetParam(), s, cert, client_sent);
  ASSERT_FALSE(c.connect());
  constexpr int n = 50;
  std::set<std::uint32_t> request_ids;
  for (int i = 0; i < n; ++i) {
    ASSERT_FALSE(c.send(as_bytes("one-way " + std::to_string(i))));
    auto r = c.call(as_bytes("request " + std::to_string(i)));
    ASSERT_TRUE(r) << r.error().message();
    request_ids.insert(r->message_id);
  }
  // Server push: one send and one broadcast to the only session.
  const auto sid = s.sessions().at(0);
  ASSERT_FALSE(s.send(sid, as_bytes("push")));
  EXPECT_EQ(s.broadcast(as_bytes("to all")), 1u);

  ASSERT_TRUE(client_sent.wait_total(2 * n)) << client_sent.total;
  ASSERT_TRUE(server_sent.wait_total(n + 2)) << server_sent.total;
  c.disconnect();
  ASSERT_FALSE(s.stop());
  // Every client packet once: 2n distinct ids, each reported once.
  EXPECT_EQ(client_sent.total, 2 * n);
  EXPECT_EQ(client_sent.ids.size(), static_cast<std::size_t>(2 * n));
  for (auto& [id, times] : client_sent.ids) EXPECT_EQ(times, 1) << id;
  // Every response once, under its request's id; and the two pushes.
  EXPECT_EQ(server_sent.total, n + 2);
  for (auto id : request_ids) EXPECT_GE(server_sent.ids[id], 1) << id;
  EXPECT_EQ(s.stats().packets_out, static_cast<std::uint64_t>(n + 2));
}

INSTANTIATE_TEST_SUITE_P(Transports, SentEvent, ::testing::Values(proto::tcp, proto::ws, proto::quic),
                         [](const auto& info) {
                           return std::string(info.param == proto::tcp  ? "tcp"
                                              : info.param == proto::ws ? "ws"
                                                                        : "quic");
                         });

TEST(SentEventStream, SentEventsInTheStreamOnlyWhenAsked) {
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .threads(1)
               .on_request([](request& r) { (void)r.respond(r.payload); })
               .build();
  ASSERT_FALSE(s.start());
  auto c = client_builder{}.connect_to(tcp_client_config{address_of(s)}).events(64).sent_events().build();
  ASSERT_FALSE(c.connect());
  auto r = c.call(as_bytes("x"));
  ASSERT_TRUE(r);
  std::optional<sent_event> sent;
  for (int i = 0; i < 10 && !sent; ++i) {
    auto e = c.events().wait_for(5s);
    ASSERT_TRUE(e);
    if (auto* se = std::get_if<sent_event>(&*e)) sent = *se;
  }
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->message_id, r->message_id);

  // Without sent_events() the stream carries none.
  auto c2 = client_builder{}.connect_to(tcp_client_config{address_of(s)}).events(64).build();
  ASSERT_FALSE(c2.connect());
  ASSERT_TRUE(c2.call(as_bytes("y")));
  c2.disconnect();
  while (auto e = c2.events().try_next()) EXPECT_FALSE(std::holds_alternative<sent_event>(*e));
}

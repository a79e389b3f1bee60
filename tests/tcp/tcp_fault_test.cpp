// Fault injection over real sockets: resets in the middle of a message, a request and a
// response; slowloris; load during stop; loss of the connection with requests pending.
#include "support/test_support.hpp"

#include <boost/asio/use_future.hpp>

#include <thread>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

void reset(raw_peer& p) {
  linger l{1, 0};  // close with RST
  ::setsockopt(p.socket().native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  p.socket().close();
}

struct echo_fixture {
  waiter w;
  std::vector<close_info> closes;
  std::atomic<int> requests{0};
  server s = server_builder{}
                 .listen(tcp_server_config{"127.0.0.1:0"})
                 .on_request([this](request& r) {
                   ++requests;
                   r.respond(r.payload);
                 })
                 .on_closed([this](session_id, const close_info& i) { w.update([&] { closes.push_back(i); }); })
                 .build();
  echo_fixture() { EXPECT_FALSE(s.start()); }
  void others_still_work() {
    client c = client_builder{}.connect_to(tcp_client_config{address_of(s)}).build();
    ASSERT_FALSE(c.connect());
    auto r = c.call(as_bytes("ok?"));
    ASSERT_TRUE(r);
    EXPECT_EQ(as_string(r->payload), "ok?");
  }
};

}  // namespace

TEST(TcpFault, ResetInTheMiddleOfAMessage) {
  echo_fixture f;
  raw_peer p(address_of(f.s));
  auto b = encode_packet(packet_type::request, 1, std::string(10000, 'm'));
  p.write(bytes_view(b).first(5000));
  reset(p);
  ASSERT_TRUE(f.w.wait([&] { return !f.closes.empty(); }));
  EXPECT_EQ(f.closes[0].reason, close_reason::peer_closed);
  EXPECT_EQ(f.requests.load(), 0);  // half a request is no request
  f.others_still_work();
}

TEST(TcpFault, ResetWhileTheServerAnswers) {
  echo_fixture f;
  raw_peer p(address_of(f.s));
  // Many requests with large answers, then a reset while the answers are being written.
  auto b = encode_packet(packet_type::request, 1, std::string(256 * 1024, 'r'));
  for (int i = 0; i < 8; ++i) p.write(b);
  reset(p);
  ASSERT_TRUE(f.w.wait([&] { return !f.closes.empty(); }));
  EXPECT_EQ(f.closes[0].reason, close_reason::peer_closed);
  f.others_still_work();
}

TEST(TcpFault, ClientLosesConnectionWithRequestsPending) {
  // A server that never answers and then dies: every pending request fails at once.
  echo_fixture unused;
  std::promise<void> got_all;
  std::atomic<int> n{0};
  auto s = std::make_unique<server>(server_builder{}
                                        .listen(tcp_server_config{"127.0.0.1:0"})
                                        .on_request([&](request&) {
                                          if (++n == 10) got_all.set_value();
                                        })
                                        .build());
  ASSERT_FALSE(s->start());
  client c = client_builder{}.connect_to(tcp_client_config{address_of(*s)}).build();
  ASSERT_FALSE(c.connect());
  std::vector<std::future<std::tuple<std::error_code, packet>>> pending;
  for (int i = 0; i < 10; ++i) pending.push_back(c.request(as_bytes("x"), 30s, boost::asio::use_future));
  got_all.get_future().wait();
  auto t0 = std::chrono::steady_clock::now();
  s->stop(std::chrono::milliseconds(0));  // unanswered requests are not waited for
  for (auto& f : pending) EXPECT_EQ(std::get<0>(f.get()), errc::connection_closed);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_FALSE(c.is_connected());
}

TEST(TcpFault, SlowlorisIsClosedAtTheIdleDeadline) {
  session_options o;
  o.idle_timeout = 500ms;
  waiter w;
  std::optional<close_info> closed;
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .options(o)
               .on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); })
               .build();
  ASSERT_FALSE(s.start());
  raw_peer p(address_of(s));
  p.write(encode_packet(packet_type::one_way, 1, "hello"));  // one whole packet
  auto trickle = encode_packet(packet_type::one_way, 2, std::string(100, 't'));
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t i = 0;
  // One byte every 50 ms: bytes arrive, but no packet completes, so the idle timer runs.
  while (!w.wait([&] { return closed.has_value(); }, 50ms) && i < trickle.size()) {
    boost::system::error_code ec;
    boost::asio::write(p.socket(), boost::asio::buffer(&trickle[i++], 1), ec);
    if (ec) break;
  }
  ASSERT_TRUE(w.wait([&] { return closed.has_value(); }, 2s));
  EXPECT_EQ(closed->reason, close_reason::idle_timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
}

TEST(TcpFault, StopUnderLoadLosesNothingAccepted) {
  waiter w;
  std::vector<session_id> ids;
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .threads(2)
               .on_connected([&](const connection_info& i) { w.update([&] { ids.push_back(i.session); }); })
               .on_request([](request& r) { r.respond(r.payload); })
               .build();
  ASSERT_FALSE(s.start());
  constexpr int clients = 8;
  std::vector<client> cs;
  std::array<std::atomic<int>, clients> received{};
  auto rt = std::make_shared<runtime>(1);
  for (int i = 0; i < clients; ++i) {
    cs.push_back(client_builder{}
                     .connect_to(tcp_client_config{address_of(s)})
                     .use_runtime(rt)
                     .on_message([&, i](const message&) { w.update([&] { ++received[i]; }); })
                     .build());
    ASSERT_FALSE(cs.back().connect());
  }
  ASSERT_TRUE(w.wait([&] { return ids.size() == clients; }));
  // Load: clients hammer requests while the server pushes messages; then stop.
  std::atomic<bool> go{true};
  std::atomic<int> answered{0};
  std::vector<std::thread> load;
  for (int i = 0; i < clients; ++i)
    load.emplace_back([&, i] {
      while (go) {
        auto r = cs[i].call(as_bytes("load"), 5s);
        if (!r) break;
        w.update([&] { ++answered; });
      }
    });
  // The load is on before the stop (else "answered > 0" below races the stop).
  EXPECT_TRUE(w.wait([&] { return answered.load() > 0; }));
  std::map<std::uint64_t, int> accepted;
  std::vector<session_id> snapshot;
  {
    std::lock_guard lock(w.mutex());
    snapshot = ids;
  }
  for (int round = 0; round < 200; ++round)
    for (auto id : snapshot)
      if (!s.send(id, as_bytes(std::string(512, 'p')))) ++accepted[id.value];
  s.stop(5s);
  go = false;
  for (auto& t : load) t.join();
  // Every message send() accepted before stop reached its (reading) client.
  int total_accepted = 0, total_received = 0;
  for (auto& [id, n] : accepted) total_accepted += n;
  auto all_in = [&] {
    total_received = 0;
    for (auto& r : received) total_received += r.load();
    return total_received >= total_accepted;
  };
  w.wait(all_in, 5s);
  EXPECT_EQ(total_received, total_accepted);
  EXPECT_GT(total_accepted, 0);
  EXPECT_GT(answered.load(), 0);
}

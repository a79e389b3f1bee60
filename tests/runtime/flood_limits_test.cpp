// The limits against floods over real sockets (docs/security.md): connections per
// address (server-wide and per listener), handshakes per second per address, and the
// per-connection message and byte rates (close with rate_limited, or pause reading and
// lose nothing), on TCP, and on the same code paths over WebSocket and QUIC. Peers from
// 127.0.0.2 are other addresses: Linux routes all of 127.0.0.0/8 to lo.
#include "support/test_support.hpp"

#include <msgtrans/quic.hpp>
#include <msgtrans/ws.hpp>

#include <arpa/inet.h>
#include <filesystem>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

using steady = std::chrono::steady_clock;

// Enough descriptors for 500 peers and the server's side of them.
void raise_fd_limit(rlim_t want) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur >= want) return;
  r.rlim_cur = std::min(want, r.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &r);
}

std::uint16_t port_of(const std::string& host_port) {
  return static_cast<std::uint16_t>(std::stoi(host_port.substr(host_port.rfind(':') + 1)));
}

// A blocking TCP peer from a chosen source address, speaking the wire format.
class peer {
 public:
  peer(const char* source, std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &src.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) ADD_FAILURE() << "bind " << source;
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) ADD_FAILURE() << "connect from " << source;
  }
  peer(const peer&) = delete;
  ~peer() {
    if (fd_ >= 0) ::close(fd_);
  }
  void close() {
    ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }
  bool write(const byte_buffer& b) {
    std::size_t at = 0;
    while (at < b.size()) {
      auto n = ::send(fd_, b.data() + at, b.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  }
  /// A request, and its echo back within the timeout.
  bool request(std::uint32_t id, std::chrono::milliseconds timeout = 5s) {
    const std::string body = "ping " + std::to_string(id);
    if (!write(encode_packet(packet_type::request, id, body))) return false;
    byte_buffer got;
    const auto deadline = steady::now() + timeout;
    while (true) {
      if (got.size() >= header_size) {
        auto h = decode_header(got);
        if (h && got.size() >= h->total_size()) {
          auto p = decode(got);
          return p && p->type == packet_type::response && p->message_id == id && as_string(p->payload) == body;
        }
      }
      if (!readable(deadline)) return false;
      std::byte buf[4096];
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      got.insert(got.end(), buf, buf + n);
    }
  }
  /// True once the server closed it (EOF or reset) before the deadline.
  bool closed_by(steady::time_point deadline) {
    while (readable(deadline)) {
      std::byte buf[4096];
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
    return false;
  }
  /// Closed already, without waiting.
  bool closed_now() { return closed_by(steady::now()); }

 private:
  bool readable(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0))) > 0;
  }
  int fd_ = -1;
};

struct close_log {
  waiter w;
  std::vector<close_info> closes;
  void add(const close_info& i) {
    w.update([&] { closes.push_back(i); });
  }
  std::optional<close_info> wait_one(std::chrono::milliseconds t = 10s) {
    if (!w.wait([&] { return !closes.empty(); }, t)) return std::nullopt;
    std::lock_guard lock(w.mutex());
    return closes.front();
  }
};

server_builder echo_server(close_log& log) {
  server_builder b;
  b.threads(2)
      .on_request([](request& r) { (void)r.respond(r.payload); })
      .on_message([](const message&) {})
      .on_closed([&log](session_id, const close_info& i) { log.add(i); });
  return b;
}

// Polls the server's counters (refusals have no event) until `pred` holds or 10 s pass.
template <class P>
bool stats_reach(const server& s, P pred) {
  const auto deadline = steady::now() + 10s;
  while (!pred(s.stats())) {
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Of `peers` (connected just now), the ones the server closed, waiting up to `within`.
std::vector<std::size_t> closed_peers(std::vector<std::unique_ptr<peer>>& peers, std::size_t expect,
                                      std::chrono::milliseconds within) {
  std::vector<std::size_t> closed;
  std::vector<bool> done(peers.size(), false);
  const auto deadline = steady::now() + within;
  while (closed.size() < expect && steady::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < peers.size(); ++i)
      if (!done[i]) {
        fds.push_back(pollfd{peers[i]->fd(), POLLIN, 0});
        which.push_back(i);
      }
    if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
    for (std::size_t j = 0; j < fds.size(); ++j)
      if (fds[j].revents && peers[which[j]]->closed_now()) {
        done[which[j]] = true;
        closed.push_back(which[j]);
      }
  }
  return closed;
}

}  // namespace

TEST(FloodLimits, FiveHundredFromOneAddressHundredStayTheRestRefusedAtOnce) {
  raise_fd_limit(4096);
  close_log log;
  auto s = echo_server(log).listen(tcp_server_config{"127.0.0.1:0"}).max_connections_per_ip(100).build();
  ASSERT_FALSE(s.start());
  const auto port = port_of(address_of(s));

  std::vector<std::unique_ptr<peer>> peers;
  for (int i = 0; i < 500; ++i) peers.push_back(std::make_unique<peer>("127.0.0.1", port));
  const auto connected = steady::now();
  // Refused ones are closed by the server at once: all 400 within 3 s of the burst (the
  // server never waits on anything for them).
  auto closed = closed_peers(peers, 400, 3s);
  EXPECT_EQ(closed.size(), 400u);
  std::cout << "400 refusals observed closed by the client in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - connected).count() << " ms\n";
  ASSERT_TRUE(stats_reach(s, [](const server_stats& st) { return st.refused.at("per_ip") == 400; }));
  EXPECT_EQ(s.stats().active, 100u);

  // The 100 that stayed work.
  std::vector<bool> is_closed(peers.size(), false);
  for (auto i : closed) is_closed[i] = true;
  std::size_t served = 0;
  for (std::size_t i = 0; i < peers.size(); ++i)
    if (!is_closed[i] && peers[i]->request(static_cast<std::uint32_t>(i + 1))) ++served;
  EXPECT_EQ(served, 100u);

  // Another address is served normally meanwhile.
  std::vector<std::unique_ptr<peer>> others;
  for (int i = 0; i < 20; ++i) {
    others.push_back(std::make_unique<peer>("127.0.0.2", port));
    EXPECT_TRUE(others.back()->request(7)) << i;
  }
  EXPECT_EQ(s.stats().refused.at("per_ip"), 400u);

  // One of the hundred leaves: its place is free again for that address.
  for (std::size_t i = 0; i < peers.size(); ++i)
    if (!is_closed[i]) {
      peers[i]->close();
      break;
    }
  ASSERT_TRUE(stats_reach(s, [](const server_stats& st) { return st.active == 119; }));
  peer again("127.0.0.1", port);
  EXPECT_TRUE(again.request(9));
  peer over("127.0.0.1", port);
  EXPECT_TRUE(over.closed_by(steady::now() + 3s));
  EXPECT_EQ(s.stats().notices.at("peer_limit"), 401u);  // every refusal counted
}

TEST(FloodLimits, PerListenerLimitLeavesOtherListenersAlone) {
  close_log log;
  tcp_server_config limited{"127.0.0.1:0"};
  limited.max_connections_per_ip = 3;
  auto s = echo_server(log).listen(limited).listen(tcp_server_config{"127.0.0.1:0"}).build();
  ASSERT_FALSE(s.start());
  std::vector<std::unique_ptr<peer>> a, b;
  for (int i = 0; i < 5; ++i) a.push_back(std::make_unique<peer>("127.0.0.1", port_of(address_of(s, 0))));
  auto closed = closed_peers(a, 2, 3s);
  EXPECT_EQ(closed.size(), 2u);
  for (int i = 0; i < 5; ++i) {
    b.push_back(std::make_unique<peer>("127.0.0.1", port_of(address_of(s, 1))));
    EXPECT_TRUE(b.back()->request(1)) << i;
  }
  EXPECT_TRUE(stats_reach(s, [](const server_stats& st) { return st.refused.at("per_ip") == 2; }));
}

TEST(FloodLimits, HandshakeRateRefusesTheBurstPastN) {
  raise_fd_limit(4096);
  close_log log;
  constexpr int rate = 20, extra = 10;
  auto s = echo_server(log).listen(tcp_server_config{"127.0.0.1:0"}).max_handshakes_per_second_per_ip(rate).build();
  ASSERT_FALSE(s.start());
  const auto port = port_of(address_of(s));
  std::vector<std::unique_ptr<peer>> peers;
  const auto t0 = steady::now();
  for (int i = 0; i < rate + extra; ++i) peers.push_back(std::make_unique<peer>("127.0.0.1", port));
  const double burst_s = std::chrono::duration<double>(steady::now() - t0).count();
  // The bucket refills rate/s while the burst lasts (and while the server accepts the
  // last of it, up to 100 ms later on a loaded machine): that many more may pass.
  const auto refill = static_cast<std::size_t>((burst_s + 0.1) * rate) + 1;
  auto closed = closed_peers(peers, extra, 2s);
  EXPECT_LE(closed.size(), static_cast<std::size_t>(extra));
  EXPECT_GE(closed.size() + refill, static_cast<std::size_t>(extra)) << "burst took " << burst_s << " s";
  EXPECT_TRUE(stats_reach(s, [&](const server_stats& st) { return st.refused.at("handshake_rate") == closed.size(); }));
  // Those admitted are served; another address is not limited by this one's bucket.
  std::vector<bool> is_closed(peers.size(), false);
  for (auto i : closed) is_closed[i] = true;
  for (std::size_t i = 0; i < peers.size(); ++i)
    if (!is_closed[i]) {
      EXPECT_TRUE(peers[i]->request(3)) << i;
    }
  peer other("127.0.0.2", port);
  EXPECT_TRUE(other.request(4));
}

TEST(FloodLimits, OverTheMessageRateIsClosedWithRateLimited) {
  close_log log;
  session_options o;
  o.max_messages_per_second = 50;  // a burst of 50 (rate_burst 1 s)
  auto s = echo_server(log).listen(tcp_server_config{"127.0.0.1:0"}).options(o).build();
  ASSERT_FALSE(s.start());
  peer p("127.0.0.1", port_of(address_of(s)));
  for (std::uint32_t i = 1; i <= 40; ++i) ASSERT_TRUE(p.request(i)) << i;  // under the limit: served
  byte_buffer flood;
  for (std::uint32_t i = 100; i < 200; ++i) {
    auto one = encode_packet(packet_type::one_way, i, "x");
    flood.insert(flood.end(), one.begin(), one.end());
  }
  p.write(flood);
  EXPECT_TRUE(p.closed_by(steady::now() + 5s));
  auto c = log.wait_one();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->reason, close_reason::rate_limited);
  EXPECT_STREQ(to_string(c->reason), "rate_limited");
  EXPECT_NE(c->detail.find("max_messages_per_second (50)"), std::string::npos) << c->detail;
  EXPECT_EQ(s.stats().rate_limited_closes, 1u);
  // Another connection from the same address has its own bucket.
  peer q("127.0.0.1", port_of(address_of(s)));
  EXPECT_TRUE(q.request(1));
}

TEST(FloodLimits, OverTheByteRateIsClosedAndOneLargePacketFitsAFullBucket) {
  close_log log;
  session_options o;
  o.max_bytes_per_second = 10'000;
  auto s = echo_server(log).listen(tcp_server_config{"127.0.0.1:0"}).options(o).build();
  ASSERT_FALSE(s.start());
  peer p("127.0.0.1", port_of(address_of(s)));
  // 20 KB, twice the burst: passes a full bucket, and is then owed for 2 s.
  ASSERT_TRUE(p.write(encode_packet(packet_type::one_way, 1, std::string(20'000, 'a'))));
  ASSERT_TRUE(p.write(encode_packet(packet_type::one_way, 2, "b")));
  EXPECT_TRUE(p.closed_by(steady::now() + 5s));
  auto c = log.wait_one();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->reason, close_reason::rate_limited);
  EXPECT_NE(c->detail.find("max_bytes_per_second (10000)"), std::string::npos) << c->detail;
}

TEST(FloodLimits, PauseModeSlowsTheSenderAndLosesNothing) {
  close_log log;
  session_options o;
  constexpr int rate = 1000, n = 600, burst = 50;
  o.max_messages_per_second = rate;
  o.rate_burst = 50ms;  // 50 packets
  o.rate_limit = rate_limit_action::pause;
  waiter w;
  std::vector<std::uint32_t> got;
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .threads(2)
               .options(o)
               .on_message([&](const message& m) { w.update([&] { got.push_back(m.header.message_id); }); })
               .on_request([](request& r) { (void)r.respond(r.payload); })
               .on_closed([&log](session_id, const close_info& i) { log.add(i); })
               .build();
  ASSERT_FALSE(s.start());
  peer p("127.0.0.1", port_of(address_of(s)));
  byte_buffer all;  // 600 KB: many reads, so pausing between them shows
  for (std::uint32_t i = 1; i <= n; ++i) {
    auto one = encode_packet(packet_type::one_way, i, std::string(1000, 'p'));
    all.insert(all.end(), one.begin(), one.end());
  }
  const auto t0 = steady::now();
  std::thread writer([&] { EXPECT_TRUE(p.write(all)); });
  EXPECT_TRUE(w.wait([&] { return got.size() == n; }, 30s));
  const double took = std::chrono::duration<double>(steady::now() - t0).count();
  writer.join();
  {
    std::lock_guard lock(w.mutex());
    for (std::uint32_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], i + 1);  // all, in order
  }
  // At most the burst plus one read's worth (64 KiB: 64 packets) ahead of the rate.
  EXPECT_GE(took, double(n - burst - 64) / rate) << took;
  EXPECT_GE(s.stats().rate_limited_pauses, 1u);
  EXPECT_EQ(s.stats().rate_limited_closes, 0u);
  // Still open, and reading again.
  EXPECT_TRUE(p.request(1000));
  std::lock_guard lock(log.w.mutex());
  EXPECT_TRUE(log.closes.empty());
  std::cout << n << " packets at " << rate << "/s (burst " << burst << ") took " << took << " s\n";
}

// ---- the same code paths over WebSocket and QUIC ----

TEST(FloodLimits, WebSocketPerAddressLimitAndRateLimitedCloseWith1008) {
  close_log log;
  ws_server_config wc;
  wc.max_connections_per_ip = 2;
  session_options o;
  o.max_messages_per_second = 20;
  auto s = echo_server(log).listen(wc).options(o).build();
  ASSERT_FALSE(s.start());
  ws_client_config cc;
  cc.url = "ws://" + address_of(s);
  auto make = [&](close_log& cl) {
    return client_builder{}.connect_to(cc).on_closed([&cl](session_id, const close_info& i) { cl.add(i); }).build();
  };
  close_log l1, l2, l3;
  auto c1 = make(l1), c2 = make(l2), c3 = make(l3);
  ASSERT_FALSE(c1.connect());
  ASSERT_FALSE(c2.connect());
  // A client's connect returns on the 101, a moment before the server counts that
  // session (on its loop): wait for both, or c3 could be counted before c2 and c2 refused.
  ASSERT_TRUE(stats_reach(s, [&](const server_stats&) { return s.sessions().size() == 2; }));
  // The upgrade may complete; the session is refused right after it.
  const bool refused = c3.connect() || l3.wait_one(5s);
  ASSERT_TRUE(refused) << "the third connection from one address was not closed";
  EXPECT_TRUE(stats_reach(s, [](const server_stats& st) { return st.refused.at("per_ip") == 1; }));
  auto r = c1.call(as_bytes("hi"));
  ASSERT_TRUE(r) << r.error().message();

  for (int i = 0; i < 100; ++i) (void)c2.send("flood");
  auto closed = l2.wait_one();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->transport_code, 1008);  // policy violation, as limit_reached
  auto sc = log.wait_one();
  ASSERT_TRUE(sc);
  EXPECT_EQ(sc->reason, close_reason::rate_limited);
  auto r1 = c1.call(as_bytes("still here"));
  EXPECT_TRUE(r1) << r1.error().message();
}

TEST(FloodLimits, QuicHandshakeRateRefusesAndRateLimitedClosesWithCode6) {
  const std::string cert = (std::filesystem::temp_directory_path() /
                            ("msgtrans-flood-" + std::to_string(::getpid()) + ".pem")).string();
  close_log log;
  quic_server_config q;
  q.bind_address = "127.0.0.1:0";
  q.write_self_signed_cert_to = cert;
  q.connection.initial_rtt = 10ms;
  session_options o;
  o.max_messages_per_second = 20;
  auto s = echo_server(log).listen(q).options(o).max_handshakes_per_second_per_ip(3).build();
  ASSERT_FALSE(s.start());
  quic_client_config qc;
  qc.address = address_of(s);
  qc.tls_ca_file = cert;
  qc.connection.initial_rtt = 10ms;
  std::vector<close_log> logs(5);  // before the clients: they report to these until destroyed
  std::vector<client> clients;
  for (int i = 0; i < 5; ++i)
    clients.push_back(client_builder{}
                          .connect_to(qc)
                          .connect_timeout(3s)
                          .on_closed([&cl = logs[i]](session_id, const close_info& c) { cl.add(c); })
                          .build());
  // All five at once: their Initials arrive far quicker than the 1/3 s the bucket needs
  // for one more.
  std::vector<int> failed(5, 0);
  {
    std::vector<std::thread> t;
    for (int i = 0; i < 5; ++i) t.emplace_back([&, i] { failed[i] = clients[i].connect() ? 1 : 0; });
    for (auto& x : t) x.join();
  }
  int refused = 0;
  for (int f : failed) refused += f;
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(s.stats().refused.at("handshake_rate"), 2u);
  std::vector<int> up;
  for (int i = 0; i < 5; ++i)
    if (!failed[i]) up.push_back(i);
  ASSERT_GE(up.size(), 2u);

  for (int i = 0; i < 100; ++i) (void)clients[up[0]].send("flood");
  auto c = logs[up[0]].wait_one();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->transport_code, static_cast<int>(quic_app_error::rate_limited));
  auto sc = log.wait_one();
  ASSERT_TRUE(sc);
  EXPECT_EQ(sc->reason, close_reason::rate_limited);
  auto r = clients[up[1]].call(as_bytes("fine"));
  EXPECT_TRUE(r) << r.error().message();
  std::filesystem::remove(cert);
}

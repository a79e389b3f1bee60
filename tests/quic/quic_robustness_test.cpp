// QUIC transport under load and abuse: 500 connections, a lossy path, hostile
// datagrams, and an independent HTTP/3 peer (Debian's gtlsclient) that must be refused.
#include "quic_test_util.hpp"

#include "quic/endpoint.hpp"
#include "support/test_support.hpp"

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdio>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <ostream>
#include <random>
#include <sys/wait.h>
#include <thread>

namespace msgtrans::test {
namespace {
namespace asio = boost::asio;
using udp = asio::ip::udp;

struct quic_robustness : ::testing::Test {
  asio::io_context ioc;
  temp_path cert{"msgtrans-quic-robust-cert.pem"};
};

// Echo through `owner` and check it came back whole.
void expect_echo(asio::io_context& ioc, test_owner& c, std::uint32_t id, std::size_t size = 100) {
  const auto before = c.received.size();
  c.send(make_packet(id, size));
  ASSERT_TRUE(run_until(ioc, [&] { return c.received.size() == before + 1; }));
  EXPECT_EQ(c.received.back(), make_packet(id, size));
}

TEST_F(quic_robustness, five_hundred_concurrent_connections) {
  test_server srv(ioc, server_config(cert.path));
  constexpr std::size_t n = 500;
  auto connector = make_connector(client_config(srv.address(), cert.path));
  std::vector<std::unique_ptr<test_owner>> clients(n);
  std::size_t connected = 0, failed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    connector->connect(ioc, 20s, {}, [&, i](msgtrans::error_info ec, std::unique_ptr<connection> c) {
      if (ec) {
        ++failed;
        return;
      }
      ++connected;
      clients[i] = std::make_unique<test_owner>();
      clients[i]->attach(std::move(c));
      clients[i]->send(make_packet(static_cast<std::uint32_t>(i + 1), 64 + i));
    });
  }
  ASSERT_TRUE(run_until(ioc, [&] { return connected + failed == n; }, 60s));
  EXPECT_EQ(failed, 0u);
  ASSERT_TRUE(run_until(
      ioc,
      [&] {
        for (auto& c : clients)
          if (!c || c->received.empty()) return false;
        return true;
      },
      60s));
  EXPECT_EQ(srv.owners.size(), n);
  for (std::size_t i = 0; i < n; ++i)
    EXPECT_EQ(clients[i]->received[0], make_packet(static_cast<std::uint32_t>(i + 1), 64 + i));
  for (auto& c : clients) c->conn->close({});
  ASSERT_TRUE(run_until(ioc, [&] {
    for (auto& o : srv.owners)
      if (!o->closed) return false;
    return true;
  }));
}

// What a lossy path does to each datagram, drawn independently per datagram: dropped,
// sent twice, or held back a few milliseconds so that later datagrams overtake it.
struct path_faults {
  double drop = 0, duplicate = 0, reorder = 0;
  std::chrono::milliseconds max_delay{4};
};
void PrintTo(const path_faults& f, std::ostream* os) {
  *os << "drop " << f.drop << ", duplicate " << f.duplicate << ", delay " << f.reorder << " (up to "
      << f.max_delay.count() << " ms)";
}

// A UDP relay between one client and the server with `path_faults` on both directions,
// from a seeded generator (the same sequence of decisions every run; which datagram meets
// which decision depends on timing).
class lossy_relay {
 public:
  lossy_relay(asio::io_context& ioc, udp::endpoint server, path_faults f, unsigned seed)
      : ioc_(ioc),
        front_(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        back_(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        server_(server),
        f_(f),
        rng_(seed) {
    pump(front_, true);
    pump(back_, false);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(front_.local_endpoint().port()); }
  // A NAT rebinding: from now on the server sees the client's datagrams come from another
  // port (a new socket; the old one is closed, so replies still on their way are lost).
  void rebind() {
    back_.close();
    back_ = udp::socket(ioc_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    pump(back_, false);
    ++rebinds;
  }
  std::uint16_t server_facing_port() const { return back_.local_endpoint().port(); }
  std::size_t rebinds = 0;
  // received: datagrams in; delayed: held back; overtaken: datagrams sent while an earlier
  // one was held back (reordering that happened); forwarded: datagrams out.
  std::size_t received = 0, dropped = 0, duplicated = 0, delayed = 0, overtaken = 0, forwarded = 0;

 private:
  void pump(udp::socket& s, bool from_client) {
    s.async_receive_from(asio::buffer(buf(from_client)), from(from_client),
                         [this, &s, from_client](boost::system::error_code ec, std::size_t n) {
                           if (ec) return;
                           if (from_client) client_ = client_from_;
                           forward(std::vector<char>(buf(from_client).begin(), buf(from_client).begin() + n),
                                   from_client);
                           pump(s, from_client);
                         });
  }
  std::array<char, 65536>& buf(bool c) { return c ? cbuf_ : sbuf_; }
  udp::endpoint& from(bool c) { return c ? client_from_ : server_from_; }
  void send(const std::vector<char>& d, bool to_server) {
    boost::system::error_code ec;
    if (to_server)
      back_.send_to(asio::buffer(d), server_, 0, ec);
    else
      front_.send_to(asio::buffer(d), client_, 0, ec);
    ++forwarded;
    if (held_ > 0) ++overtaken;
  }
  void forward(std::vector<char> d, bool to_server) {
    ++received;
    const double r = std::uniform_real_distribution<double>(0, 1)(rng_);
    if (r < f_.drop) {
      ++dropped;
    } else if (r < f_.drop + f_.duplicate) {
      ++duplicated;
      send(d, to_server);
      send(d, to_server);
    } else if (r < f_.drop + f_.duplicate + f_.reorder) {
      ++delayed;
      const auto delay = std::chrono::microseconds(
          std::uniform_int_distribution<long>(200, std::chrono::microseconds(f_.max_delay).count())(rng_));
      auto t = timers_.emplace(timers_.end(), ioc_, delay);
      ++held_;
      t->async_wait([this, t, d = std::move(d), to_server](boost::system::error_code ec) {
        if (ec) return;  // the relay is gone
        --held_;
        send(d, to_server);
        timers_.erase(t);
      });
    } else {
      send(d, to_server);
    }
  }

  asio::io_context& ioc_;
  udp::socket front_, back_;
  udp::endpoint server_, client_, client_from_, server_from_;
  std::array<char, 65536> cbuf_{}, sbuf_{};
  path_faults f_;
  std::mt19937 rng_;
  std::list<asio::steady_timer> timers_;
  std::size_t held_ = 0;
};

udp::endpoint parse(const std::string& a) {
  auto colon = a.rfind(':');
  return {asio::ip::make_address(a.substr(0, colon)), static_cast<unsigned short>(std::stoi(a.substr(colon + 1)))};
}

std::string describe(const lossy_relay& r) {
  return std::to_string(r.received) + " datagrams in, " + std::to_string(r.dropped) + " dropped, " +
         std::to_string(r.duplicated) + " duplicated, " + std::to_string(r.delayed) + " delayed (" +
         std::to_string(r.overtaken) + " overtook them), " + std::to_string(r.forwarded) + " out";
}

// The relay did what it was asked: each fault at about its rate (the generator is seeded,
// and over a few thousand datagrams the rates land within a few points of the target).
void expect_faults(const lossy_relay& r, const path_faults& f) {
  ASSERT_GE(r.received, 1000u) << describe(r);
  const double n = static_cast<double>(r.received);
  EXPECT_NEAR(static_cast<double>(r.dropped) / n, f.drop, 0.02) << describe(r);
  EXPECT_NEAR(static_cast<double>(r.duplicated) / n, f.duplicate, 0.02) << describe(r);
  EXPECT_NEAR(static_cast<double>(r.delayed) / n, f.reorder, 0.02) << describe(r);
  EXPECT_GT(r.overtaken, 0u) << describe(r);
}

// The transport alone: one client, an echoing server, 300 packets of up to 30 kB each way.
struct lossy_path : quic_robustness, ::testing::WithParamInterface<path_faults> {};

TEST_P(lossy_path, delivers_everything_once_in_order) {
  const path_faults faults = GetParam();
  // The relay stands for a network path: Ethernet-sized datagrams, as on one.
  auto scfg = server_config(cert.path);
  scfg.connection.max_udp_payload = 1452;
  test_server srv(ioc, scfg);
  lossy_relay relay(ioc, parse(srv.address()), faults, 12345);
  auto cfg = client_config(relay.address(), cert.path);
  cfg.tls_server_name = "127.0.0.1";
  cfg.connection.max_udp_payload = 1452;
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, cfg, ec, 20s));
  ASSERT_FALSE(ec) << ec.message();
  std::vector<byte_buffer> sent;
  std::mt19937 sizes(7);
  for (std::uint32_t i = 1; i <= 300; ++i) {
    sent.push_back(make_packet(i, sizes() % 30000));
    client.send(sent.back());
  }
  ASSERT_TRUE(run_until(ioc, [&] { return client.received.size() >= sent.size(); }, 60s))
      << client.received.size() << " of " << sent.size() << "; " << describe(relay);
  run_until(ioc, [] { return false; }, 100ms);  // a duplicate would show up now
  ASSERT_EQ(client.received.size(), sent.size());
  EXPECT_TRUE(client.received == sent);
  ASSERT_EQ(srv.owners.size(), 1u);
  EXPECT_TRUE(srv.owners[0]->received == sent);
  expect_faults(relay, faults);
  std::printf("lossy path: %s\n", describe(relay).c_str());
}

INSTANTIATE_TEST_SUITE_P(quic_robustness, lossy_path,
                         ::testing::Values(path_faults{0.05, 0.05, 0.05}, path_faults{0.10, 0.10, 0.10}),
                         [](const ::testing::TestParamInfo<path_faults>& i) {
                           return std::to_string(static_cast<int>(i.param.drop * 100 + 0.5)) + "_percent";
                         });

// The relay on a thread of its own, for tests whose server and client run their own loops.
// Its counters may be read once stop() returned.
struct relay_thread {
  asio::io_context io;
  lossy_relay relay;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread t;
  relay_thread(const std::string& server, path_faults f, unsigned seed)
      : relay(io, parse(server), f, seed), t([this] { io.run(); }) {}
  void stop() {
    work.reset();
    io.stop();
    if (t.joinable()) t.join();
  }
  ~relay_thread() { stop(); }
  // Runs `f` on the relay's thread and waits for it.
  template <class F>
  void on_thread(F f) {
    std::promise<void> done;
    asio::post(io, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
};

// NAT rebinding with the listener's sockets spread over two loops (the default: one per
// loop). Each client's address changes halfway; the kernel keeps steering its datagrams
// by connection ID, so every connection stays with the loop that took it and every request
// is answered. (SO_REUSEPORT's own hash of the addresses would send about half of them to
// the other socket, which does not know the connection.)
TEST_F(quic_robustness, address_change_keeps_each_connection_on_its_loop) {
  constexpr std::size_t n_clients = 8, n_requests = 6;
  std::mutex mu;
  std::map<std::string, std::set<std::thread::id>> loops_of;  // client -> server loops that answered it
  std::set<std::thread::id> all_loops;
  auto s = server_builder{}
               .listen(server_config(cert.path))
               .threads(2)
               .on_request([&](request& r) {
                 const std::string text(r.text());
                 {
                   std::lock_guard lock(mu);
                   loops_of[text.substr(0, text.find(' '))].insert(std::this_thread::get_id());
                   all_loops.insert(std::this_thread::get_id());
                 }
                 (void)r.respond(text);
               })
               .build();
  ASSERT_FALSE(s.start());
  std::vector<std::unique_ptr<relay_thread>> paths;
  std::vector<client> clients;
  auto rt = std::make_shared<runtime>(1);
  for (std::size_t i = 0; i < n_clients; ++i) {
    paths.push_back(std::make_unique<relay_thread>(address_of(s), path_faults{}, 7 + static_cast<unsigned>(i)));
    auto q = client_config(paths.back()->relay.address(), cert.path);
    q.tls_server_name = "127.0.0.1";
    clients.push_back(client_builder{}.use_runtime(rt).connect_to(q).build());
    ASSERT_FALSE(clients.back().connect()) << "client " << i;
  }
  for (std::size_t k = 0; k < n_requests; ++k) {
    if (k == n_requests / 2)
      for (auto& p : paths) {
        const auto before = p->relay.server_facing_port();
        p->on_thread([&] { p->relay.rebind(); });
        EXPECT_NE(p->relay.server_facing_port(), before);
      }
    for (std::size_t i = 0; i < n_clients; ++i) {
      const std::string text = "client" + std::to_string(i) + " request " + std::to_string(k);
      auto r = clients[i].call(as_bytes(text), 10s);
      ASSERT_TRUE(r) << text << ": " << r.error().message();
      EXPECT_EQ(as_string(r->payload), text);
    }
  }
  for (auto& c : clients) c.disconnect();
  s.stop();
  std::lock_guard lock(mu);
  ASSERT_EQ(loops_of.size(), n_clients);
  for (auto& [name, loops] : loops_of) EXPECT_EQ(loops.size(), 1u) << name << " moved between the server's loops";
  // 8 connections with random connection IDs on one of 2 sockets: odds 2^-7.
  if (all_loops.size() < 2) std::printf("note: all %zu connections happened to land on one loop\n", n_clients);
}

// The whole stack (server_builder / client_builder, sessions, requests) over a path with
// 10% loss, 10% duplicates and 10% reordering in each direction. One-way messages and
// requests go both ways, interleaved. Every message arrives exactly once and in order;
// every request is handled once and answered once, with its own answer.
TEST_F(quic_robustness, ten_percent_lossy_path_carries_messages_and_requests_both_ways) {
  const path_faults faults{0.10, 0.10, 0.10};
  constexpr std::size_t n_messages = 200, n_requests = 100;
  std::mt19937 sizes(11);
  auto payloads = [&](const char* dir, std::size_t n, std::size_t max_size) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n; ++i) {
      std::string p = std::string(dir) + " " + std::to_string(i) + " ";
      const std::size_t size = p.size() + sizes() % max_size;
      while (p.size() < size) p += static_cast<char>('a' + (i + p.size()) % 26);
      out.push_back(std::move(p));
    }
    return out;
  };
  const auto c2s = payloads("c2s", n_messages, 16000), s2c = payloads("s2c", n_messages, 16000);
  const auto c2s_req = payloads("c2s-request", n_requests, 4000), s2c_req = payloads("s2c-request", n_requests, 4000);

  waiter w;
  std::optional<session_id> sid;
  std::vector<std::string> server_got, client_got;          // one-way messages, in arrival order
  std::size_t server_handled = 0, client_handled = 0;       // requests each side's handler saw
  std::vector<std::string> c_answers(n_requests), s_answers(n_requests);
  std::vector<int> c_done(n_requests), s_done(n_requests);  // completions per request
  std::size_t c_completed = 0, s_completed = 0, failed = 0;
  auto scfg = server_config(cert.path);
  scfg.connection.max_udp_payload = 1452;  // Ethernet-sized datagrams, as on a network path
  auto s = server_builder{}
               .listen(scfg)
               .threads(1)
               .on_connected([&](const connection_info& i) { w.update([&] { sid = i.session; }); })
               .on_message([&](const message& m) { w.update([&] { server_got.emplace_back(m.text()); }); })
               .on_request([&](request& r) {
                 w.update([&] { ++server_handled; });
                 (void)r.respond("answer " + std::string(r.text()));
               })
               .build();
  ASSERT_FALSE(s.start());
  relay_thread path(address_of(s), faults, 4242);
  auto q = client_config(path.relay.address(), cert.path);
  q.tls_server_name = "127.0.0.1";
  q.connection.max_udp_payload = 1452;
  auto c = client_builder{}
               .connect_to(q)
               .connect_timeout(20s)
               .on_message([&](const message& m) { w.update([&] { client_got.emplace_back(m.text()); }); })
               .on_request([&](request& r) {
                 w.update([&] { ++client_handled; });
                 (void)r.respond("answer " + std::string(r.text()));
               })
               .build();
  const auto started = std::chrono::steady_clock::now();
  ASSERT_FALSE(c.connect());
  ASSERT_TRUE(w.wait([&] { return sid.has_value(); }, 20s));
  const session_id id = *sid;
  auto done = [&](std::vector<std::string>& answers, std::vector<int>& count, std::size_t& completed,
                  std::size_t k) {
    return [&, k](std::error_code ec, packet p) {
      w.update([&] {
        ++count[k];
        ++completed;
        if (ec) ++failed;
        answers[k] = as_string(p.payload);
      });
    };
  };
  for (std::size_t i = 0; i < n_messages; ++i) {
    ASSERT_FALSE(c.send(c2s[i]));
    ASSERT_FALSE(s.send(id, s2c[i]));
    if (i % 2 == 0 && i / 2 < n_requests) {
      const std::size_t k = i / 2;
      c.request(as_bytes(c2s_req[k]), 30s, done(c_answers, c_done, c_completed, k));
      s.request(id, as_bytes(s2c_req[k]), 30s, done(s_answers, s_done, s_completed, k));
    }
  }
  const bool all = w.wait(
      [&] {
        return server_got.size() >= n_messages && client_got.size() >= n_messages && c_completed >= n_requests &&
               s_completed >= n_requests;
      },
      40s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  // Close both ends (graceful: everything in flight is delivered first), so that any
  // duplicate delivery would have been counted before the checks.
  c.disconnect();
  s.stop();
  path.stop();
  std::lock_guard lock(w.mutex());
  ASSERT_TRUE(all) << "server got " << server_got.size() << ", client got " << client_got.size()
                   << " of " << n_messages << " messages; answers " << c_completed << " and " << s_completed
                   << " of " << n_requests << "; " << describe(path.relay);
  EXPECT_TRUE(server_got == c2s);
  EXPECT_TRUE(client_got == s2c);
  EXPECT_EQ(server_handled, n_requests);
  EXPECT_EQ(client_handled, n_requests);
  EXPECT_EQ(failed, 0u);
  for (std::size_t k = 0; k < n_requests; ++k) {
    EXPECT_EQ(c_done[k], 1) << k;
    EXPECT_EQ(s_done[k], 1) << k;
    EXPECT_EQ(c_answers[k], "answer " + c2s_req[k]) << k;
    EXPECT_EQ(s_answers[k], "answer " + s2c_req[k]) << k;
  }
  expect_faults(path.relay, faults);
  std::printf("10%% lossy path, %zu messages and %zu requests each way in %lld ms: %s\n", n_messages, n_requests,
              static_cast<long long>(took.count()), describe(path.relay).c_str());
}

// An owner that closes the connection from inside on_packet (as a session does on a
// packet it refuses) gets no further packet, even those already received in the same
// STREAM data, as on TCP. Found by fuzz_quic_read_path: quic_conn deferred that close
// until ngtcp2 returned and went on delivering meanwhile (fixed in 3461bec).
TEST_F(quic_robustness, close_from_on_packet_stops_delivery) {
  test_server srv(ioc, server_config(cert.path), false);
  srv.on_accept_hook = [&](test_owner& o) {
    o.on_packet_hook = [&o](bytes_view) { o.conn->close({close_reason::protocol_error, {}, "refused", 0}); };
  };
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, client_config(srv.address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(run_until(ioc, [&] { return srv.owners.size() == 1; }));
  // Three small packets in one write: one STREAM frame, read by one ngtcp2 call.
  const std::vector<byte_buffer> packets{make_packet(1, 10), make_packet(2, 10), make_packet(3, 10)};
  const std::vector<bytes_view> views(packets.begin(), packets.end());
  client.conn->write(views);
  ASSERT_TRUE(run_until(ioc, [&] { return client.closed.has_value(); }));
  EXPECT_EQ(srv.owners[0]->received.size(), 1u) << "packets delivered after the owner closed the connection";
}

// A server endpoint built directly, so the test can see how much state it holds.
struct direct_server {
  asio::io_context& ioc;
  std::shared_ptr<quic_detail::endpoint> ep;
  std::vector<std::unique_ptr<test_owner>> owners;
  direct_server(asio::io_context& io, const quic_server_config& cfg) : ioc(io) {
    std::vector<std::shared_ptr<quic_detail::endpoint>> eps;
    bool steer_failed = false;
    std::string detail;
    auto ec = quic_detail::bind_endpoints(cfg, transport_context{}, {&ioc}, 1, eps, steer_failed, detail);
    EXPECT_FALSE(ec) << detail;
    if (ec) return;
    ep = eps.front();
    ep->start_receive([this](std::unique_ptr<connection> c) {
      owners.push_back(std::make_unique<test_owner>(true));
      owners.back()->attach(std::move(c));
    });
  }
  ~direct_server() {
    if (ep) ep->stop();
  }
};

// The first datagram a real client sends: a full-size Initial.
std::vector<std::uint8_t> capture_client_initial(asio::io_context& ioc, const std::string& cert_path) {
  udp::socket trap(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto cfg = client_config("127.0.0.1:" + std::to_string(trap.local_endpoint().port()), cert_path);
  // A network-sized Initial. (On loopback the client pads it to 65,000 bytes, which the
  // 2 KiB buffer here used to cut: the "corrupted copies" below were all truncated ones.)
  cfg.connection.max_udp_payload = 1200;
  auto conn = make_connector(cfg);
  bool done = false;
  conn->connect(ioc, 200ms, {}, [&](msgtrans::error_info, std::unique_ptr<connection>) { done = true; });
  std::vector<std::uint8_t> pkt(65536);
  std::size_t n = 0;
  udp::endpoint from;
  trap.async_receive_from(asio::buffer(pkt), from, [&](boost::system::error_code, std::size_t k) { n = k; });
  run_until(ioc, [&] { return n > 0 && done; }, 5s);
  EXPECT_LT(n, pkt.size());
  pkt.resize(n);
  return pkt;
}

// Genuine client Initials for `server`, made by client connections whose datagrams are
// captured instead of sent: each opens real half-open state on the server.
std::vector<std::vector<std::uint8_t>> genuine_initials(asio::io_context& ioc, const std::string& server,
                                                         std::size_t n) {
  struct capture final : quic_detail::conn_host {
    std::vector<std::vector<std::uint8_t>> out;
    void send_packets(const ngtcp2_addr&, const std::uint8_t* buf, const std::size_t* lens, std::size_t k) override {
      for (std::size_t i = 0; i < k; ++i) {
        out.emplace_back(buf, buf + lens[i]);
        buf += lens[i];
      }
    }
    void add_cid(quic_detail::quic_conn&, const ngtcp2_cid&) override {}
    void remove_cid(const ngtcp2_cid&) override {}
    void on_established(const std::shared_ptr<quic_detail::quic_conn>&) override {}
    void on_failed(quic_detail::quic_conn&, const close_info&) override {}
    void on_terminated(quic_detail::quic_conn&) override {}
  };
  auto host = std::make_shared<capture>();
  quic_detail::tls_credentials cred;
  std::string detail;
  EXPECT_FALSE(cred.init_client("", "", "", detail)) << detail;
  const auto remote = parse(server);
  const udp::endpoint local(asio::ip::make_address("127.0.0.1"), 9);
  quic_detail::conn_config cfg;
  quic_detail::quic_conn::client_args args{"localhost", false, {"msgtrans"}};
  for (std::size_t i = 0; i < n; ++i) {
    auto c = quic_detail::quic_conn::make_client(ioc, host, cred, cfg, local.data(),
                                                 static_cast<socklen_t>(local.size()), remote.data(),
                                                 static_cast<socklen_t>(remote.size()), args, detail);
    EXPECT_TRUE(c) << detail;
    if (!c) break;
    c->flush();
    c->abort({});
  }
  return std::move(host->out);
}

TEST_F(quic_robustness, hostile_datagrams_do_not_hurt) {
  auto cfg = server_config(cert.path);
  cfg.max_pending_handshakes = 64;
  cfg.handshake_timeout = 2s;
  direct_server srv(ioc, cfg);
  const auto target = parse(srv.ep->local_address());
  udp::socket attacker(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::mt19937 rng(99);
  auto send = [&](const std::vector<std::uint8_t>& d) {
    boost::system::error_code ec;
    attacker.send_to(asio::buffer(d), target, 0, ec);
  };
  auto drain = [&] { run_until(ioc, [] { return false; }, 20ms); };

  // 1. Random datagrams of every size, some with the long-header bit set.
  for (int i = 0; i < 3000; ++i) {
    std::vector<std::uint8_t> d(1 + rng() % 1500);
    for (auto& b : d) b = static_cast<std::uint8_t>(rng());
    if (i % 2) d[0] |= 0xc0;
    send(d);
    if (i % 200 == 0) drain();
  }
  // 2. Truncated and corrupted copies of a real Initial.
  const auto initial = capture_client_initial(ioc, cert.path);
  ASSERT_EQ(initial.size(), 1200u);
  for (std::size_t len : {1u, 5u, 7u, 20u, 50u, 100u, 600u, 1199u}) send({initial.begin(), initial.begin() + len});
  for (int i = 0; i < 200; ++i) {
    auto d = initial;
    d[20 + rng() % (d.size() - 20)] ^= static_cast<std::uint8_t>(1 + rng() % 255);
    send(d);
  }
  drain();
  // 3. A flood of genuine Initials (fresh connection IDs, valid crypto) from one
  // address that never completes a handshake.
  const auto initials = genuine_initials(ioc, srv.ep->local_address(), 600);
  for (std::size_t i = 0; i < initials.size(); ++i) {
    send(initials[i]);
    if (i % 20 == 19) drain();  // let the server read: the socket buffer holds only so many
  }
  drain();
  // Bounded: past max_pending_handshakes the endpoint answers with Retry, holding no state.
  EXPECT_LE(srv.ep->handshake_count(), cfg.max_pending_handshakes);
  EXPECT_LE(srv.ep->connection_count(), cfg.max_pending_handshakes);
  EXPECT_GT(srv.ep->retries_sent(), 0u) << "handshakes " << srv.ep->handshake_count() << ", connections " << srv.ep->connection_count();

  // Real clients still get in (through a Retry while the flood's state lasts).
  for (int i = 0; i < 3; ++i) {
    std::error_code ec;
    test_owner c;
    c.attach(connect(ioc, client_config(srv.ep->local_address(), cert.path), ec));
    ASSERT_FALSE(ec) << ec.message();
    expect_echo(ioc, c, static_cast<std::uint32_t>(i + 1));
    c.conn->close({});
  }
  // And the half-open state of the flood expires with the handshake timeout.
  EXPECT_TRUE(run_until(ioc, [&] { return srv.ep->handshake_count() == 0; }, 10s)) << srv.ep->handshake_count();
}

TEST_F(quic_robustness, retry_when_configured) {
  auto cfg = server_config(cert.path);
  cfg.retry = true;
  direct_server srv(ioc, cfg);
  std::error_code ec;
  test_owner c;
  c.attach(connect(ioc, client_config(srv.ep->local_address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(srv.ep->retries_sent(), 1u);
  expect_echo(ioc, c, 1, 5000);
}

TEST_F(quic_robustness, max_connections_refuses_the_next_client) {
  auto cfg = server_config(cert.path);
  cfg.max_connections = 2;
  direct_server srv(ioc, cfg);
  std::error_code ec;
  test_owner a, b;
  a.attach(connect(ioc, client_config(srv.ep->local_address(), cert.path), ec));
  ASSERT_FALSE(ec);
  b.attach(connect(ioc, client_config(srv.ep->local_address(), cert.path), ec));
  ASSERT_FALSE(ec);
  auto c = connect(ioc, client_config(srv.ep->local_address(), cert.path), ec);
  EXPECT_TRUE(ec) << "a third connection must be refused";
  EXPECT_FALSE(c);
  a.conn->close({});
  ASSERT_TRUE(run_until(ioc, [&] { return srv.ep->connection_count() == 1; }));
  test_owner d;
  d.attach(connect(ioc, client_config(srv.ep->local_address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  expect_echo(ioc, d, 1);
}

TEST_F(quic_robustness, unknown_short_header_gets_stateless_reset) {
  direct_server srv(ioc, server_config(cert.path));
  udp::socket s(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<std::uint8_t> d(100, 0x11);
  d[0] = 0x40;  // short header, fixed bit
  s.send_to(asio::buffer(d), parse(srv.ep->local_address()));
  std::vector<std::uint8_t> reply(256);
  std::size_t n = 0;
  udp::endpoint from;
  s.async_receive_from(asio::buffer(reply), from, [&](boost::system::error_code, std::size_t k) { n = k; });
  ASSERT_TRUE(run_until(ioc, [&] { return n > 0; }, 2s));
  EXPECT_LT(n, d.size());  // smaller than its trigger
  EXPECT_EQ(reply[0] & 0xc0, 0x40);
}

TEST_F(quic_robustness, unsupported_version_gets_version_negotiation) {
  direct_server srv(ioc, server_config(cert.path));
  udp::socket s(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<std::uint8_t> d(1200, 0);
  d[0] = 0xc0;
  d[1] = 0x1a, d[2] = 0x2a, d[3] = 0x3a, d[4] = 0x4a;  // a reserved (greasing) version
  d[5] = 8;                                              // dcid len
  d[14] = 8;                                             // scid len
  s.send_to(asio::buffer(d), parse(srv.ep->local_address()));
  std::vector<std::uint8_t> reply(256);
  std::size_t n = 0;
  udp::endpoint from;
  s.async_receive_from(asio::buffer(reply), from, [&](boost::system::error_code, std::size_t k) { n = k; });
  ASSERT_TRUE(run_until(ioc, [&] { return n > 0; }, 2s));
  ASSERT_GE(n, 7u);
  EXPECT_EQ(reply[1] | reply[2] | reply[3] | reply[4], 0);  // version 0 = Version Negotiation
}

// A Version Negotiation packet (version 0) carries connection IDs of up to 255 bytes, and
// ngtcp2 hands them over as they are: the endpoint copied the destination ID into a
// 20-byte routing key, a stack overflow from one datagram (found by fuzz_quic_endpoint).
// Such packets are dropped now, and the server goes on serving.
TEST_F(quic_robustness, version_negotiation_packet_with_long_ids_is_dropped) {
  direct_server srv(ioc, server_config(cert.path));
  udp::socket s(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<std::uint8_t> d(1 + 4 + 1 + 255 + 1 + 255 + 4, 0xab);
  d[0] = 0xc0;
  d[1] = d[2] = d[3] = d[4] = 0;  // version 0
  d[5] = 255;                     // dcid len
  d[6 + 255] = 255;               // scid len
  for (int i = 0; i < 3; ++i) s.send_to(asio::buffer(d), parse(srv.ep->local_address()));
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, client_config(srv.ep->local_address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  expect_echo(ioc, client, 1);
  EXPECT_EQ(srv.ep->connection_count(), 1u);
}

TEST_F(quic_robustness, http3_client_is_refused_and_others_still_served) {
  if (std::system("command -v gtlsclient >/dev/null 2>&1") != 0) GTEST_SKIP() << "gtlsclient (ngtcp2-client) not installed";
  test_server srv(ioc, server_config(cert.path));
  const std::string addr = srv.address();
  const std::string port = addr.substr(addr.rfind(':') + 1);
  temp_path qlog{"msgtrans-quic-gtlsclient.qlog"};
  std::atomic<bool> done{false};
  std::string output;
  std::thread peer([&] {
    const std::string cmd = "gtlsclient --exit-on-all-streams-close --handshake-timeout=5s --timeout=5s --qlog-file=" +
                            qlog.path + " 127.0.0.1 " + port + " https://localhost:" + port + "/ 2>&1";
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
      char line[512];
      while (std::fgets(line, sizeof line, p)) output += line;
      ::pclose(p);
    }
    done = true;
  });
  const bool finished = run_until(ioc, [&] { return done.load(); }, 20s);
  peer.join();
  ASSERT_TRUE(finished);
  // Refused: no msgtrans connection was delivered, and the peer received a
  // CONNECTION_CLOSE with CRYPTO_ERROR 0x178 (TLS alert 120, no_application_protocol).
  EXPECT_TRUE(srv.owners.empty());
  std::string trace;
  if (FILE* f = std::fopen(qlog.path.c_str(), "r")) {
    char chunk[4096];
    std::size_t k;
    while ((k = std::fread(chunk, 1, sizeof chunk, f)) > 0) trace.append(chunk, k);
    std::fclose(f);
  }
  EXPECT_NE(trace.find(R"("frame_type":"connection_close","error_space":"transport","error_code":376)"),
            std::string::npos)
      << output;
  // The server keeps serving.
  std::error_code ec;
  test_owner c;
  c.attach(connect(ioc, client_config(addr, cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  expect_echo(ioc, c, 1);
}

}  // namespace
}  // namespace msgtrans::test

// The NATS cluster bus against real nats-server processes (tests/support/nats_server.hpp):
// delivery, no echo, order, (un)subscribe, start failures, auth, a server killed and
// restarted, fail-over in a 3-node NATS cluster, and stop() with deliveries in flight.
#include "support/expect_invalid.hpp"
#include "support/nats_server.hpp"

#include <msgtrans/cluster.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace msgtrans::test {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

std::string text(bytes_view b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

/// A bus and everything its callbacks saw.
struct node {
  std::unique_ptr<cluster_bus> bus;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::string>> got;  // subject, bytes
  std::vector<std::pair<bus_state, std::string>> states;

  explicit node(const nats_cluster_config& c) : bus(make_nats_bus(c)) {}
  ~node() { bus.reset(); }  // stop() reports `closed` to the handlers below: before they go

  error_info start() {
    return bus->start(
        [this](std::string_view subject, bytes_view data) {
          std::lock_guard lock(mu);
          got.emplace_back(std::string(subject), text(data));
          cv.notify_all();
        },
        [this](bus_state s, std::string_view detail) {
          std::lock_guard lock(mu);
          states.emplace_back(s, std::string(detail));
          cv.notify_all();
        });
  }
  template <class P>
  bool wait(P pred, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }
  bool has(const std::string& subject, const std::string& data) {
    return std::find(got.begin(), got.end(), std::pair{subject, data}) != got.end();
  }
  bool wait_for_message(const std::string& subject, const std::string& data, std::chrono::milliseconds t = 5s) {
    return wait([&] { return has(subject, data); }, t);
  }
  bool wait_state(bus_state s, std::chrono::milliseconds t = 5s) {
    return wait([&] { return !states.empty() && states.back().first == s; }, t);
  }
  /// How many state changes so far (for wait_state_since).
  std::size_t mark() {
    std::lock_guard lock(mu);
    return states.size();
  }
  /// Waits for `s` among the state changes after `since`; returns its detail.
  std::optional<std::string> wait_state_since(std::size_t since, bus_state s, std::chrono::milliseconds t = 5s) {
    std::optional<std::string> detail;
    wait([&] {
      for (auto i = since; i < states.size(); ++i)
        if (states[i].first == s) detail = states[i].second;
      return detail.has_value();
    }, t);
    return detail;
  }
  std::vector<std::pair<std::string, std::string>> messages() {
    std::lock_guard lock(mu);
    return got;
  }
  std::error_code publish(const std::string& subject, const std::string& data) {
    return bus->publish(subject, as_bytes(data));
  }
};

nats_cluster_config config(std::vector<std::string> servers) {
  nats_cluster_config c;
  c.servers = std::move(servers);
  c.cluster_name = "test";
  c.connect_timeout = 1000ms;
  c.reconnect_wait = 100ms;
  return c;
}

/// Publishes probes from `from` on `subject` until `to` has one (a SUB reaches the
/// server, and across routes the other servers, some time after subscribe() returns).
bool wait_interest(node& from, node& to, const std::string& subject, std::chrono::milliseconds t = 5s) {
  const auto deadline = clock_type::now() + t;
  for (int i = 0; clock_type::now() < deadline; ++i) {
    from.publish(subject, "probe");
    if (to.wait_for_message(subject, "probe", 20ms)) return true;
  }
  return false;
}

TEST(NatsBus, DeliversExactBytesAndNeverEchoes) {
  nats_server srv;
  node a(config({srv.url()})), b(config({srv.url()}));
  ASSERT_FALSE(a.start());
  ASSERT_FALSE(b.start());
  EXPECT_EQ(a.bus->state(), bus_state::connected);
  ASSERT_FALSE(a.bus->subscribe("room.x"));
  ASSERT_FALSE(b.bus->subscribe("room.x"));
  ASSERT_TRUE(wait_interest(a, b, "room.x"));

  std::string bin(70000, '\0');
  for (std::size_t i = 0; i < bin.size(); ++i) bin[i] = static_cast<char>(i * 131 % 256);
  ASSERT_FALSE(a.publish("room.x", bin));
  ASSERT_TRUE(b.wait_for_message("room.x", bin));
  // B answers after receiving: A's own publishes, had they been echoed, would be on A's
  // connection before the answer.
  ASSERT_FALSE(b.publish("room.x", "answer"));
  ASSERT_TRUE(a.wait_for_message("room.x", "answer"));
  const auto at_a = a.messages();
  ASSERT_EQ(at_a.size(), 1U);
  EXPECT_EQ(at_a[0].second, "answer");
  EXPECT_FALSE(b.has("room.x", "answer"));

  a.bus->stop();  // reports `closed` before it returns
  std::lock_guard lock(a.mu);
  ASSERT_EQ(a.states.size(), 2U);
  EXPECT_EQ(a.states[0].first, bus_state::connected);
  EXPECT_NE(a.states[0].second.find(srv.url()), std::string::npos) << a.states[0].second;
  EXPECT_EQ(a.states[1].first, bus_state::closed);
  EXPECT_EQ(a.bus->state(), bus_state::closed);
}

TEST(NatsBus, RefusesBadSubjectsAndOversizedPayloads) {
  nats_server srv;
  node a(config({srv.url()}));
  ASSERT_FALSE(a.start());
  EXPECT_EQ(a.publish("", "x"), errc::invalid_argument);
  EXPECT_EQ(a.bus->subscribe(""), errc::invalid_argument);
  EXPECT_EQ(a.publish("big", std::string(2 << 20, 'x')), errc::message_too_large);  // server max_payload: 1 MiB
  EXPECT_FALSE(a.publish("fine", "x"));
}

TEST(NatsBus, ThousandPublishesArriveInOrder) {
  nats_server srv;
  node a(config({srv.url()})), b(config({srv.url()}));
  ASSERT_FALSE(a.start());
  ASSERT_FALSE(b.start());
  ASSERT_FALSE(b.bus->subscribe("order"));
  ASSERT_TRUE(wait_interest(a, b, "order"));
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(a.publish("order", std::to_string(i)));
  ASSERT_TRUE(b.wait_for_message("order", "999", 10s));
  std::vector<std::string> seq;
  for (auto& [s, d] : b.messages())
    if (d != "probe") seq.push_back(d);
  ASSERT_EQ(seq.size(), 1000U);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(seq[i], std::to_string(i));
}

TEST(NatsBus, SubscribeIsIdempotentAndUnsubscribeStopsDeliveries) {
  nats_server srv;
  node a(config({srv.url()})), b(config({srv.url()}));
  ASSERT_FALSE(a.start());
  ASSERT_FALSE(b.start());
  ASSERT_FALSE(b.bus->subscribe("s"));
  ASSERT_FALSE(b.bus->subscribe("s"));
  ASSERT_FALSE(b.bus->subscribe("probe"));
  ASSERT_TRUE(wait_interest(a, b, "s"));
  ASSERT_TRUE(wait_interest(a, b, "probe"));
  ASSERT_FALSE(a.publish("s", "once"));
  ASSERT_FALSE(a.publish("probe", "after-once"));
  ASSERT_TRUE(b.wait_for_message("probe", "after-once"));
  ASSERT_TRUE(b.wait_for_message("s", "once"));
  // A second subscription would deliver "once" twice; give it one more round trip.
  ASSERT_FALSE(a.publish("probe", "after-once-2"));
  ASSERT_TRUE(b.wait_for_message("probe", "after-once-2"));
  auto msgs = b.messages();
  EXPECT_EQ(std::count(msgs.begin(), msgs.end(), std::pair<std::string, std::string>{"s", "once"}), 1);

  b.bus->unsubscribe("s");
  b.bus->unsubscribe("s");        // no-op
  b.bus->unsubscribe("never");    // no-op
  ASSERT_FALSE(a.publish("s", "after-unsubscribe"));
  ASSERT_FALSE(a.publish("probe", "end"));
  ASSERT_TRUE(b.wait_for_message("probe", "end"));
  EXPECT_FALSE(b.has("s", "after-unsubscribe"));

  ASSERT_FALSE(b.bus->subscribe("s"));  // and back
  ASSERT_TRUE(wait_interest(a, b, "s"));
}

TEST(NatsBus, StartFailsWithinConnectTimeoutNamingTheUrl) {
  const int port = free_ports(1)[0];
  const std::string url = "nats://127.0.0.1:" + std::to_string(port);
  auto c = config({url});
  c.connect_timeout = 500ms;
  node a(c);
  const auto t0 = clock_type::now();
  auto e = a.start();
  const auto took = clock_type::now() - t0;
  ASSERT_TRUE(e);
  EXPECT_EQ(e, errc::not_connected);
  EXPECT_NE(e.detail.find(url), std::string::npos) << e.detail;
  EXPECT_LT(took, 1500ms);
  EXPECT_EQ(a.bus->state(), bus_state::closed);
  EXPECT_EQ(a.publish("x", "y"), errc::not_connected);
  EXPECT_EQ(a.bus->subscribe("x"), errc::not_connected);
  a.bus->stop();
}

TEST(NatsBus, StartNamesEveryUrlTried) {
  auto ports = free_ports(2);
  const std::string u1 = "nats://127.0.0.1:" + std::to_string(ports[0]);
  const std::string u2 = "nats://127.0.0.1:" + std::to_string(ports[1]);
  node a(config({u1, u2}));
  auto e = a.start();
  ASSERT_EQ(e, errc::not_connected);
  EXPECT_NE(e.detail.find(u1), std::string::npos) << e.detail;
  EXPECT_NE(e.detail.find(u2), std::string::npos) << e.detail;
}

// A TCP listener that never accepts: the kernel completes the handshake, no INFO comes.
TEST(NatsBus, StartAgainstASilentServerFailsAfterTheConnectTimeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string url = "nats://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto c = config({url});
  c.connect_timeout = 400ms;
  node a(c);
  const auto t0 = clock_type::now();
  auto e = a.start();
  const auto took = clock_type::now() - t0;
  ::close(fd);
  ASSERT_TRUE(e);
  EXPECT_NE(e.detail.find(url), std::string::npos) << e.detail;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2s);
}

TEST(NatsBus, ServerKilledAndRestartedOnTheSamePort) {
  nats_server srv;
  node a(config({srv.url()})), b(config({srv.url()}));
  ASSERT_FALSE(a.start());
  ASSERT_FALSE(b.start());
  ASSERT_FALSE(b.bus->subscribe("k"));
  ASSERT_TRUE(wait_interest(a, b, "k"));

  srv.kill();
  ASSERT_TRUE(a.wait_state(bus_state::reconnecting));
  ASSERT_TRUE(b.wait_state(bus_state::reconnecting));
  EXPECT_EQ(a.bus->state(), bus_state::reconnecting);
  EXPECT_EQ(a.publish("k", "during"), errc::not_connected);
  ASSERT_FALSE(b.bus->subscribe("k.new"));  // while away: sent on reconnect
  ASSERT_FALSE(b.bus->subscribe("k.gone"));
  b.bus->unsubscribe("k.gone");
  {
    std::lock_guard lock(a.mu);
    EXPECT_NE(a.states.back().second.find(srv.url()), std::string::npos) << a.states.back().second;
  }

  const auto t0 = clock_type::now();
  srv.restart();
  ASSERT_TRUE(a.wait_state(bus_state::connected));
  ASSERT_TRUE(b.wait_state(bus_state::connected));
  // B reports connected once the server has its SUBs again (a PING/PONG in the
  // reconnected callback): one publish is enough.
  ASSERT_FALSE(a.publish("k", "after"));
  ASSERT_TRUE(b.wait_for_message("k", "after"));
  EXPECT_LT(clock_type::now() - t0, 5s);
  ASSERT_FALSE(a.publish("k.gone", "not-for-b"));
  ASSERT_FALSE(a.publish("k.new", "new"));
  ASSERT_TRUE(b.wait_for_message("k.new", "new"));
  EXPECT_FALSE(b.has("k", "during"));
  EXPECT_FALSE(b.has("k.gone", "not-for-b"));
}

TEST(NatsBus, FailsOverInAThreeNodeCluster) {
  nats_cluster cl;
  node a(config({cl.node(0).url(), cl.node(1).url()}));
  node b(config({cl.node(1).url()}));
  ASSERT_FALSE(a.start());
  ASSERT_FALSE(b.start());
  {
    std::lock_guard lock(a.mu);
    EXPECT_NE(a.states.back().second.find(cl.node(0).url()), std::string::npos) << a.states.back().second;
  }
  ASSERT_FALSE(b.bus->subscribe("fo"));
  ASSERT_TRUE(wait_interest(a, b, "fo"));  // nats-1 -> route -> nats-2

  const auto before = a.mark();
  cl.node(0).kill();
  auto lost = a.wait_state_since(before, bus_state::reconnecting);
  ASSERT_TRUE(lost);
  EXPECT_NE(lost->find(cl.node(0).url()), std::string::npos) << *lost;
  auto back = a.wait_state_since(before, bus_state::connected);
  ASSERT_TRUE(back);
  EXPECT_NE(back->find(cl.node(1).url()), std::string::npos) << *back;
  EXPECT_EQ(a.bus->state(), bus_state::connected);
  ASSERT_FALSE(a.publish("fo", "after-failover"));
  ASSERT_TRUE(b.wait_for_message("fo", "after-failover"));
}

TEST(NatsBus, TokenAuth) {
  nats_server srv({"--auth", "s3cret"});
  auto good = config({srv.url()});
  good.token = "s3cret";
  node a(good);
  ASSERT_FALSE(a.start()) << "right token refused";

  auto bad = config({srv.url()});
  bad.token = "wrong";
  node b(bad);
  auto e = b.start();
  ASSERT_TRUE(e);
  EXPECT_NE(e.detail.find(srv.url()), std::string::npos) << e.detail;
  EXPECT_NE(e.detail.find("uthoriz"), std::string::npos) << e.detail;
  node none(config({srv.url()}));
  EXPECT_TRUE(none.start());
}

TEST(NatsBus, UserPasswordAuth) {
  nats_server srv({"--user", "alice", "--pass", "pw1"});
  auto good = config({srv.url()});
  good.user = "alice";
  good.password = "pw1";
  node a(good);
  ASSERT_FALSE(a.start()) << "right password refused";

  auto bad = good;
  bad.password = "pw2";
  node b(bad);
  auto e = b.start();
  ASSERT_TRUE(e);
  EXPECT_NE(e.detail.find(srv.url()), std::string::npos) << e.detail;
  EXPECT_NE(e.detail.find("uthoriz"), std::string::npos) << e.detail;
}

class NatsBusTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("msgtrans_nats_tls_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    // A throw-away certificate for 127.0.0.1, made here, trusted by nobody.
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
                            " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
                            (dir_ / "key.pem").string() + " -out " + (dir_ / "cert.pem").string() + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::vector<std::string> server_args() {
    return {"--tls", "--tlscert", (dir_ / "cert.pem").string(), "--tlskey", (dir_ / "key.pem").string()};
  }
  static inline std::filesystem::path dir_;
};

TEST_F(NatsBusTls, VerifiedWithTheCaFileAndRefusedWithout) {
  nats_server srv(server_args());
  auto c = config({srv.url()});
  c.tls = true;
  c.tls_ca_file = (dir_ / "cert.pem").string();
  node a(c), b(c);
  ASSERT_FALSE(a.start()) << "TLS with the right CA refused";
  ASSERT_FALSE(b.start());
  ASSERT_FALSE(b.bus->subscribe("tls"));
  ASSERT_TRUE(wait_interest(a, b, "tls"));

  auto untrusted = config({srv.url()});
  untrusted.tls = true;
  node u(untrusted);
  auto e = u.start();
  ASSERT_TRUE(e);
  EXPECT_NE(e.detail.find(srv.url()), std::string::npos) << e.detail;

  auto skip = untrusted;
  skip.tls_insecure_skip_verify = true;
  node s(skip);
  EXPECT_FALSE(s.start());

  auto plain = config({srv.url()});  // the server requires TLS
  node p(plain);
  EXPECT_TRUE(p.start());
}

TEST_F(NatsBusTls, TlsSchemeTurnsTlsOn) {
  nats_server srv(server_args());
  auto c = config({"tls://127.0.0.1:" + std::to_string(srv.port())});
  c.tls_ca_file = (dir_ / "cert.pem").string();
  node a(c);
  EXPECT_FALSE(a.start());
}

TEST_F(NatsBusTls, MissingCaFileIsReported) {
  nats_server srv(server_args());
  auto c = config({srv.url()});
  c.tls = true;
  c.tls_ca_file = (dir_ / "missing.pem").string();
  node a(c);
  auto e = a.start();
  ASSERT_TRUE(e);
  EXPECT_NE(e.detail.find("missing.pem"), std::string::npos) << e.detail;
}

TEST(NatsBus, NoDeliveryAfterStopReturns) {
  nats_server srv;
  node a(config({srv.url()}));
  ASSERT_FALSE(a.start());
  std::atomic<bool> stopped{false};
  std::atomic<int> late{0}, seen{0};
  auto b = make_nats_bus(config({srv.url()}));
  ASSERT_FALSE(b->start(
      [&](std::string_view, bytes_view) {
        if (stopped.load()) ++late;
        ++seen;
        std::this_thread::sleep_for(50us);  // keep a delivery in flight when stop() comes
      },
      {}));
  ASSERT_FALSE(b->subscribe("flood"));
  std::atomic<bool> run{true};
  std::thread pub([&] {
    while (run.load()) a.publish("flood", "x");
  });
  const auto deadline = clock_type::now() + 5s;
  while (seen.load() < 200 && clock_type::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_GE(seen.load(), 200);
  const auto t0 = clock_type::now();
  b->stop();
  stopped = true;
  EXPECT_LT(clock_type::now() - t0, 2s);  // cnats's completion callbacks came (no 10 s bound)
  std::this_thread::sleep_for(100ms);  // absence check: give a wrong late delivery time to show
  run = false;
  pub.join();
  EXPECT_EQ(late.load(), 0);
  EXPECT_EQ(b->state(), bus_state::closed);
  b->stop();  // idempotent
  EXPECT_EQ(b->publish("flood", as_bytes("x")), errc::not_connected);
}

TEST(NatsBus, ConcurrentSubscribeUnsubscribePublish) {
  nats_server srv;
  node a(config({srv.url()})), b(config({srv.url()}));
  ASSERT_FALSE(a.start());
  ASSERT_FALSE(b.start());
  std::atomic<bool> run{true};
  std::thread pub([&] {
    for (int i = 0; run.load(); ++i) a.publish("c." + std::to_string(i % 8), "m");
  });
  std::vector<std::thread> churn;
  for (int t = 0; t < 2; ++t)
    churn.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string s = "c." + std::to_string((i + t) % 8);
        EXPECT_FALSE(b.bus->subscribe(s));
        if (i % 3 == 0) b.bus->unsubscribe(s);
      }
    });
  for (auto& t : churn) t.join();
  ASSERT_FALSE(b.bus->subscribe("c.0"));
  ASSERT_TRUE(b.wait_for_message("c.0", "m"));
  run = false;
  pub.join();
  b.bus->stop();
}

TEST(NatsBus, ConfigValidationNamesTheField) {
  auto make = [](auto edit) {
    return [edit] {
      auto c = config({"nats://127.0.0.1:4222"});
      edit(c);
      make_nats_bus(c);
    };
  };
  expect_invalid_naming(make([](auto& c) { c.servers.clear(); }), "nats_cluster_config.servers");
  expect_invalid_naming(make([](auto& c) { c.servers = {"http://127.0.0.1:4222"}; }), "nats_cluster_config.servers");
  expect_invalid_naming(make([](auto& c) { c.servers = {"127.0.0.1:4222"}; }), "\"127.0.0.1:4222\"");
  expect_invalid_naming(make([](auto& c) { c.servers = {"nats://"}; }), "nats_cluster_config.servers");
  expect_invalid_naming(make([](auto& c) { c.user = "u"; }), "nats_cluster_config.password");
  expect_invalid_naming(make([](auto& c) { c.password = "p"; }), "nats_cluster_config.user");
  expect_invalid_naming(make([](auto& c) { c.tls_cert_file = "c.pem"; }), "nats_cluster_config.tls_key_file");
  expect_invalid_naming(make([](auto& c) { c.tls_key_file = "k.pem"; }), "nats_cluster_config.tls_cert_file");
  expect_invalid_naming(make([](auto& c) { c.cluster_name.clear(); }), "nats_cluster_config.cluster_name");
  expect_invalid_naming(make([](auto& c) { c.connect_timeout = 0ms; }), "nats_cluster_config.connect_timeout");
  expect_invalid_naming(make([](auto& c) { c.reconnect_wait = -1ms; }), "nats_cluster_config.reconnect_wait");
  expect_invalid_naming(make([](auto& c) { c.presence_interval = 0ms; }), "nats_cluster_config.presence_interval");
  EXPECT_NO_THROW(make_nats_bus(config({"nats://a:1", "tls://b:2"})));
  EXPECT_EQ(to_string(bus_state::reconnecting), "reconnecting");
}

}  // namespace
}  // namespace msgtrans::test

// Broker faults under a two-node room: NATS killed and restarted on its port, and a
// 3-node NATS cluster losing the server one node is on. Real nats-server processes.
#include "cluster/room_fixture.hpp"
#include "support/nats_server.hpp"

#include <gtest/gtest.h>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

void attach(server_builder& b, std::size_t i, std::vector<std::string> servers) {
  nats_cluster_config c;
  c.servers = std::move(servers);
  c.cluster_name = "faults";
  c.node_name = "node-" + std::to_string(i);
  c.presence_interval = 100ms;
  c.reconnect_wait = 100ms;
  b.cluster(c);
}

// Publishes a numbered probe every 50 ms (there is no event for "the broker routes
// again") until member k receives one; how long that took, or nullopt after `limit`.
std::optional<std::chrono::milliseconds> probe_until_delivered(room_env& env, server& from, const std::string& room,
                                                              std::size_t k, std::chrono::milliseconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; std::chrono::steady_clock::now() - t0 < limit; ++i) {
    (void)from.publish(room, "probe " + std::to_string(i));
    if (env.wait_prefix(k, "probe ", 50ms))
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  }
  return std::nullopt;
}

bool wait_state(server& s, const std::string& state, std::chrono::milliseconds t = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + t;
  while (std::chrono::steady_clock::now() < deadline) {
    if (s.stats().cluster_state == state) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

TEST(ClusterFaults, BrokerRestartKeepsLocalDeliveryAndResumesCrossNode) {
  nats_server nats;
  room_env env([&](server_builder& b, std::size_t i) { attach(b, i, {nats.url()}); });
  env.add_node();
  env.add_node();
  const auto a0 = env.add_member(0), a1 = env.add_member(0), b0 = env.add_member(1);
  for (auto k : {a0, a1, b0}) ASSERT_FALSE(env.srv(env.m(k).node).join(env.m(k).id, "room"));
  ASSERT_TRUE(env.wait_room_size("room", 3));
  auto& a = env.srv(0);

  nats.kill();
  ASSERT_TRUE(wait_state(a, "reconnecting"));
  const auto errors_before = a.stats().cluster_publish_errors;
  for (int i = 0; i < 10; ++i) {
    auto r = a.publish("room", "during " + std::to_string(i), {}, env.m(a0).id);
    EXPECT_EQ(r.local, 1u);                      // local delivery carries on
    EXPECT_EQ(r.cluster, errc::not_connected);   // the cross-node part fails visibly
  }
  ASSERT_TRUE(env.wait_last(a1, "during 9"));
  EXPECT_EQ(a.stats().cluster_publish_errors, errors_before + 10);

  nats.restart();
  auto resumed = probe_until_delivered(env, a, "room", b0, 5s);
  ASSERT_TRUE(resumed) << "cross-node delivery did not resume within 5 s of the restart";
  std::printf("cross-node delivery resumed %lld ms after the restart\n", static_cast<long long>(resumed->count()));
  for (auto& m : env.got(b0)) EXPECT_EQ(m.rfind("during", 0), std::string::npos) << "a gap message was queued: " << m;
  EXPECT_GE(a.stats().cluster_reconnects, 1u);
  EXPECT_EQ(a.stats().cluster_state, "connected");
}

TEST(ClusterFaults, NodeFailsOverToAnotherServerOfANatsCluster) {
  nats_cluster nats;
  room_env env([&](server_builder& b, std::size_t i) {
    if (i == 0) attach(b, i, {nats.node(0).url(), nats.node(1).url()});  // A on nats-1, then nats-2
    else attach(b, i, {nats.node(1).url()});                             // B on nats-2
  });
  env.add_node();
  env.add_node();
  const auto a0 = env.add_member(0), b0 = env.add_member(1);
  ASSERT_FALSE(env.srv(0).join(env.m(a0).id, "room"));
  ASSERT_FALSE(env.srv(1).join(env.m(b0).id, "room"));
  ASSERT_TRUE(env.wait_room_size("room", 2));
  (void)env.srv(0).publish("room", "before");
  ASSERT_TRUE(env.wait_last(b0, "before"));

  nats.node(0).kill();
  auto resumed = probe_until_delivered(env, env.srv(0), "room", b0, 10s);
  ASSERT_TRUE(resumed) << "node A did not fail over to nats-2";
  std::printf("cross-node delivery resumed %lld ms after nats-1 died\n", static_cast<long long>(resumed->count()));
  // And the other way round, B to A, over the server A failed over to.
  (void)env.srv(1).publish("room", "back");
  EXPECT_TRUE(env.wait_last(a0, "back"));
}

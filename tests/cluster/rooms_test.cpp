// Rooms: on one node (no cluster), and across nodes on each bus (in-process hub, and a
// real nats-server child). Members are real TCP clients.
#include "cluster/room_fixture.hpp"
#include "support/nats_server.hpp"

#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

std::vector<std::string> only(std::initializer_list<std::string> v) { return v; }

}  // namespace

// ---- one node, no cluster ----

TEST(Rooms, PublishReachesMembersButTheExcludedOne) {
  room_env env;
  env.add_node();
  for (int i = 0; i < 3; ++i) env.add_member(0);
  auto& s = env.srv(0);
  ASSERT_FALSE(s.join(env.m(0).id, "lobby"));
  ASSERT_FALSE(s.join(env.m(1).id, "lobby"));
  ASSERT_FALSE(s.join(env.m(1).id, "lobby"));  // twice: still one membership
  EXPECT_EQ(s.room_size("lobby"), 2u);
  EXPECT_EQ(s.room_size("lobby", room_scope::cluster), 2u);  // no cluster: the node is all of it
  EXPECT_EQ(s.rooms_of(env.m(1).id), only({"lobby"}));
  EXPECT_TRUE(s.rooms_of(env.m(2).id).empty());

  auto r = s.publish("lobby", "hello room", {}, env.m(0).id);
  EXPECT_EQ(r.local, 1u);
  EXPECT_FALSE(r.cluster);
  ASSERT_TRUE(env.wait_last(1, "hello room"));
  ASSERT_TRUE(env.sync(0));
  ASSERT_TRUE(env.sync(2));
  EXPECT_EQ(env.got(0), only({"sync"}));
  EXPECT_EQ(env.got(1), only({"hello room"}));
  EXPECT_EQ(env.got(2), only({"sync"}));
  auto st = s.stats();
  EXPECT_EQ(st.rooms, 1u);
  EXPECT_EQ(st.room_memberships, 2u);
  EXPECT_EQ(st.room_deliveries, 1u);
  EXPECT_EQ(st.cluster_state, "none");
}

TEST(Rooms, LeaveAndCloseRemoveMembers) {
  room_env env;
  env.add_node();
  for (int i = 0; i < 2; ++i) env.add_member(0);
  auto& s = env.srv(0);
  for (auto room : {"a", "b", "c"}) ASSERT_FALSE(s.join(env.m(0).id, room));
  ASSERT_FALSE(s.join(env.m(1).id, "a"));
  EXPECT_EQ(s.rooms_of(env.m(0).id), only({"a", "b", "c"}));
  ASSERT_FALSE(s.leave(env.m(0).id, "b"));
  ASSERT_FALSE(s.leave(env.m(0).id, "b"));  // not in it: no-op
  EXPECT_EQ(s.rooms_of(env.m(0).id), only({"a", "c"}));
  EXPECT_EQ(s.room_size("b"), 0u);
  s.leave_all(env.m(0).id);
  EXPECT_TRUE(s.rooms_of(env.m(0).id).empty());
  EXPECT_EQ(s.room_size("a"), 1u);

  const auto gone = env.m(1).id;
  env.m(1).c.disconnect();
  ASSERT_TRUE(env.wait_closed(0, gone));
  EXPECT_EQ(s.room_size("a"), 0u);
  EXPECT_EQ(s.stats().rooms, 0u);
  EXPECT_EQ(s.join(gone, "a"), errc::unknown_session);
  EXPECT_EQ(s.publish("a", "nobody").local, 0u);
}

TEST(Rooms, InvalidNamesThrowAndWildcardLikeNamesAreOrdinary) {
  room_env env;
  env.add_node();
  env.add_member(0);
  auto& s = env.srv(0);
  const auto id = env.m(0).id;
  for (std::string bad : {std::string(), std::string(256, 'x'), std::string(300, 'y'), std::string("\xff"),
                          std::string("\xc0\x80"), std::string("a\xed\xa0\x80")}) {
    EXPECT_THROW(s.join(id, bad), std::invalid_argument) << bad.size();
    EXPECT_THROW(s.publish(bad, "x"), std::invalid_argument);
    EXPECT_THROW((void)s.room_size(bad), std::invalid_argument);
  }
  for (std::string ok : {std::string(">"), std::string("*"), std::string("a.b"), std::string("with space"),
                         std::string("\xc3\xbc\xe2\x82\xac"), std::string(255, 'z')})
    EXPECT_FALSE(s.join(id, ok)) << ok;
  EXPECT_EQ(s.rooms_of(id).size(), 6u);
}

// ---- across nodes, on each bus ----

class ClusterRooms : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "nats") nats_ = std::make_unique<nats_server>();
    env_ = std::make_unique<room_env>([this](server_builder& b, std::size_t i) {
      const std::string name = "node-" + std::to_string(i);
      if (nats_) {
        nats_cluster_config c;
        c.servers = {nats_->url()};
        c.cluster_name = "rooms-test";
        c.node_name = name;
        c.presence_interval = 100ms;
        b.cluster(c);
      } else {
        b.cluster(hub_.connect(), cluster_node_options{"rooms-test", name, 100ms});
      }
    });
  }
  void TearDown() override { env_.reset(); }
  room_env& env() { return *env_; }

  in_process_hub hub_;
  std::unique_ptr<nats_server> nats_;
  std::unique_ptr<room_env> env_;
};

TEST_P(ClusterRooms, OnePublishReachesEveryOtherMemberOnBothNodesOnce) {
  constexpr std::size_t per_node = 50;
  env().add_node();
  env().add_node();
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t i = 0; i < per_node; ++i) {
      auto k = env().add_member(n);
      ASSERT_FALSE(env().srv(n).join(env().m(k).id, "lobby"));
    }
  ASSERT_TRUE(env().wait_room_size("lobby", 2 * per_node));
  EXPECT_NE(env().m(0).id.value >> 40, env().m(per_node).id.value >> 40);  // node ids inside session ids

  auto r = env().srv(0).publish("lobby", "hello", {}, env().m(0).id);
  EXPECT_EQ(r.local, per_node - 1);
  EXPECT_FALSE(r.cluster);
  (void)env().srv(0).publish("lobby", "end");  // everyone, the sender too: the marker
  for (std::size_t k = 0; k < env().members(); ++k) {
    ASSERT_TRUE(env().wait_last(k, "end")) << "member " << k;
    EXPECT_EQ(env().got(k), k == 0 ? only({"end"}) : only({"hello", "end"})) << "member " << k;
  }
  auto a = env().srv(0).stats(), b = env().srv(1).stats();
  EXPECT_EQ(a.cluster_state, "connected");
  EXPECT_GE(a.cluster_messages_out, 2u);
  EXPECT_GE(b.cluster_messages_in, 2u);
  EXPECT_EQ(b.room_deliveries, 2 * per_node);
}

TEST_P(ClusterRooms, PublishesFromOneMemberArriveInOrderEverywhere) {
  env().add_node();
  env().add_node();
  for (std::size_t n = 0; n < 2; ++n)
    for (int i = 0; i < 3; ++i) {
      auto k = env().add_member(n);
      ASSERT_FALSE(env().srv(n).join(env().m(k).id, "ordered"));
    }
  ASSERT_TRUE(env().wait_room_size("ordered", 6));
  constexpr int n = 1000;
  for (int i = 0; i < n; ++i) (void)env().srv(0).publish("ordered", std::to_string(i), {}, env().m(0).id);
  for (std::size_t k = 1; k < env().members(); ++k) {
    ASSERT_TRUE(env().wait_last(k, std::to_string(n - 1))) << "member " << k;
    auto got = env().got(k);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(n)) << "member " << k;
    for (int i = 0; i < n; ++i) ASSERT_EQ(got[i], std::to_string(i)) << "member " << k;
  }
}

TEST_P(ClusterRooms, WildcardLikeNamesNeverMatchOtherRooms) {
  env().add_node();
  env().add_node();
  const std::vector<std::string> rooms{"a", "a.b", ">", "*", "a.*", "a b"};
  for (auto& room : rooms) {
    auto k = env().add_member(1);  // every member on node 1; node 0 publishes
    ASSERT_FALSE(env().srv(1).join(env().m(k).id, room));
  }
  for (auto& room : rooms) ASSERT_TRUE(env().wait_room_size(room, 1)) << room;
  for (auto& room : rooms) (void)env().srv(0).publish(room, "to " + room);
  for (std::size_t k = 0; k < rooms.size(); ++k) {
    ASSERT_TRUE(env().wait_last(k, "to " + rooms[k]));
    ASSERT_TRUE(env().sync(k));
    EXPECT_EQ(env().got(k), only({"to " + rooms[k], "sync"})) << "member of " << rooms[k];
  }
}

TEST_P(ClusterRooms, SendRequestAndCloseReachASessionOnAnotherNode) {
  env().add_node();
  env().add_node();
  env().add_member(0);
  auto k = env().add_member(1, [](client_builder& b) {
    b.on_request([](request& r) { (void)r.respond("pong:" + std::string(r.text())); });
  });
  auto k2 = env().add_member(1);
  const auto remote = env().m(k).id;
  auto& a = env().srv(0);

  ASSERT_FALSE(a.send(remote, "direct"));
  ASSERT_TRUE(env().wait_last(k, "direct"));

  auto [ec, reply] = a.request(remote, as_bytes("ping"), 5s, boost::asio::use_future).get();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(as_string(reply.payload), "pong:ping");

  ASSERT_FALSE(a.close(env().m(k2).id, "bye from node 0"));
  ASSERT_TRUE(env().wait_closed(1, env().m(k2).id));

  env().m(k).c.disconnect();
  ASSERT_TRUE(env().wait_closed(1, remote));
  EXPECT_EQ(std::get<0>(a.request(remote, as_bytes("ping"), 5s, boost::asio::use_future).get()),
            errc::unknown_session);
  // A node that does not exist never answers: the request times out.
  const session_id nowhere{(remote.value ^ (std::uint64_t{0x5a5a5a} << 40))};
  EXPECT_EQ(std::get<0>(a.request(nowhere, as_bytes("ping"), 300ms, boost::asio::use_future).get()), errc::timeout);
}

INSTANTIATE_TEST_SUITE_P(Bus, ClusterRooms, ::testing::Values("in_process", "nats"),
                         [](const auto& info) { return info.param; });

TEST(Rooms, ClusterOptionsAreChecked) {
  in_process_hub hub;
  server_builder b;
  EXPECT_THROW(b.cluster(nullptr), std::invalid_argument);
  EXPECT_THROW(b.cluster(hub.connect(), cluster_node_options{"", "n", 100ms}), std::invalid_argument);
  EXPECT_THROW(b.cluster(hub.connect(), cluster_node_options{"c", "n", 0ms}), std::invalid_argument);
  nats_cluster_config none;
  none.servers.clear();
  EXPECT_THROW(b.cluster(none), std::invalid_argument);
}

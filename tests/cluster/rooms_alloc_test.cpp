// Counts heap allocations on the server's loop thread per publish to a room of 100
// members, once warm: the fan-out may allocate per publish (the one encoded buffer), never
// per member. Measured as the echo path is (tests/tcp/tcp_alloc_test.cpp).
#include "support/test_support.hpp"

#include "support/alloc_counter.hpp"

#include <memory>

using namespace msgtrans;
using namespace msgtrans::test;
using msgtrans::test::alloc::allocations;
using msgtrans::test::alloc::counting;

TEST(RoomAllocations, FanOutAllocatesPerPublishNotPerMember) {
  constexpr int members = 100;
  server* sp = nullptr;
  waiter w;
  int joined = 0;
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .threads(1)
               .on_connected([&](const connection_info& i) {
                 (void)sp->join(i.session, "room");
                 w.update([&] { ++joined; });
               })
               .on_message([&](const message& m) {
                 counting = true;  // the loop thread, from the first publish on
                 (void)sp->publish("room", m.payload, {}, m.session);
               })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  std::vector<std::unique_ptr<raw_peer>> peers;
  for (int i = 0; i < members; ++i) peers.push_back(std::make_unique<raw_peer>(address_of(s)));
  ASSERT_TRUE(w.wait([&] { return joined == members; }));
  const auto msg = encode_packet(packet_type::one_way, 1, std::string(64, 'p'));
  auto round = [&](int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(peers[0]->write(msg));
      for (int k = 1; k < members; ++k) ASSERT_TRUE(peers[k]->read_packet()) << "member " << k;
    }
  };
  round(100);  // warm-up: queues and buffers grow to their working size
  const auto before = allocations.load();
  constexpr int publishes = 500;
  round(publishes);
  const double per_publish = static_cast<double>(allocations.load() - before) / publishes;
  std::printf("server-loop allocations per publish to %d members: %.3f (%.5f per member)\n", members - 1,
              per_publish, per_publish / (members - 1));
  EXPECT_LT(per_publish / (members - 1), 0.05);  // a constant per publish, not one per member
}

// Counts heap allocations made on the server's loop thread per echoed message once the
// connection is warm: the steady-state echo path should make none.
#include "support/test_support.hpp"

#include "support/alloc_counter.hpp"

#include <memory>

using namespace msgtrans;
using namespace msgtrans::test;
using msgtrans::test::alloc::allocations;
using msgtrans::test::alloc::counting;

TEST(TcpAllocations, SteadyStateEchoPathAllocatesNothing) {
  server* sp = nullptr;
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .threads(1)
               .on_connected([](const connection_info&) { counting = true; })  // the loop thread
               .on_message([&sp](const message& m) { (void)sp->send(m.session, m.payload); })
               .on_request([](request& r) { (void)r.respond(r.payload); })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  raw_peer p(address_of(s));
  auto one_way = encode_packet(packet_type::one_way, 1, std::string(64, 'o'));
  auto req = encode_packet(packet_type::request, 2, std::string(64, 'r'));
  auto round = [&](int n) {
    for (int i = 0; i < n; ++i) {
      p.write(one_way);
      p.write(req);
      ASSERT_TRUE(p.read_packet());
      ASSERT_TRUE(p.read_packet());
    }
  };
  round(200);  // warm-up: buffers grow to their working size
  const auto before = allocations.load();
  round(2000);
  const auto per_message = static_cast<double>(allocations.load() - before) / 4000.0;
  std::printf("server-loop allocations per echoed message: %.4f\n", per_message);
  EXPECT_LT(per_message, 0.01);
}

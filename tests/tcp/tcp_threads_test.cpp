// Hammers send, request and close from 8 threads (run under ThreadSanitizer in CI).
#include "support/test_support.hpp"

#include <boost/asio/use_future.hpp>

#include <thread>

using namespace msgtrans;
using namespace msgtrans::test;

TEST(TcpThreads, SendRequestCloseFromEightThreads) {
  server* sp = nullptr;
  std::atomic<int> messages{0};
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .threads(2)
               .on_message([&](const message&) { ++messages; })
               .on_request([](request& r) { r.respond(r.payload); })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  constexpr int clients = 4;
  std::vector<client> cs;
  auto rt = std::make_shared<runtime>(2);
  for (int i = 0; i < clients; ++i) {
    cs.push_back(client_builder{}
                     .connect_to(tcp_client_config{address_of(s)})
                     .use_runtime(rt)
                     .on_request([](request& r) { r.respond(r.payload); })
                     .build());
    ASSERT_FALSE(cs.back().connect());
  }
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto& c = cs[t % clients];
      for (int i = 0; i < 200; ++i) {
        (void)c.send(as_bytes("m"));
        auto r = c.call(as_bytes("r"), 5s);
        (r ? ok : failed)++;
        if (t == 7 && i % 50 == 0) {
          for (auto id : sp->sessions()) {
            auto f = sp->request(id, as_bytes("srv"), 5s, boost::asio::use_future);
            (void)f;
            (void)sp->send(id, as_bytes("push"));
          }
          sp->broadcast(as_bytes("all"));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 8 * 200);
  EXPECT_EQ(failed.load(), 0);
  // Close from many threads at once while sending.
  std::vector<std::thread> closers;
  for (auto id : s.sessions()) closers.emplace_back([&, id] { s.close(id); });
  for (int t = 0; t < 4; ++t) closers.emplace_back([&, t] { (void)cs[t].send(as_bytes("late")); });
  for (auto& th : closers) th.join();
  waiter w;
  EXPECT_TRUE(w.wait([&] { return s.sessions().empty(); }, 5s) || s.sessions().empty());
  cs.clear();
}

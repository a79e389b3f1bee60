// The thread rules of threads.hpp that return errc::wrong_thread, each from a handler
// (a loop thread), and the same calls from a plain thread, which work.
#include "support/test_support.hpp"

#include <future>

using namespace msgtrans;
using namespace msgtrans::test;

TEST(Threads, WrongThreadMessageSaysWhatToDo) {
  const std::string m = std::error_code(errc::wrong_thread).message();
  EXPECT_NE(m.find("loop thread"), std::string::npos) << m;
  EXPECT_NE(m.find("async_"), std::string::npos) << m;
}

TEST(Threads, ClientConnectAndCallInAClientHandlerReturnWrongThread) {
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .threads(1)
               .on_request([](request& r) { (void)r.respond(r.payload); })
               .on_connected([](const connection_info&) {})
               .build();
  ASSERT_FALSE(s.start());
  std::promise<std::pair<std::error_code, std::error_code>> got;
  client* cp = nullptr;
  auto c = client_builder{}
               .connect_to(tcp_client_config{address_of(s)})
               .on_message([&](const message&) {
                 const auto connect_ec = cp->connect();
                 auto call = cp->call(as_bytes("x"));
                 got.set_value({connect_ec.code, call ? std::error_code{} : call.error()});
               })
               .build();
  cp = &c;
  ASSERT_FALSE(c.connect());  // from this thread: fine
  ASSERT_TRUE(c.call(as_bytes("from a plain thread")));
  const auto sid = s.sessions().at(0);
  ASSERT_FALSE(s.send(sid, as_bytes("wake the handler")));
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready) << "the handler deadlocked";
  auto [connect_ec, call_ec] = f.get();
  EXPECT_EQ(connect_ec, errc::wrong_thread);
  EXPECT_EQ(call_ec, errc::wrong_thread);
}

TEST(Threads, ServerStopInAHandlerReturnsWrongThreadAndStopsNothing) {
  std::promise<std::error_code> got;
  server* sp = nullptr;
  auto s = server_builder{}
               .listen(tcp_server_config{"127.0.0.1:0"})
               .threads(2)
               .on_message([&](const message&) { got.set_value(sp->stop()); })
               .on_request([](request& r) { (void)r.respond(r.payload); })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  auto c = client_builder{}.connect_to(tcp_client_config{address_of(s)}).build();
  ASSERT_FALSE(c.connect());
  ASSERT_FALSE(c.send(as_bytes("stop, please")));
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), errc::wrong_thread);
  EXPECT_TRUE(c.call(as_bytes("still serving"))) << "the server kept running";
  EXPECT_FALSE(s.stop()) << "from this thread it stops";
}

TEST(Threads, WaitModeSendInAHandlerReturnsWrongThreadWhenItWouldWait) {
  // A peer that never reads: the client's queue fills past the mark.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acc(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  session_options o;
  o.write_high_water = 64 * 1024;
  o.backpressure = backpressure_mode::wait;
  std::promise<std::pair<int, std::error_code>> got;
  client* cp = nullptr;
  auto c = client_builder{}
               .connect_to(tcp_client_config{"127.0.0.1:" + std::to_string(acc.local_endpoint().port())})
               .options(o)
               .on_connected([&](const connection_info&) {
                 // On the loop: nothing is written while this runs, so the queue only grows.
                 const std::string chunk(16 * 1024, 'w');
                 int ok = 0;
                 std::error_code ec;
                 while (!ec && ok < 1000) {
                   ec = cp->send(as_bytes(chunk));
                   if (!ec) ++ok;
                 }
                 got.set_value({ok, ec});
               })
               .build();
  cp = &c;
  ASSERT_FALSE(c.connect());
  boost::asio::ip::tcp::socket peer(io);
  acc.accept(peer);
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  auto [ok, ec] = f.get();
  EXPECT_GE(ok, 1) << "sends that fit are queued as usual";
  EXPECT_LT(ok, 1000);
  EXPECT_EQ(ec, errc::wrong_thread);
}

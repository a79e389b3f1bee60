// The README's API tour, compiled and run, so the README cannot drift from the API.
// Ports are picked by the system here instead of the README's fixed 8001/8002.
#include <msgtrans/msgtrans.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <future>
#include <iostream>

using namespace std::chrono_literals;

namespace {

int server_and_client() {
  std::promise<msgtrans::session_id> first;
  std::atomic<bool> seen{false};
  auto server = msgtrans::server_builder{}
      .listen(msgtrans::tcp_server_config{"127.0.0.1:0"})
      .listen(msgtrans::tcp_server_config{"127.0.0.1:0"})   // several listeners, any mix
      .max_connections(10000)
      .on_connected([&](const msgtrans::connection_info& i) { if (!seen.exchange(true)) first.set_value(i.session); })
      .on_message([](const msgtrans::message& m) { (void)m.payload; (void)m.biz_type(); (void)m.ext_header; })
      .on_request([](msgtrans::request& req) { req.respond(req.payload); })
      .on_closed([](msgtrans::session_id, const msgtrans::close_info& why) { (void)why.reason; (void)why.detail; })
      .build();
  if (auto e = server.start()) { std::cerr << e.message() << "\n"; return 1; }
  const auto address = server.local_addresses().at(0).second;

  auto client = msgtrans::client_builder{}
      .connect_to(msgtrans::tcp_client_config{address})
      .connect_timeout(3s)
      .reconnect({.max_attempts = 5, .auto_reconnect = true})
      .on_message([](const msgtrans::message&) { /* pushed by the server */ })
      .on_request([](msgtrans::request& r) { r.respond("client here"); })
      .build();
  if (auto e = client.connect()) { std::cerr << e.message() << "\n"; return 1; }  // "connect to 127.0.0.1:8001: Connection refused"
  client.send("Hello, MsgTrans!");
  auto reply = client.call("What time is it?");                  // blocking, 10 s default
  if (!reply || msgtrans::as_string(reply->payload) != "What time is it?") return 1;

  boost::asio::io_context io;
  bool coro_ok = false;
  boost::asio::co_spawn(io, [&]() -> boost::asio::awaitable<void> {
    auto [ec, pkt] = co_await client.request(msgtrans::as_bytes("hi"), 2s,
                                             boost::asio::as_tuple(boost::asio::use_awaitable));
    coro_ok = !ec && msgtrans::as_string(pkt.payload) == "hi";
  }, boost::asio::detached);
  io.run();
  if (!coro_ok) return 1;

  auto session = first.get_future().get();
  server.send(session, "hello");                                   // one-way
  msgtrans::send_options o;  o.biz_type = 7;  o.flags = msgtrans::flags::high_priority;
  server.send(session, msgtrans::as_bytes("urgent"), o);
  server.broadcast(msgtrans::as_bytes("to everyone"));            // encoded once
  std::promise<std::string> answer;
  server.request(session, msgtrans::as_bytes("ping"), 5s,         // server -> client request
                 [&](std::error_code ec, msgtrans::packet reply) {
                   answer.set_value(ec ? ec.message() : std::string(msgtrans::as_string(reply.payload)));
                 });
  if (answer.get_future().get() != "client here") return 1;
  client.disconnect();                                             // flushes first
  server.close(session, "bye");
  server.stop(5s);                                                 // graceful
  return 0;
}

int event_stream() {
  msgtrans::tcp_server_config cfg{"127.0.0.1:0"};
  auto server = msgtrans::server_builder{}.listen(cfg).events(4096).build();
  server.start();
  std::thread user([address = server.local_addresses().at(0).second] {
    auto c = msgtrans::client_builder{}.connect_to(msgtrans::tcp_client_config{address}).build();
    if (!c.connect()) (void)c.call("via the event stream");
  });
  boost::asio::io_context io;
  bool answered = false;
  boost::asio::co_spawn(io, [&]() -> boost::asio::awaitable<void> {
    for (;;) {
      auto [ec, ev] = co_await server.events().next(boost::asio::use_awaitable);  // or wait_for(timeout)
      if (ec) break;                                                              // the server stopped
      if (auto* m = std::get_if<msgtrans::message_event>(&ev)) server.send(m->session, m->packet.payload);
      if (auto* r = std::get_if<msgtrans::request_event>(&ev)) {
        r->reply.respond(r->packet.payload);
        answered = true;
        break;
      }
    }
  }, boost::asio::detached);
  io.run();
  user.join();
  server.stop();
  return answered ? 0 : 1;
}

}  // namespace

int main() {
  if (int rc = server_and_client()) return std::fprintf(stderr, "server/client tour failed\n"), rc;
  if (int rc = event_stream()) return std::fprintf(stderr, "event stream tour failed\n"), rc;
  std::printf("readme tour: ok\n");
  return 0;
}

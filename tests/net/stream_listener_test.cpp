// net::stream_listener over real loopback sockets.
#include "net/stream_listener.hpp"

#include "net/address.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace asio = boost::asio;
using asio::ip::tcp;
using msgtrans::errc;
using msgtrans::error_info;
using msgtrans::transport_context;
using msgtrans::net::stream_listener;
using msgtrans::net::stream_listener_options;

namespace {

struct fixture {
  // conn_loop outlives accept_loop: an accept still pending when accept_loop is destroyed
  // holds a socket made for conn_loop.
  asio::io_context conn_loop, accept_loop;
  transport_context ctx;

  error_info start(stream_listener& l, const stream_listener_options& o,
                   stream_listener::socket_handler h = [](tcp::socket, asio::io_context&) {}) {
    return l.start(accept_loop, [this]() -> asio::io_context& { return conn_loop; }, ctx, o, std::move(h));
  }
  static tcp::endpoint endpoint_of(const stream_listener& l) {
    std::string why;
    auto a = msgtrans::net::address::parse(l.local_address(), why);
    return {asio::ip::make_address(a->host), a->port};
  }
};

stream_listener_options on(std::string bind) {
  stream_listener_options o;
  o.protocol = "test";
  o.bind_address = std::move(bind);
  return o;
}

}  // namespace

TEST(net_stream_listener, hands_each_accepted_socket_over_bound_to_the_picked_loop) {
  fixture f;
  stream_listener l;
  int accepted = 0;
  bool right_loop = false;
  tcp::endpoint peer_seen;
  auto e = f.start(l, on("127.0.0.1:0"), [&](tcp::socket s, asio::io_context& loop) {
    ++accepted;
    right_loop = &loop == &f.conn_loop && s.get_executor() == f.conn_loop.get_executor();
    peer_seen = s.remote_endpoint();
    f.accept_loop.stop();
  });
  ASSERT_FALSE(e) << e.detail;
  ASSERT_NE(l.local_address().find("127.0.0.1:"), std::string::npos);
  EXPECT_NE(l.local_address(), "127.0.0.1:0");  // the real port
  asio::io_context client;
  tcp::socket c(client);
  c.connect(fixture::endpoint_of(l));
  f.accept_loop.run();
  EXPECT_EQ(accepted, 1);
  EXPECT_TRUE(right_loop);
  EXPECT_EQ(peer_seen, c.local_endpoint());
}

TEST(net_stream_listener, a_bad_or_unresolvable_address_is_an_address_error_naming_it) {
  fixture f;
  stream_listener a, b;
  auto e1 = f.start(a, on("127.0.0.1"));
  EXPECT_EQ(e1.code, errc::address_error);
  EXPECT_NE(e1.detail.find("test: bad address '127.0.0.1'"), std::string::npos) << e1.detail;
  auto e2 = f.start(b, on("no-such-host.invalid:1"));
  EXPECT_EQ(e2.code, errc::address_error);
  EXPECT_NE(e2.detail.find("no-such-host.invalid"), std::string::npos) << e2.detail;
}

TEST(net_stream_listener, a_taken_port_is_bind_failed_unless_both_reuse_it) {
  fixture f;
  stream_listener first;
  ASSERT_FALSE(f.start(first, on("127.0.0.1:0")));
  stream_listener second;
  auto e = f.start(second, on(first.local_address()));
  EXPECT_EQ(e.code, errc::bind_failed);
  EXPECT_NE(e.detail.find(first.local_address()), std::string::npos) << e.detail;

  auto shared = on("127.0.0.1:0");
  shared.reuse_port = true;
  stream_listener p, q;
  ASSERT_FALSE(f.start(p, shared));
  shared.bind_address = p.local_address();
  auto eq = f.start(q, shared);
  EXPECT_FALSE(eq) << eq.detail;
  EXPECT_EQ(q.local_address(), p.local_address());
}

TEST(net_stream_listener, stop_from_another_thread_closes_the_port_and_no_handler_runs_after) {
  fixture f;
  auto guard = asio::make_work_guard(f.accept_loop);
  std::thread loop([&] { f.accept_loop.run(); });
  stream_listener l;
  std::atomic<int> accepted{0};
  std::promise<void> first;
  std::promise<error_info> started;
  asio::post(f.accept_loop, [&] {
    started.set_value(f.start(l, on("127.0.0.1:0"), [&](tcp::socket, asio::io_context&) {
      if (accepted++ == 0) first.set_value();
    }));
  });
  auto e = started.get_future().get();
  ASSERT_FALSE(e) << e.detail;
  const auto ep = fixture::endpoint_of(l);
  asio::io_context client;
  tcp::socket c1(client);
  c1.connect(ep);
  first.get_future().wait();
  l.stop();  // from this thread
  // The close runs on the accept loop; once a no-op posted after it has run, the port
  // refuses connections.
  std::promise<void> drained;
  asio::post(f.accept_loop, [&] { drained.set_value(); });
  drained.get_future().wait();
  tcp::socket c2(client);
  boost::system::error_code ec;
  c2.connect(ep, ec);
  EXPECT_EQ(ec, asio::error::connection_refused);
  guard.reset();
  loop.join();
  EXPECT_EQ(accepted.load(), 1);
  l.stop();  // idempotent
}

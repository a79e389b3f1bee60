// Server and client over real TCP sockets on loopback: messages, requests both ways,
// events, limits, timeouts, back-pressure, shutdown, options.
#include "support/test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <dirent.h>
#include <future>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <thread>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

tcp_server_config any_port() { return tcp_server_config{"127.0.0.1:0"}; }

server make_echo(std::function<void(server_builder&)> tweak = {}) {
  server_builder b;
  b.listen(any_port()).threads(2);
  b.on_request([](request& r) { r.respond(r.payload, send_options{r.biz_type(), r.ext_header, r.header.flags}); });
  if (tweak) tweak(b);
  return b.build();
}

client make_client(const server& s, std::function<void(client_builder&)> tweak = {}) {
  client_builder b;
  b.connect_to(tcp_client_config{address_of(s)});
  if (tweak) tweak(b);
  return b.build();
}

}  // namespace

TEST(Tcp, RequestResponseRoundTrip) {
  auto s = make_echo();
  ASSERT_FALSE(s.start());
  auto c = make_client(s);
  ASSERT_FALSE(c.connect());
  EXPECT_TRUE(c.is_connected());
  auto r = c.call(as_bytes("What time is it?"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_string(r->payload), "What time is it?");
  EXPECT_EQ(r->type, packet_type::response);
  auto st = s.stats();
  EXPECT_EQ(st.active, 1u);
  EXPECT_EQ(st.active_by_protocol["tcp"], 1u);
  EXPECT_GE(st.packets_in, 1u);
}

TEST(Tcp, ReusePortLetsTwoServersShareOnePort) {
  auto echo = [](tcp_server_config c) {
    return server_builder{}.listen(c).threads(1).on_request([](request& r) { (void)r.respond(r.payload); }).build();
  };
  tcp_server_config cfg{"127.0.0.1:0"};
  cfg.reuse_port = true;
  auto a = echo(cfg);
  ASSERT_FALSE(a.start());
  cfg.bind_address = address_of(a);
  auto without = cfg;
  without.reuse_port = false;
  auto b = echo(without);  // the port is taken, and b does not ask to share it
  auto failed = b.start();
  EXPECT_EQ(failed.code, std::error_code(errc::bind_failed)) << failed.detail;
  auto c = echo(cfg);
  auto started = c.start();
  ASSERT_FALSE(started) << started.message();
  EXPECT_EQ(address_of(c), address_of(a));
  // The kernel spreads connections over both servers (by a hash of the addresses): with
  // 32 connections, all of them landing on one server has odds of 2^-31.
  for (int i = 0; i < 32; ++i) {
    client cl = client_builder{}.connect_to(tcp_client_config{address_of(a)}).build();
    ASSERT_FALSE(cl.connect());
    auto r = cl.call(as_bytes("shared " + std::to_string(i)));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(as_string(r->payload), "shared " + std::to_string(i));
  }
  EXPECT_GT(a.stats().accepted_total, 0u);
  EXPECT_GT(c.stats().accepted_total, 0u);
  EXPECT_EQ(a.stats().accepted_total + c.stats().accepted_total, 32u);
}

TEST(Tcp, RequestWithCoroutineToken) {
  auto s = make_echo();
  ASSERT_FALSE(s.start());
  auto c = make_client(s);
  ASSERT_FALSE(c.connect());
  boost::asio::io_context io;
  std::string got;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        auto [ec, p] = co_await c.request(as_bytes("coro"), 5s, boost::asio::as_tuple(boost::asio::use_awaitable));
        if (!ec) got = std::string(as_string(p.payload));
      },
      boost::asio::detached);
  io.run();
  EXPECT_EQ(got, "coro");
}

TEST(Tcp, OneWayEchoKeepsBizTypeExtHeaderFlags) {
  server* sp = nullptr;
  auto s = server_builder{}
               .listen(any_port())
               .on_message([&sp](const message& m) {
                 sp->send(m.session, m.payload, send_options{m.biz_type(), m.ext_header, m.header.flags});
               })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  waiter w;
  std::vector<packet> got;
  auto c = make_client(s, [&](client_builder& b) {
    b.on_message([&](const message& m) { w.update([&] { got.push_back(m.copy()); }); });
  });
  ASSERT_FALSE(c.connect());
  send_options o;
  o.biz_type = 42;
  auto ext = as_bytes("route:abc");
  o.ext_header = ext;
  o.flags = flags::has_route_tag | 0x0100;  // an unknown bit travels untouched
  ASSERT_FALSE(c.send(as_bytes("hello"), o));
  ASSERT_TRUE(w.wait([&] { return got.size() == 1; }));
  EXPECT_EQ(as_string(got[0].payload), "hello");
  EXPECT_EQ(got[0].biz_type, 42);
  EXPECT_EQ(as_string(got[0].ext_header), "route:abc");
  EXPECT_EQ(got[0].flags, flags::has_route_tag | 0x0100);
  EXPECT_NE(got[0].message_id, 0u);
}

TEST(Tcp, ServerRequestsClient) {
  waiter w;
  std::optional<session_id> sid;
  auto s = server_builder{}
               .listen(any_port())
               .on_connected([&](const connection_info& i) { w.update([&] { sid = i.session; }); })
               .build();
  ASSERT_FALSE(s.start());
  auto c = make_client(s, [](client_builder& b) {
    b.on_request([](request& r) { r.respond("client says " + std::string(r.text())); });
  });
  ASSERT_FALSE(c.connect());
  ASSERT_TRUE(w.wait([&] { return sid.has_value(); }));
  auto f = s.request(*sid, as_bytes("ping"), 5s, boost::asio::use_future);
  // use_future with std::error_code first: errors throw, values arrive
  auto [ec, p] = f.get();  // std::error_code is not an exception to use_future: it comes first
  EXPECT_FALSE(ec);
  EXPECT_EQ(as_string(p.payload), "client says ping");
  auto info = s.info(*sid);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->endpoint.protocol, "tcp");
  EXPECT_GE(info->packets_in, 1u);
  EXPECT_GE(info->packets_out, 1u);
}

TEST(Tcp, SecondRespondReportsError) {
  waiter w;
  std::error_code first, second;
  bool done = false;
  auto s = server_builder{}
               .listen(any_port())
               .on_request([&](request& r) {
                 auto a = r.respond("one");
                 auto b = r.respond("two");
                 w.update([&] { first = a; second = b; done = true; });
               })
               .build();
  ASSERT_FALSE(s.start());
  auto c = make_client(s);
  ASSERT_FALSE(c.connect());
  auto r = c.call(as_bytes("x"));
  ASSERT_TRUE(r);
  EXPECT_EQ(as_string(r->payload), "one");
  ASSERT_TRUE(w.wait([&] { return done; }));
  EXPECT_FALSE(first);
  EXPECT_EQ(second, errc::already_responded);
}

TEST(Tcp, RespondFromAnotherThreadAndLateRespondAfterClose) {
  std::promise<responder> held;
  auto s = server_builder{}
               .listen(any_port())
               .on_request([&](request& r) {
                 if (r.text() == "later") held.set_value(r.take_responder());
                 else r.respond(r.payload);
               })
               .build();
  ASSERT_FALSE(s.start());
  auto c = make_client(s);
  ASSERT_FALSE(c.connect());
  auto pending = c.request(as_bytes("later"), 5s, boost::asio::use_future);
  responder rsp = held.get_future().get();
  std::thread([&] { EXPECT_FALSE(rsp.respond(as_bytes("from a thread"))); }).join();
  EXPECT_EQ(as_string(std::get<1>(pending.get()).payload), "from a thread");

  std::promise<responder> held2;
  auto s2 = server_builder{}
                .listen(any_port())
                .on_request([&](request& r) { held2.set_value(r.take_responder()); })
                .build();
  ASSERT_FALSE(s2.start());
  auto c2 = make_client(s2);
  ASSERT_FALSE(c2.connect());
  auto lost = c2.request(as_bytes("x"), 5s, boost::asio::use_future);
  responder r2 = held2.get_future().get();
  c2.disconnect();
  // The request failed at once on the client...
  EXPECT_EQ(std::get<0>(lost.get()), errc::connection_closed);
  // ...and a late answer on the server is an error, not a silent drop.
  waiter w;
  ASSERT_TRUE(w.wait([&] { return s2.sessions().empty(); }, 5s) || s2.sessions().empty());
  EXPECT_EQ(r2.respond(as_bytes("too late")), errc::connection_closed);
}

TEST(Tcp, RequestTimesOutWithinBoundAndLeavesNothing) {
  auto s = server_builder{}.listen(any_port()).on_request([](request&) { /* never answers */ }).build();
  ASSERT_FALSE(s.start());
  auto c = make_client(s);
  ASSERT_FALSE(c.connect());
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.call(as_bytes("x"), 200ms);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::timeout);
  EXPECT_GE(took, 200ms);
  EXPECT_LE(took, 200ms + 20ms + 10ms);  // 10% + 10 ms
  EXPECT_EQ(c.stats().requests_in_flight, 0u);
  EXPECT_EQ(c.stats().request_timeouts, 1u);
}

TEST(Tcp, PendingRequestsFailAtOnceWhenServerCloses) {
  server* sp = nullptr;
  auto s = server_builder{}
               .listen(any_port())
               .on_request([&](request& r) { sp->close(r.session, "bye"); })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  waiter w;
  std::optional<close_info> closed;
  auto c = make_client(s, [&](client_builder& b) {
    b.on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); });
  });
  ASSERT_FALSE(c.connect());
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.call(as_bytes("x"), 10s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::connection_closed);
  ASSERT_TRUE(w.wait([&] { return closed.has_value(); }));
  EXPECT_EQ(closed->reason, close_reason::peer_closed);
  EXPECT_FALSE(c.is_connected());
  EXPECT_EQ(c.send(as_bytes("x")), errc::not_connected);
}

TEST(Tcp, EventStreamDeliversExactlyOneCloseForEachConnect) {
  auto s = server_builder{}.listen(any_port()).events(64).build();
  ASSERT_FALSE(s.start());
  {
    auto c = make_client(s);
    ASSERT_FALSE(c.connect());
    ASSERT_FALSE(c.send(as_bytes("m1")));
    c.disconnect();
  }
  int connected = 0, messages = 0, closed = 0;
  while (closed == 0) {
    auto e = s.events().wait_for(5s);
    ASSERT_TRUE(e) << "event missing";
    if (std::holds_alternative<connected_event>(*e)) ++connected;
    if (auto* m = std::get_if<message_event>(&*e)) {
      ++messages;
      EXPECT_EQ(as_string(m->packet.payload), "m1");
    }
    if (auto* ce = std::get_if<closed_event>(&*e)) {
      ++closed;
      EXPECT_EQ(ce->info.reason, close_reason::peer_closed);
    }
  }
  EXPECT_EQ(connected, 1);
  EXPECT_EQ(messages, 1);
  EXPECT_FALSE(s.events().try_next());
}

TEST(Tcp, EventStreamRequestCanBeAnswered) {
  auto s = server_builder{}.listen(any_port()).events(16).build();
  ASSERT_FALSE(s.start());
  auto c = make_client(s);
  ASSERT_FALSE(c.connect());
  auto f = c.request(as_bytes("q"), 5s, boost::asio::use_future);
  for (;;) {
    auto e = s.events().wait_for(5s);
    ASSERT_TRUE(e);
    if (auto* r = std::get_if<request_event>(&*e)) {
      EXPECT_FALSE(r->reply.respond(as_bytes("a")));
      break;
    }
  }
  EXPECT_EQ(as_string(std::get<1>(f.get()).payload), "a");
}

TEST(Tcp, MaxConnectionsRejectsAndCounts) {
  auto s = server_builder{}.listen(any_port()).max_connections(2).events(16).build();
  ASSERT_FALSE(s.start());
  raw_peer a(address_of(s)), b(address_of(s));
  for (int seen = 0; seen < 2;) {
    auto e = s.events().wait_for(5s);
    ASSERT_TRUE(e);
    if (std::holds_alternative<connected_event>(*e)) ++seen;
  }
  raw_peer extra(address_of(s));
  EXPECT_TRUE(extra.wait_closed());
  EXPECT_EQ(s.stats().rejected_by_limit, 1u);
  // The two admitted ones still work.
  a.write(encode_packet(packet_type::one_way, 1, "still here"));
  for (;;) {
    auto e = s.events().wait_for(5s);
    ASSERT_TRUE(e);
    if (auto* m = std::get_if<message_event>(&*e)) {
      EXPECT_EQ(as_string(m->packet.payload), "still here");
      break;
    }
  }
}

TEST(Tcp, PerListenerLimit) {
  tcp_server_config limited = any_port();
  limited.max_connections = 1;
  auto s = server_builder{}.listen(limited).listen(any_port()).build();
  ASSERT_FALSE(s.start());
  raw_peer a(address_of(s, 0));
  raw_peer b(address_of(s, 0));
  EXPECT_TRUE(b.wait_closed());
  raw_peer other(address_of(s, 1));  // the second listener has no own limit
  EXPECT_FALSE(other.wait_closed(300ms));
  EXPECT_EQ(s.stats().rejected_by_limit, 1u);
}

TEST(Tcp, TwoListenersOfOneProtocolAndBindErrorNamesAddress) {
  auto s = make_echo([](server_builder& b) { b.listen(any_port()); });
  ASSERT_FALSE(s.start());
  ASSERT_EQ(s.local_addresses().size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    client c = client_builder{}.connect_to(tcp_client_config{address_of(s, i)}).build();
    ASSERT_FALSE(c.connect());
    EXPECT_TRUE(c.call(as_bytes("x")));
  }
  auto taken = address_of(s);
  auto s2 = server_builder{}.listen(tcp_server_config{taken}).build();
  auto e = s2.start();
  EXPECT_EQ(e.code, errc::bind_failed);
  EXPECT_NE(e.detail.find(taken), std::string::npos) << e.detail;
}

TEST(Tcp, ConnectFailureAndTimeout) {
  // A port with nothing listening: refused fast.
  const auto port = unused_port();
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  client c = client_builder{}.connect_to(tcp_client_config{addr}).build();
  const auto e = c.connect();
  EXPECT_TRUE(e.code == std::errc::connection_refused) << e.code.message();
  // The detail names the address that refused, then the system's reason.
  EXPECT_EQ(e.detail, "connect to " + addr + ": " + std::make_error_code(std::errc::connection_refused).message());
  EXPECT_FALSE(c.is_connected());
  EXPECT_EQ(c.call(as_bytes("x")).error(), errc::not_connected);
}

TEST(Tcp, ReconnectPolicyRetriesWithBackoff) {
  const auto port = unused_port();
  reconnect_policy p;
  p.max_attempts = 3;
  p.initial_delay = 50ms;
  p.jitter = 0;
  client c = client_builder{}.connect_to(tcp_client_config{"127.0.0.1:" + std::to_string(port)}).reconnect(p).build();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.connect());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);  // 50 + 100 ms of backoff
}

TEST(Tcp, AutoReconnectAfterLossRestartsIds) {
  std::atomic<int> connects{0};
  server* sp = nullptr;
  std::vector<std::uint32_t> ids;
  waiter w;
  auto s = server_builder{}
               .listen(any_port())
               .on_message([&](const message& m) {
                 w.update([&] { ids.push_back(m.message_id()); });
                 if (m.text() == "kick") sp->close(m.session);
               })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  reconnect_policy p;
  p.auto_reconnect = true;
  p.max_attempts = 5;
  p.initial_delay = 10ms;
  auto c = make_client(s, [&](client_builder& b) {
    b.reconnect(p).on_connected([&](const connection_info&) { w.update([&] { ++connects; }); });
  });
  ASSERT_FALSE(c.connect());
  ASSERT_FALSE(c.send(as_bytes("a")));
  ASSERT_FALSE(c.send(as_bytes("kick")));
  ASSERT_TRUE(w.wait([&] { return connects.load() == 2; }));
  ASSERT_TRUE(w.wait([&] { return c.is_connected(); }, 5s) || c.is_connected());
  ASSERT_FALSE(c.send(as_bytes("b")));
  ASSERT_TRUE(w.wait([&] { return ids.size() == 3; }));
  EXPECT_EQ(ids[0], 1u);
  EXPECT_EQ(ids[1], 2u);
  EXPECT_EQ(ids[2], 1u);  // the counter restarted with the new connection
}

TEST(Tcp, SlowReaderGetsQueueFullAndServerStaysBounded) {
  session_options o;
  o.write_high_water = 256 * 1024;
  server* sp = nullptr;
  std::atomic<int> full{0};
  waiter w;
  auto s = server_builder{}
               .listen(any_port())
               .options(o)
               .on_message([&](const message& m) {
                 // Echo, as a naive server would, to a peer that never reads.
                 if (sp->send(m.session, m.payload) == errc::queue_full) w.update([&] { ++full; });
               })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  raw_peer p(address_of(s));
  int rcv = 4096;
  ::setsockopt(p.socket().native_handle(), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  std::string payload(16 * 1024, 'x');
  auto pkt = encode_packet(packet_type::one_way, 1, payload);
  // Keep writing until the server stops reading us (our send buffer fills) — bounded.
  p.socket().non_blocking(true);
  std::size_t sent = 0;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline && sent < 256u * 1024 * 1024) {
    boost::system::error_code ec;
    const std::size_t off = sent % pkt.size();  // keep the stream whole across partial writes
    auto n = p.socket().write_some(boost::asio::buffer(pkt.data() + off, pkt.size() - off), ec);
    if (ec == boost::asio::error::would_block) {
      pollfd pfd{p.socket().native_handle(), POLLOUT, 0};
      if (::poll(&pfd, 1, 500) == 0) break;  // the server stopped reading: back-pressure reached us
      continue;
    }
    ASSERT_FALSE(ec) << ec.message();
    sent += n;
  }
  EXPECT_LT(sent, 256u * 1024 * 1024) << "server never pushed back";
  EXPECT_GT(s.stats().bytes_in, 0u);
  // The server read only about what it could queue for us: the high-water mark plus
  // what the kernel buffers hold, not the unbounded amount we tried to send.
  EXPECT_LT(s.stats().bytes_in, 64u * 1024 * 1024);
  // Another client is served normally meanwhile.
  client c = client_builder{}.connect_to(tcp_client_config{address_of(s)}).build();
  ASSERT_FALSE(c.connect());
  ASSERT_FALSE(c.send(as_bytes("hi")));
}

TEST(Tcp, StopDeliversEverythingAcceptedBeforeIt) {
  waiter w;
  std::optional<session_id> sid;
  auto s = server_builder{}
               .listen(any_port())
               .on_connected([&](const connection_info& i) { w.update([&] { sid = i.session; }); })
               .build();
  ASSERT_FALSE(s.start());
  std::atomic<int> got{0};
  std::optional<close_info> closed;
  auto c = make_client(s, [&](client_builder& b) {
    b.on_message([&](const message&) { w.update([&] { ++got; }); })
        .on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); });
  });
  ASSERT_FALSE(c.connect());
  ASSERT_TRUE(w.wait([&] { return sid.has_value(); }));
  int accepted = 0;
  std::string payload(1000, 'p');
  for (int i = 0; i < 5000; ++i)
    if (!s.send(*sid, as_bytes(payload))) ++accepted;
  s.stop(5s);
  ASSERT_TRUE(w.wait([&] { return closed.has_value(); }));
  EXPECT_EQ(got.load(), accepted);
  EXPECT_GT(accepted, 0);
}

TEST(Tcp, ServerCloseEventReasonShutdownForEachSession) {
  std::atomic<int> opened{0}, shut{0};
  auto s = server_builder{}
               .listen(any_port())
               .on_connected([&](const connection_info&) { ++opened; })
               .on_closed([&](session_id, const close_info& i) {
                 if (i.reason == close_reason::shutdown) ++shut;
               })
               .build();
  ASSERT_FALSE(s.start());
  std::vector<client> cs;
  for (int i = 0; i < 5; ++i) {
    cs.push_back(make_client(s));
    ASSERT_FALSE(cs.back().connect());
  }
  waiter w;
  ASSERT_TRUE(w.wait([&] { return s.stats().active == 5; }, 5s) || s.stats().active == 5);
  s.stop(2s);
  EXPECT_EQ(opened.load(), 5);
  EXPECT_EQ(shut.load(), 5);
}

TEST(Tcp, HighPriorityOvertakesQueuedPackets) {
  server* sp = nullptr;
  auto s = server_builder{}
               .listen(any_port())
               .threads(1)
               .on_message([&](const message& m) {
                 // One loop turn: 50 normal packets queue up, then an urgent one.
                 for (int i = 0; i < 50; ++i) sp->send(m.session, as_bytes("normal"));
                 send_options urgent;
                 urgent.flags = flags::high_priority;
                 sp->send(m.session, as_bytes("urgent"), urgent);
               })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  raw_peer p(address_of(s));
  p.write(encode_packet(packet_type::one_way, 1, "go"));
  int pos = -1;
  for (int i = 0; i < 51; ++i) {
    auto pk = p.read_packet();
    ASSERT_TRUE(pk);
    if (as_string(pk->payload) == "urgent") pos = i;
  }
  EXPECT_EQ(pos, 0) << "the urgent packet should leave before the 50 queued ahead of it";
}

TEST(Tcp, CompressionPerSendAndAutomatic) {
  session_options o;
  o.auto_compress = compression::zstd;
  o.auto_compress_min = 1000;
  auto s = make_echo([&](server_builder& b) { b.options(o); });
  ASSERT_FALSE(s.start());
  auto c = make_client(s, [&](client_builder& b) { b.options(o); });
  ASSERT_FALSE(c.connect());
  std::string big(50000, 'z');
  auto r = c.call(as_bytes(big));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->compression, compression::zstd);  // the reply travelled compressed
  EXPECT_EQ(as_string(r->payload), big);
  EXPECT_LT(s.stats().bytes_in, 5000u);  // and so did the request
  send_options zlib;
  zlib.compression = compression::zlib;
  auto r2 = c.call(as_bytes(big), 5s, zlib);
  ASSERT_TRUE(r2);
  EXPECT_EQ(as_string(r2->payload), big);
  auto small = c.call(as_bytes("tiny"));
  ASSERT_TRUE(small);
  EXPECT_EQ(small->compression, compression::none);
}

TEST(Tcp, IdleTimeoutClosesAndHeartbeatKeepsAlive) {
  session_options srv;
  srv.idle_timeout = 300ms;
  srv.heartbeat_biz_type = 0xFE;  // recognise (and swallow) heartbeats
  waiter w;
  std::vector<close_info> closes;
  auto s = server_builder{}
               .listen(any_port())
               .options(srv)
               .on_closed([&](session_id, const close_info& i) { w.update([&] { closes.push_back(i); }); })
               .build();
  ASSERT_FALSE(s.start());
  session_options beat;
  beat.heartbeat_biz_type = 0xFE;
  beat.heartbeat_interval = 100ms;
  auto alive = make_client(s, [&](client_builder& b) { b.options(beat); });
  auto silent = make_client(s);
  ASSERT_FALSE(alive.connect());
  ASSERT_FALSE(silent.connect());
  ASSERT_TRUE(w.wait([&] { return !closes.empty(); }, 5s));
  EXPECT_EQ(closes[0].reason, close_reason::idle_timeout);
  EXPECT_FALSE(w.wait([&] { return closes.size() > 1; }, 1s));  // the heartbeating one stays
  EXPECT_TRUE(alive.is_connected());
  EXPECT_EQ(s.stats().unhandled, 0u);  // heartbeats never reached the application
}

TEST(Tcp, FirstPacketTimeoutClosesSilentPeers) {
  session_options o;
  o.first_packet_timeout = 200ms;
  waiter w;
  std::optional<close_info> closed;
  auto s = server_builder{}
               .listen(any_port())
               .options(o)
               .on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); })
               .build();
  ASSERT_FALSE(s.start());
  raw_peer p(address_of(s));
  EXPECT_TRUE(p.wait_closed(5s));
  ASSERT_TRUE(w.wait([&] { return closed.has_value(); }));
  EXPECT_EQ(closed->reason, close_reason::handshake_timeout);
}

namespace {
// Finds the server-side socket of a loopback connection in this process.
int server_fd_for(boost::asio::ip::tcp::socket& client) {
  auto local = client.local_endpoint();
  DIR* d = opendir("/proc/self/fd");
  int found = -1;
  while (auto* e = readdir(d)) {
    int fd = std::atoi(e->d_name);
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 && peer.sin_family == AF_INET &&
        ntohs(peer.sin_port) == local.port() && fd != client.native_handle())
      found = fd;
  }
  closedir(d);
  return found;
}
int get_int_opt(int fd, int level, int name) {
  int v = 0;
  socklen_t l = sizeof v;
  ::getsockopt(fd, level, name, &v, &l);
  return v;
}
}  // namespace

// A configuration mistake is thrown by make_*, naming the field; nothing is bound.
TEST(Tcp, MakeValidatesTheConfigurationNamingTheField) {
  tcp_server_config s;
  s.bind_address = "127.0.0.1";
  test::expect_invalid_naming([&] { make_listener(s); }, "tcp_server_config.bind_address");
  s.bind_address = "127.0.0.1:0";
  s.backlog = 0;
  test::expect_invalid_naming([&] { make_listener(s); }, "tcp_server_config.backlog");
  tcp_client_config c;
  c.address = ":8001";  // a listener may bind every address; a client must name a host
  test::expect_invalid_naming([&] { make_connector(c); }, "tcp_client_config.address");
  c.address = "[::1:8001";
  test::expect_invalid_naming([&] { make_connector(c); }, "tcp_client_config.address");
  // An empty host is every IPv4 address for a listener.
  tcp_server_config any;
  any.bind_address = ":0";
  auto srv = server_builder{}.listen(any).build();
  ASSERT_FALSE(srv.start());
  EXPECT_EQ(srv.local_addresses().at(0).second.rfind("0.0.0.0:", 0), 0u) << srv.local_addresses().at(0).second;
}

TEST(Tcp, SocketOptionsTakeEffect) {
  tcp_server_config on = any_port();
  on.nodelay = true;
  on.keep_alive_interval = std::chrono::seconds(17);
  tcp_server_config off = any_port();
  off.nodelay = false;
  off.keep_alive_interval = {};
  off.reuse_address = false;
  waiter w;
  int connected = 0;
  auto s = server_builder{}
               .listen(on)
               .listen(off)
               .on_connected([&](const connection_info&) { w.update([&] { ++connected; }); })
               .build();
  ASSERT_FALSE(s.start());
  raw_peer a(address_of(s, 0)), b(address_of(s, 1));
  ASSERT_TRUE(w.wait([&] { return connected == 2; }));
  int fa = server_fd_for(a.socket()), fb = server_fd_for(b.socket());
  ASSERT_GE(fa, 0);
  ASSERT_GE(fb, 0);
  EXPECT_EQ(get_int_opt(fa, IPPROTO_TCP, TCP_NODELAY), 1);
  EXPECT_EQ(get_int_opt(fa, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(get_int_opt(fa, IPPROTO_TCP, TCP_KEEPIDLE), 17);
  EXPECT_EQ(get_int_opt(fb, IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_EQ(get_int_opt(fb, SOL_SOCKET, SO_KEEPALIVE), 0);
  // SO_REUSEADDR on the listening sockets: find them by their bound ports.
  auto port_of = [](const std::string& a) { return std::stoi(a.substr(a.rfind(':') + 1)); };
  int lon = -1, loff = -1;
  DIR* d = opendir("/proc/self/fd");
  while (auto* e = readdir(d)) {
    int fd = std::atoi(e->d_name);
    sockaddr_in me{};
    socklen_t len = sizeof me;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len) != 0 || me.sin_family != AF_INET) continue;
    if (get_int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1) continue;
    if (ntohs(me.sin_port) == port_of(address_of(s, 0))) lon = fd;
    if (ntohs(me.sin_port) == port_of(address_of(s, 1))) loff = fd;
  }
  closedir(d);
  ASSERT_GE(lon, 0);
  ASSERT_GE(loff, 0);
  EXPECT_EQ(get_int_opt(lon, SOL_SOCKET, SO_REUSEADDR), 1);
  EXPECT_EQ(get_int_opt(loff, SOL_SOCKET, SO_REUSEADDR), 0);
}

TEST(Tcp, PresetsChangeRealSettings) {
  server_builder lat, thr, mem;
  lat.apply(preset::low_latency);
  thr.apply(preset::high_throughput);
  mem.apply(preset::low_memory);
  EXPECT_LT(lat.current_options().write_high_water, session_options{}.write_high_water);
  EXPECT_GT(thr.current_options().write_high_water, session_options{}.write_high_water);
  EXPECT_EQ(thr.current_options().auto_compress, compression::zstd);
  EXPECT_LT(mem.current_options().max_message_size, session_options{}.max_message_size);
  // low_memory's smaller message limit is enforced on the wire.
  auto s = server_builder{}.listen(any_port()).apply(preset::low_memory).events(8).build();
  ASSERT_FALSE(s.start());
  raw_peer p(address_of(s));
  p.write(encode_packet(packet_type::one_way, 1, std::string(2 * 1024 * 1024, 'x')));
  EXPECT_TRUE(p.wait_closed());
}

TEST(Tcp, BackpressureWaitModeBlocksInsteadOfFailing) {
  // A bare acceptor that reads nothing until told to.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acc(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = acc.local_endpoint().port();
  session_options o;
  o.write_high_water = 128 * 1024;
  o.backpressure = backpressure_mode::wait;
  o.request_timeout = 10s;
  client c = client_builder{}.connect_to(tcp_client_config{"127.0.0.1:" + std::to_string(port)}).options(o).build();
  ASSERT_FALSE(c.connect());
  boost::asio::ip::tcp::socket peer(io);
  acc.accept(peer);
  const std::string chunk(64 * 1024, 'w');
  constexpr int count = 200;  // 12.8 MiB: far past the mark and the kernel buffers
  std::atomic<int> sent{0}, failed{0};
  std::thread sender([&] {
    for (int i = 0; i < count; ++i) (c.send(as_bytes(chunk)) ? failed : sent)++;
  });
  // Read everything; the sender can only finish because it waited for room.
  std::size_t want = count * (chunk.size() + header_size), got = 0;
  std::vector<char> buf(1 << 16);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got < want && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{peer.native_handle(), POLLIN, 0};
    if (::poll(&pfd, 1, 1000) <= 0) continue;
    boost::system::error_code ec;
    got += peer.read_some(boost::asio::buffer(buf), ec);
    ASSERT_FALSE(ec) << ec.message();
  }
  sender.join();
  EXPECT_EQ(got, want);
  EXPECT_EQ(sent.load(), count);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(c.stats().queue_full_rejections, 0u);
}

TEST(Tcp, ExtHeaderLimitAndRequestTimeoutDefault) {
  session_options o;
  o.max_ext_header = 100;
  o.request_timeout = 150ms;
  waiter w;
  std::optional<close_info> closed;
  auto s = server_builder{}
               .listen(any_port())
               .options(o)
               .on_closed([&](session_id, const close_info& i) { w.update([&] { closed = i; }); })
               .build();
  ASSERT_FALSE(s.start());
  auto c = make_client(s, [&](client_builder& b) { b.options(o); });
  ASSERT_FALSE(c.connect());
  // No handler answers: the default timeout (150 ms here) applies.
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.call(as_bytes("x"));
  EXPECT_EQ(r.error(), errc::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 150ms + 15ms + 10ms);
  // An extension header over the server's limit closes the connection.
  std::string big(101, 'e');
  send_options so;
  so.ext_header = as_bytes(big);
  ASSERT_FALSE(c.send(as_bytes("x"), so));
  ASSERT_TRUE(w.wait([&] { return closed.has_value(); }));
  EXPECT_EQ(closed->error, errc::ext_header_too_large);
}

TEST(Tcp, ListenBacklogAndClientSocketOptions) {
  tcp_server_config cfg = any_port();
  cfg.backlog = 77;
  auto s = server_builder{}.listen(cfg).on_request([](request& r) { r.respond(r.payload); }).build();
  ASSERT_FALSE(s.start());
  const auto addr = address_of(s);
  const auto port = addr.substr(addr.rfind(':') + 1);
  // For a listening socket, ss shows the backlog as Send-Q.
  std::string cmd = "ss -Hltn 'sport = :" + port + "'";
  FILE* f = ::popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char line[512] = {};
  ASSERT_NE(std::fgets(line, sizeof line, f), nullptr);
  ::pclose(f);
  EXPECT_NE(std::string(line).find(" 77 "), std::string::npos) << line;

  tcp_client_config cc{addr};
  cc.nodelay = false;
  cc.keep_alive_interval = std::chrono::seconds(23);
  client c = client_builder{}.connect_to(cc).build();
  ASSERT_FALSE(c.connect());
  ASSERT_TRUE(c.call(as_bytes("x")));
  int fd = -1;
  DIR* d = opendir("/proc/self/fd");
  while (auto* e = readdir(d)) {
    int cand = std::atoi(e->d_name);
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(cand, reinterpret_cast<sockaddr*>(&peer), &len) == 0 && peer.sin_family == AF_INET &&
        ntohs(peer.sin_port) == std::stoi(port))
      fd = cand;
  }
  closedir(d);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(get_int_opt(fd, IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_EQ(get_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(get_int_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 23);
}

TEST(Tcp, BroadcastToAllAndToASet) {
  waiter w;
  std::vector<session_id> ids;
  auto s = server_builder{}
               .listen(any_port())
               .on_connected([&](const connection_info& i) { w.update([&] { ids.push_back(i.session); }); })
               .build();
  ASSERT_FALSE(s.start());
  std::array<std::atomic<int>, 3> got{};
  std::vector<client> cs;
  for (int i = 0; i < 3; ++i) {
    cs.push_back(make_client(s, [&, i](client_builder& b) {
      b.on_message([&, i](const message& m) {
        if (m.text() == "to all" || m.text() == "to two") w.update([&] { ++got[i]; });
      });
    }));
    ASSERT_FALSE(cs.back().connect());
  }
  ASSERT_TRUE(w.wait([&] { return ids.size() == 3; }));
  EXPECT_EQ(s.broadcast(as_bytes("to all")), 3u);
  ASSERT_TRUE(w.wait([&] { return got[0] == 1 && got[1] == 1 && got[2] == 1; }));
  std::vector<session_id> two;
  {
    std::lock_guard lock(w.mutex());
    two = {ids[0], ids[1]};
  }
  EXPECT_EQ(s.broadcast(two, as_bytes("to two")), 2u);
  ASSERT_TRUE(w.wait([&] { return got[0] + got[1] + got[2] == 5; }));
}

TEST(Tcp, DisconnectFlushesWhatSendAccepted) {
  waiter w;
  int got = 0;
  auto s = server_builder{}
               .listen(any_port())
               .on_message([&](const message&) { w.update([&] { ++got; }); })
               .build();
  ASSERT_FALSE(s.start());
  auto c = make_client(s);
  ASSERT_FALSE(c.connect());
  int accepted = 0;
  std::string payload(4096, 'd');
  for (int i = 0; i < 500; ++i)
    if (!c.send(as_bytes(payload))) ++accepted;
  c.disconnect();
  EXPECT_FALSE(c.is_connected());
  ASSERT_TRUE(w.wait([&] { return got == accepted; }));
  EXPECT_EQ(accepted, 500);
}

TEST(Tcp, SlowEventConsumerLosesNothing) {
  auto s = server_builder{}.listen(any_port()).events(4).build();  // tiny on purpose
  ASSERT_FALSE(s.start());
  auto c = make_client(s);
  ASSERT_FALSE(c.connect());
  constexpr int n = 300;
  for (int i = 0; i < n; ++i) ASSERT_FALSE(c.send(as_bytes(std::to_string(i))));
  int next = 0;
  while (next < n) {
    auto e = s.events().wait_for(5s);
    ASSERT_TRUE(e) << "stalled at " << next;
    if (auto* m = std::get_if<message_event>(&*e)) {
      EXPECT_EQ(as_string(m->packet.payload), std::to_string(next));  // in order, none missing
      ++next;
    }
    EXPECT_LE(s.events().size(), 4u + 64u);  // bounded: capacity plus one read batch
  }
}

TEST(Tcp, PacketsQueuedInOneLoopTurnLeaveInOneBatch) {
  server* sp = nullptr;
  waiter w;
  std::optional<connection_info> info;
  auto s = server_builder{}
               .listen(any_port())
               .threads(1)
               .on_message([&](const message& m) {
                 if (m.text() == "go") {
                   // 100 sends from one handler call: one loop turn.
                   for (int i = 0; i < 100; ++i) sp->send(m.session, as_bytes("burst"));
                 } else {
                   // Read on the loop, after the burst's write completed there.
                   auto i = sp->info(m.session);
                   w.update([&] { info = i; });
                 }
               })
               .build();
  sp = &s;
  ASSERT_FALSE(s.start());
  raw_peer p(address_of(s));
  p.write(encode_packet(packet_type::one_way, 1, "go"));
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(p.read_packet());
  p.write(encode_packet(packet_type::one_way, 2, "report"));
  ASSERT_TRUE(w.wait([&] { return info.has_value(); }));
  EXPECT_EQ(info->packets_out, 100u);
  EXPECT_EQ(info->write_batches, 1u);  // all 100 in one writev
}

TEST(Tcp, ClientReportsEachFailedConnectAttempt) {
  const auto port = unused_port();
  reconnect_policy p;
  p.max_attempts = 3;
  p.initial_delay = 10ms;
  std::vector<error_event> errors;
  std::mutex mu;
  client c = client_builder{}
                 .connect_to(tcp_client_config{"127.0.0.1:" + std::to_string(port)})
                 .reconnect(p)
                 .on_error([&](const error_event& e) {
                   std::lock_guard lock(mu);
                   errors.push_back(e);
                 })
                 .build();
  const auto last = c.connect();
  EXPECT_TRUE(last);
  std::lock_guard lock(mu);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_NE(errors[2].detail.find("attempt 3 of 3"), std::string::npos) << errors[2].detail;
  // The event carries the connector's detail; connect() returns the last attempt's.
  EXPECT_NE(errors[2].detail.find(last.detail), std::string::npos) << errors[2].detail;
  EXPECT_NE(last.detail.find("connect to 127.0.0.1:" + std::to_string(port)), std::string::npos) << last.detail;
  EXPECT_EQ(errors[2].error, last.code);
}

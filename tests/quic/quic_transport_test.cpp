// QUIC transport over real UDP on 127.0.0.1: handshake, echo, sizes, server push,
// verification, ALPN, idle/keep-alive, close and back-pressure.
#include "quic_test_util.hpp"
#include "support/expect_invalid.hpp"
#include "quic/udp_socket.hpp"

#include <msgtrans/frame_decoder.hpp>

#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>

namespace msgtrans::test {
namespace {

struct quic_test : ::testing::Test {
  boost::asio::io_context ioc;
  temp_path cert{"msgtrans-quic-cert.pem"};
};

TEST_F(quic_test, handshake_and_echo) {
  test_server srv(ioc, server_config(cert.path));
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, client_config(srv.address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(client.conn->info().protocol, "quic");
  EXPECT_EQ(client.conn->info().peer_address, srv.address());
  std::vector<byte_buffer> sent;
  for (std::uint32_t i = 1; i <= 100; ++i) {
    sent.push_back(make_packet(i, i * 10));
    client.send(sent.back());
  }
  ASSERT_TRUE(run_until(ioc, [&] { return client.received.size() == sent.size(); }));
  EXPECT_EQ(client.received, sent);
  ASSERT_EQ(srv.owners.size(), 1u);
  EXPECT_EQ(srv.owners[0]->received, sent);
  EXPECT_EQ(srv.owners[0]->conn->info().protocol, "quic");

  client.conn->close({close_reason::normal, {}, "bye", 0});
  ASSERT_TRUE(run_until(ioc, [&] { return client.closed && srv.owners[0]->closed; }));
  EXPECT_EQ(client.closed->reason, close_reason::normal);
  EXPECT_EQ(srv.owners[0]->closed->reason, close_reason::peer_closed);
  EXPECT_NE(srv.owners[0]->closed->detail.find("bye"), std::string::npos) << srv.owners[0]->closed->detail;
  // Exactly once, even after the draining period.
  client.conn->close({});
  run_until(ioc, [] { return false; }, 200ms);
  EXPECT_EQ(client.closed_count, 1);
  EXPECT_EQ(srv.owners[0]->closed_count, 1);
}

TEST_F(quic_test, server_pushes_right_after_connect) {
  test_server srv(ioc, server_config(cert.path), false);
  const auto hello = make_packet(7, 32);
  srv.on_accept_hook = [&](test_owner& o) { o.send(hello); };
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, client_config(srv.address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  // The client never writes: the server's push must still arrive.
  ASSERT_TRUE(run_until(ioc, [&] { return client.received.size() == 1; }));
  EXPECT_EQ(client.received[0], hello);
  // And requests from the server keep flowing both ways.
  srv.owners[0]->send(make_packet(8, 1000));
  ASSERT_TRUE(run_until(ioc, [&] { return client.received.size() == 2; }));
  EXPECT_EQ(client.received[1], make_packet(8, 1000));
}

TEST_F(quic_test, one_mib_and_largest_messages) {
  test_server srv(ioc, server_config(cert.path));
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, client_config(srv.address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  const auto one_mib = make_packet(1, 1024 * 1024);
  const auto largest = make_packet(2, max_length_prefixed_frame - 1 - header_size);
  ASSERT_EQ(largest.size(), max_length_prefixed_frame - 1);
  client.send(one_mib);
  client.send(largest);
  client.send(one_mib);
  ASSERT_TRUE(run_until(ioc, [&] { return client.received.size() == 3; }, 60s));
  EXPECT_TRUE(client.received[0] == one_mib);
  EXPECT_TRUE(client.received[1] == largest);
  EXPECT_TRUE(client.received[2] == one_mib);
  EXPECT_FALSE(client.closed);
}

TEST_F(quic_test, frame_over_16_mib_closes_the_connection) {
  test_server srv(ioc, server_config(cert.path));
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, client_config(srv.address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  // The transport prefixes each packet with its length: a 16 MiB + 1 packet makes a
  // frame length the receiver must refuse from the prefix alone.
  byte_buffer big = make_packet(1, 16);
  big.resize(max_length_prefixed_frame + 1);
  client.send(big);
  ASSERT_TRUE(run_until(ioc, [&] { return client.closed && !srv.owners.empty() && srv.owners[0]->closed; }, 30s));
  EXPECT_EQ(srv.owners[0]->closed->reason, close_reason::protocol_error);
  EXPECT_EQ(srv.owners[0]->closed->transport_code, static_cast<int>(quic_app_error::protocol_error));
  EXPECT_EQ(client.closed->reason, close_reason::protocol_error) << client.closed->detail;
  EXPECT_NE(client.closed->detail.find("limit of 16777216 bytes"), std::string::npos) << client.closed->detail;
  EXPECT_TRUE(srv.owners[0]->received.empty());
}

// The limit that fired is the one the detail names: here the runtime's smaller one.
TEST_F(quic_test, frame_over_a_configured_limit_names_that_limit) {
  transport_context ctx;
  ctx.limits.max_message_size = 64 * 1024;
  test_server srv(ioc, server_config(cert.path), true, ctx);
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, client_config(srv.address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  byte_buffer ok = make_packet(1, 64 * 1024 - header_size);
  client.send(ok);
  ASSERT_TRUE(run_until(ioc, [&] { return !srv.owners.empty() && srv.owners[0]->received.size() == 1; }, 30s));
  byte_buffer big = make_packet(2, 64 * 1024 - header_size + 1);
  client.send(big);
  ASSERT_TRUE(run_until(ioc, [&] { return client.closed && srv.owners[0]->closed; }, 30s));
  EXPECT_EQ(client.closed->reason, close_reason::protocol_error) << client.closed->detail;
  EXPECT_NE(client.closed->detail.find("limit of 65536 bytes (max_message_size)"), std::string::npos)
      << client.closed->detail;
  EXPECT_EQ(srv.owners[0]->received.size(), 1u);
}

TEST_F(quic_test, certificate_verification) {
  test_server srv(ioc, server_config(cert.path));
  std::error_code ec;
  {  // success: the server's self-signed certificate as CA
    auto c = connect(ioc, client_config(srv.address(), cert.path), ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(c);
  }
  {  // failure: the system store does not know it
    auto c = connect(ioc, client_config(srv.address(), ""), ec);
    EXPECT_EQ(ec, errc::tls_error) << ec.message();
    EXPECT_FALSE(c);
  }
  {  // failure: right CA, wrong name
    auto cfg = client_config(srv.address(), cert.path);
    cfg.tls_server_name = "example.com";
    auto c = connect(ioc, cfg, ec);
    EXPECT_EQ(ec, errc::tls_error) << ec.message();
  }
  {  // success by name: the certificate holds localhost
    auto cfg = client_config(srv.address(), cert.path);
    cfg.tls_server_name = "localhost";
    auto c = connect(ioc, cfg, ec);
    EXPECT_FALSE(ec) << ec.message();
  }
  {  // explicitly insecure
    auto cfg = client_config(srv.address(), "");
    cfg.tls_insecure_skip_verify = true;
    auto c = connect(ioc, cfg, ec);
    EXPECT_FALSE(ec) << ec.message();
  }
}

TEST_F(quic_test, alpn_none_accepted_other_refused) {
  test_server srv(ioc, server_config(cert.path));
  std::error_code ec;
  auto cfg = client_config(srv.address(), cert.path);
  cfg.alpn = {};
  test_owner none;
  none.attach(connect(ioc, cfg, ec));
  ASSERT_FALSE(ec) << "a client offering no ALPN must be accepted: " << ec.message();
  none.send(make_packet(1, 10));
  ASSERT_TRUE(run_until(ioc, [&] { return none.received.size() == 1; }));

  cfg.alpn = {"h3"};
  auto c = connect(ioc, cfg, ec);
  EXPECT_EQ(ec, errc::tls_error) << ec.message();
  EXPECT_FALSE(c);

  // The server still serves everyone else.
  test_owner ok;
  ok.attach(connect(ioc, client_config(srv.address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  ok.send(make_packet(2, 10));
  ASSERT_TRUE(run_until(ioc, [&] { return ok.received.size() == 1; }));
}

TEST_F(quic_test, idle_timeout_closes_both_sides) {
  auto scfg = server_config(cert.path);
  scfg.connection.max_idle_timeout = 300ms;
  scfg.connection.keep_alive_interval = 0ms;
  test_server srv(ioc, scfg);
  auto ccfg = client_config(srv.address(), cert.path);
  ccfg.connection.keep_alive_interval = 0ms;
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, ccfg, ec));
  ASSERT_FALSE(ec) << ec.message();
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until(ioc, [&] { return client.closed && !srv.owners.empty() && srv.owners[0]->closed; }, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 250ms);
  EXPECT_EQ(client.closed->reason, close_reason::idle_timeout);
  EXPECT_EQ(srv.owners[0]->closed->reason, close_reason::idle_timeout);
}

TEST_F(quic_test, keep_alive_keeps_an_idle_connection_up) {
  auto scfg = server_config(cert.path);
  scfg.connection.max_idle_timeout = 300ms;
  scfg.connection.keep_alive_interval = 0ms;
  test_server srv(ioc, scfg);
  auto ccfg = client_config(srv.address(), cert.path);
  ccfg.connection.keep_alive_interval = 100ms;
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, ccfg, ec));
  ASSERT_FALSE(ec) << ec.message();
  // Four idle timeouts pass with no application traffic: nothing may close.
  EXPECT_FALSE(run_until(ioc, [&] { return client.closed || (!srv.owners.empty() && srv.owners[0]->closed); }, 1200ms));
  client.send(make_packet(1, 10));
  ASSERT_TRUE(run_until(ioc, [&] { return client.received.size() == 1; }));
}

TEST_F(quic_test, paused_reader_applies_back_pressure) {
  auto scfg = server_config(cert.path);
  scfg.connection.stream_window = 256 * 1024;
  scfg.connection.connection_window = 512 * 1024;
  test_server srv(ioc, scfg, false);
  auto ccfg = client_config(srv.address(), cert.path);
  ccfg.connection.send_buffer_limit = 512 * 1024;
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, ccfg, ec));
  ASSERT_FALSE(ec) << ec.message();
  client.send(make_packet(0, 10));
  ASSERT_TRUE(run_until(ioc, [&] { return srv.owners.size() == 1 && srv.owners[0]->received.size() == 1; }));
  test_owner& server_side = *srv.owners[0];
  server_side.conn->set_reading(false);
  const std::size_t n = 64;  // 64 x 64 KiB = 4 MiB, far over window + send buffer
  for (std::uint32_t i = 1; i <= n; ++i) client.send(make_packet(i, 64 * 1024));
  // The client's writes stall: the paused reader gives no credit.
  EXPECT_FALSE(run_until(ioc, [&] { return client.idle(); }, 500ms));
  EXPECT_LE(server_side.received.size(), 1u);
  server_side.conn->set_reading(true);
  ASSERT_TRUE(run_until(ioc, [&] { return server_side.received.size() == n + 1; }, 20s));
  for (std::uint32_t i = 1; i <= n; ++i) EXPECT_EQ(server_side.received[i], make_packet(i, 64 * 1024));
  ASSERT_TRUE(run_until(ioc, [&] { return client.idle(); }));
}

TEST_F(quic_test, server_close_reaches_client_with_reason) {
  test_server srv(ioc, server_config(cert.path));
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, client_config(srv.address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(run_until(ioc, [&] { return srv.owners.size() == 1; }));
  // A queued write is flushed before the CONNECTION_CLOSE.
  srv.owners[0]->send(make_packet(9, 200000));
  srv.owners[0]->conn->close({close_reason::shutdown, {}, "server stopping", 0});
  ASSERT_TRUE(run_until(ioc, [&] { return client.closed.has_value(); }));
  ASSERT_EQ(client.received.size(), 1u);
  EXPECT_EQ(client.received[0], make_packet(9, 200000));
  EXPECT_EQ(client.closed->reason, close_reason::peer_closed);
  EXPECT_EQ(client.closed->transport_code, static_cast<int>(quic_app_error::shutdown));
  EXPECT_NE(client.closed->detail.find("server stopping"), std::string::npos);
  ASSERT_TRUE(run_until(ioc, [&] { return srv.owners[0]->closed.has_value(); }));
  EXPECT_EQ(srv.owners[0]->closed->reason, close_reason::shutdown);
}

TEST_F(quic_test, connect_to_nothing_times_out) {
  // A bound UDP port that never answers.
  boost::asio::ip::udp::socket silent(ioc, boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  auto cfg = client_config("127.0.0.1:" + std::to_string(silent.local_endpoint().port()), "");
  cfg.tls_insecure_skip_verify = true;
  std::error_code ec;
  const auto start = std::chrono::steady_clock::now();
  auto c = connect(ioc, cfg, ec, 300ms);
  EXPECT_EQ(ec, errc::timeout) << ec.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);

  // No timeout given to connect(): quic_client_config::connect_timeout applies.
  cfg.connect_timeout = 300ms;
  const auto start2 = std::chrono::steady_clock::now();
  c = connect(ioc, cfg, ec, 0ms);
  EXPECT_EQ(ec, errc::timeout) << ec.message();
  EXPECT_GE(std::chrono::steady_clock::now() - start2, 250ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start2, 3s);  // not the 10 s default
}

TEST_F(quic_test, certificate_and_key_files) {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "openssl CLI not installed";
  temp_path key{"msgtrans-quic-key.pem"}, crt{"msgtrans-quic-crt.pem"};
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=files.test "
      "-addext subjectAltName=DNS:files.test -addext basicConstraints=critical,CA:TRUE -keyout " +
      key.path + " -out " + crt.path + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto scfg = server_config();
  scfg.tls_cert_file = crt.path;
  scfg.tls_key_file = key.path;
  test_server srv(ioc, scfg);
  auto ccfg = client_config(srv.address(), crt.path);
  ccfg.tls_server_name = "files.test";
  std::error_code ec;
  test_owner c;
  c.attach(connect(ioc, ccfg, ec));
  ASSERT_FALSE(ec) << ec.message();
  c.send(make_packet(1, 10));
  ASSERT_TRUE(run_until(ioc, [&] { return c.received.size() == 1; }));
  ccfg.tls_server_name = "localhost";  // not in that certificate
  EXPECT_EQ(connect(ioc, ccfg, ec), nullptr);
  EXPECT_EQ(ec, errc::tls_error);
  // Only one of the two files is a configuration error.
  auto half = server_config();
  half.tls_cert_file = crt.path;
  try {
    make_listener(half);
    ADD_FAILURE() << "make_listener accepted tls_cert_file without tls_key_file";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("tls_key_file"), std::string::npos) << e.what();
  }
}

TEST_F(quic_test, self_signed_certificate_holds_configured_names) {
  auto scfg = server_config(cert.path);
  scfg.certificate_names = {"msgtrans.test", "10.1.2.3"};
  test_server srv(ioc, scfg);
  for (const char* name : {"msgtrans.test", "10.1.2.3", "localhost", "127.0.0.1"}) {
    auto ccfg = client_config(srv.address(), cert.path);
    ccfg.tls_server_name = name;
    std::error_code ec;
    auto c = connect(ioc, ccfg, ec);
    EXPECT_FALSE(ec) << name << ": " << ec.message();
  }
  auto ccfg = client_config(srv.address(), cert.path);
  ccfg.tls_server_name = "other.test";
  std::error_code ec;
  EXPECT_EQ(connect(ioc, ccfg, ec), nullptr);
  EXPECT_EQ(ec, errc::tls_error);
}

TEST_F(quic_test, close_from_on_packet_flushes_the_reply_first) {
  test_server srv(ioc, server_config(cert.path), false);
  const auto reply = make_packet(99, 300000);
  srv.on_accept_hook = [&](test_owner& o) {
    o.on_packet_hook = [&o, &reply](bytes_view) {
      o.send(reply);  // the reply, then close, both from inside on_packet
      o.conn->close({close_reason::normal, {}, "done", 0});
    };
  };
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, client_config(srv.address(), cert.path), ec));
  ASSERT_FALSE(ec) << ec.message();
  // Once the server side is attached, the packet is handled inside ngtcp2's read.
  ASSERT_TRUE(run_until(ioc, [&] { return srv.owners.size() == 1; }));
  client.send(make_packet(1, 10));
  ASSERT_TRUE(run_until(ioc, [&] { return client.closed.has_value(); }));
  ASSERT_EQ(client.received.size(), 1u);
  EXPECT_EQ(client.received[0], reply);
  EXPECT_EQ(client.closed->reason, close_reason::peer_closed);
  ASSERT_TRUE(run_until(ioc, [&] { return srv.owners[0]->closed.has_value(); }));
  EXPECT_EQ(srv.owners[0]->closed_count, 1);
}

TEST_F(quic_test, bad_configuration_is_reported) {
  auto cfg = server_config();
  cfg.tls_cert_file = "/nonexistent/cert.pem";
  cfg.tls_key_file = "/nonexistent/key.pem";
  auto l = make_listener(cfg);
  auto e = l->start(ioc, [&]() -> boost::asio::io_context& { return ioc; }, [](std::unique_ptr<connection>) {}, {});
  EXPECT_EQ(e.code, errc::tls_error);
  EXPECT_NE(e.detail.find("/nonexistent/cert.pem"), std::string::npos) << e.detail;

  // Mistakes in the configuration itself are thrown by make_*, naming the field.
  auto bad = server_config();
  bad.bind_address = "no-port";
  test::expect_invalid_naming([&] { make_listener(bad); }, "quic_server_config.bind_address");
  auto window = server_config();
  window.connection.stream_window = 0;
  test::expect_invalid_naming([&] { make_listener(window); }, "quic_server_config.connection.stream_window");
  quic_client_config nohost;
  nohost.address = ":4433";
  test::expect_invalid_naming([&] { make_connector(nohost); }, "quic_client_config.address");
  quic_client_config payload;
  payload.connection.max_udp_payload = 100;
  test::expect_invalid_naming([&] { make_connector(payload); }, "quic_client_config.connection.max_udp_payload");
}

// Forwards datagrams between one client and the server, and records the largest each way.
class size_probe_relay {
 public:
  size_probe_relay(boost::asio::io_context& ioc, const std::string& server)
      : front_(ioc, udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)),
        back_(ioc, udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    const auto colon = server.rfind(':');
    server_ = {boost::asio::ip::make_address(server.substr(0, colon)),
               static_cast<unsigned short>(std::stoi(server.substr(colon + 1)))};
    pump(front_, true);
    pump(back_, false);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(front_.local_endpoint().port()); }
  std::size_t largest_to_server = 0, largest_to_client = 0, datagrams = 0;

 private:
  using udp = boost::asio::ip::udp;
  void pump(udp::socket& s, bool from_client) {
    auto& buf = from_client ? cbuf_ : sbuf_;
    s.async_receive_from(boost::asio::buffer(buf), from_client ? client_ : from_server_,
                         [this, &s, &buf, from_client](boost::system::error_code ec, std::size_t n) {
                           if (ec) return;
                           auto& largest = from_client ? largest_to_server : largest_to_client;
                           largest = std::max(largest, n);
                           ++datagrams;
                           (from_client ? back_ : front_)
                               .send_to(boost::asio::buffer(buf.data(), n), from_client ? server_ : client_, 0, ec);
                           pump(s, from_client);
                         });
  }
  udp::socket front_, back_;
  udp::endpoint server_, client_, from_server_;
  std::vector<char> cbuf_ = std::vector<char>(65536), sbuf_ = std::vector<char>(65536);
};

// quic_connection_options::max_udp_payload: automatic (large datagrams on a loopback
// path) and configured (no datagram over the limit, either way).
TEST_F(quic_test, udp_payload_size_per_path_and_configured) {
  for (const std::size_t limit : {std::size_t{0}, std::size_t{1300}}) {
    SCOPED_TRACE("max_udp_payload=" + std::to_string(limit));
    auto scfg = server_config(cert.path);
    scfg.connection.max_udp_payload = limit;
    test_server srv(ioc, scfg);
    size_probe_relay relay(ioc, srv.address());
    auto ccfg = client_config(relay.address(), cert.path);
    ccfg.tls_server_name = "127.0.0.1";
    ccfg.connection.max_udp_payload = limit;
    std::error_code ec;
    test_owner client;
    client.attach(connect(ioc, ccfg, ec));
    ASSERT_FALSE(ec) << ec.message();
    std::vector<byte_buffer> sent;
    for (std::uint32_t i = 1; i <= 4; ++i) {
      sent.push_back(make_packet(i, 200 * 1024));
      client.send(sent.back());
    }
    ASSERT_TRUE(run_until(ioc, [&] { return client.received.size() == sent.size(); }));
    EXPECT_EQ(client.received, sent);
    if (limit == 0) {  // loopback: far beyond an Ethernet MTU
      EXPECT_GT(relay.largest_to_server, 16000u);
      EXPECT_GT(relay.largest_to_client, 16000u);
    } else {
      EXPECT_LE(relay.largest_to_server, limit);
      EXPECT_LE(relay.largest_to_client, limit);
      EXPECT_GE(relay.largest_to_server, 1200u);  // QUIC's floor: the padded Initial
    }
  }
}

// On a loopback path the ACK of a request rides on its reply (and the reply's ACK on the
// next request): lock-step request/response costs 2 datagrams per round trip, not 3.
TEST_F(quic_test, lock_step_on_loopback_needs_two_datagrams_per_round_trip) {
  test_server srv(ioc, server_config(cert.path));
  size_probe_relay relay(ioc, srv.address());
  auto ccfg = client_config(relay.address(), cert.path);
  ccfg.tls_server_name = "127.0.0.1";
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, ccfg, ec));
  ASSERT_FALSE(ec) << ec.message();
  client.send(make_packet(1, 64));  // settle the handshake's own traffic first
  ASSERT_TRUE(run_until(ioc, [&] { return client.received.size() == 1; }));
  run_until(ioc, [] { return false; }, 50ms);
  const std::size_t before = relay.datagrams;
  constexpr std::uint32_t round_trips = 200;
  client.on_packet_hook = [&](bytes_view) {
    const auto n = static_cast<std::uint32_t>(client.received.size());
    if (n <= round_trips) client.send(make_packet(n + 1, 64));
  };
  client.send(make_packet(2, 64));
  ASSERT_TRUE(run_until(ioc, [&] { return client.received.size() == round_trips + 1; }));
  const double per_round_trip = static_cast<double>(relay.datagrams - before) / round_trips;
  EXPECT_LT(per_round_trip, 2.2) << relay.datagrams - before << " datagrams";
}

// The receive buffer (skmem "rb") of the UDP socket bound to `port`, as `ss` reports it.
long udp_receive_buffer_of(const std::string& port) {
  const std::string cmd = "ss -uanm 'sport = :" + port + "' 2>/dev/null";
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, f)) out += line;
    ::pclose(f);
  }
  std::smatch m;
  return std::regex_search(out, m, std::regex(R"(rb(\d+))")) ? std::stol(m[1]) : -1;
}

// quic_connection_options::udp_buffer_size reaches the socket: the kernel reports twice
// the size set (its bookkeeping share), capped at net.core.rmem_max unless the process
// may force it (CAP_NET_ADMIN), as the library tries to.
TEST_F(quic_test, udp_buffer_size_sets_the_socket_buffer) {
  int force_probe = ::socket(AF_INET, SOCK_DGRAM, 0);
  int v = 1 << 20;
  const bool can_force = ::setsockopt(force_probe, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) == 0;
  ::close(force_probe);
  long rmem_max = 0;
  std::ifstream("/proc/sys/net/core/rmem_max") >> rmem_max;
  for (const int size : {512 * 1024, 3 * 1024 * 1024}) {
    auto cfg = server_config(cert.path);
    cfg.connection.udp_buffer_size = size;
    test_server srv(ioc, cfg);
    const auto port = srv.address().substr(srv.address().rfind(':') + 1);
    const long expected = 2 * (can_force ? size : std::min<long>(size, rmem_max));
    EXPECT_EQ(udp_receive_buffer_of(port), expected) << "udp_buffer_size " << size;
  }
}

int refused_sends = 0, send_calls = 0;
int every_third_send_refused(int fd, mmsghdr* m, unsigned n, int flags) {
  if (++send_calls % 3 == 0) {
    ++refused_sends;
    errno = EAGAIN;
    return -1;
  }
  return ::sendmmsg(fd, m, n, flags);
}

// Both sides' sockets report a full buffer on every third send: connections pause and
// resume on writability, and every message still arrives once, in order.
TEST_F(quic_test, full_socket_buffers_pause_and_resume_without_loss) {
  auto scfg = server_config(cert.path);
  scfg.connection.max_udp_payload = 1452;
  test_server srv(ioc, scfg);
  auto ccfg = client_config(srv.address(), cert.path);
  ccfg.connection.max_udp_payload = 1452;
  std::error_code ec;
  test_owner client;
  client.attach(connect(ioc, ccfg, ec));
  ASSERT_FALSE(ec) << ec.message();
  quic_detail::udp_socket::set_sendmmsg_for_tests(every_third_send_refused);
  std::vector<byte_buffer> sent;
  for (std::uint32_t i = 1; i <= 200; ++i) {
    sent.push_back(make_packet(i, (i * 7919) % 40000));
    client.send(sent.back());
  }
  const bool done = run_until(ioc, [&] { return client.received.size() >= sent.size(); }, 30s);
  quic_detail::udp_socket::set_sendmmsg_for_tests(nullptr);
  ASSERT_TRUE(done) << client.received.size() << " of " << sent.size();
  EXPECT_GT(refused_sends, 10);
  EXPECT_TRUE(client.received == sent);
  ASSERT_EQ(srv.owners.size(), 1u);
  EXPECT_TRUE(srv.owners[0]->received == sent);
}

}  // namespace
}  // namespace msgtrans::test

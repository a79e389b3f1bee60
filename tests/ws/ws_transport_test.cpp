// The WebSocket transport over real loopback sockets: a listener with an echo owner on a
// loop thread, driven by a raw blocking client that writes frames byte by byte (so it can
// misbehave) and by the transport's own connector.
#include "echo_owner.hpp"
#include "ws/ws_frame.hpp"

#include <msgtrans/error.hpp>
#include <msgtrans/msgtrans.hpp>
#include <msgtrans/ws.hpp>

#include <boost/asio/executor_work_guard.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

using namespace msgtrans;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

byte_buffer request_packet(std::uint32_t id, std::string_view payload) {
  return *encode(packet::request(id, as_bytes(payload)));
}

// ---- a server on its own loop thread ----------------------------------------------------

class test_server {
 public:
  explicit test_server(ws_server_config cfg, decode_limits limits = {}) {
    listener_ = make_listener(cfg);
    transport_context ctx;
    ctx.limits = limits;
    auto started = listener_->start(
        io_, [this]() -> asio::io_context& { return io_; },
        [this](std::unique_ptr<connection> c) {
          EXPECT_TRUE(io_.get_executor().running_in_this_thread());
          EXPECT_FALSE(stopped_) << "on_accept after listener::stop()";
          auto* o = new test::echo_owner(io_, std::move(c), [this](test::echo_owner* self, close_info info) {
            owners_.erase(self);
            closed_owners_.emplace_back(self);  // deleted later: not inside its own callback
            std::lock_guard lk(m_);
            closes_.push_back(std::move(info));
            cv_.notify_all();
          });
          owners_.insert(o);
          {
            std::lock_guard lk(m_);
            ++accepted_;
            cv_.notify_all();
          }
          o->start();
        },
        ctx);
    start_error_ = started.code;
    start_detail_ = started.detail;
    if (!start_error_) {
      auto addr = listener_->local_address();
      port_ = std::stoi(addr.substr(addr.rfind(':') + 1));
    }
    thread_ = std::thread([this] { io_.run(); });
  }

  ~test_server() {
    run([this] {
      listener_->stop();
      stopped_ = true;
      for (auto* o : owners_) delete o;
      owners_.clear();
    });
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  std::error_code start_error() const { return start_error_; }
  const std::string& start_detail() const { return start_detail_; }
  int port() const { return port_; }
  listener& lst() { return *listener_; }

  // Runs f on the loop and waits for it.
  void run(std::function<void()> f) {
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  // Closes every server-side connection with `info`.
  void close_all(close_info info) {
    run([&] {
      auto copy = owners_;
      for (auto* o : copy) o->conn().close(info);
    });
  }

  std::optional<close_info> wait_close(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lk(m_);
    if (!cv_.wait_for(lk, timeout, [&] { return !closes_.empty(); })) return std::nullopt;
    auto c = closes_.front();
    closes_.erase(closes_.begin());
    return c;
  }

  bool wait_accepted(int n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lk(m_);
    return cv_.wait_for(lk, timeout, [&] { return accepted_ >= n; });
  }

  asio::io_context& io() { return io_; }
  int accepted() {
    std::lock_guard lk(m_);
    return accepted_;
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io_.get_executor()};
  std::unique_ptr<listener> listener_;
  std::error_code start_error_;
  std::string start_detail_;
  int port_ = 0;
  std::set<test::echo_owner*> owners_;  // loop only
  std::vector<std::unique_ptr<test::echo_owner>> closed_owners_;
  bool stopped_ = false;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<close_info> closes_;
  int accepted_ = 0;
  std::thread thread_;
};

// ---- a raw client: plain sockets, frames written by hand ----------------------------------

struct frame {
  ws::opcode op;
  std::string payload;
  std::uint16_t close_code() const {
    return payload.size() >= 2 ? static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                            static_cast<std::uint8_t>(payload[1]))
                               : 1005;
  }
  std::string close_reason() const { return payload.size() > 2 ? payload.substr(2) : ""; }
};

class raw_client {
 public:
  explicit raw_client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{10, 0};  // no test waits this long unless something is broken
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~raw_client() { ::close(fd_); }
  raw_client(const raw_client&) = delete;

  bool connected() const { return connected_; }

  void send_raw(std::string_view s) {
    while (!s.empty()) {
      auto n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Sends an upgrade request; returns the HTTP status (0 if the connection ended).
  int handshake(std::string path = "/", std::string extra_headers = "") {
    return request("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: " + key_ + "\r\nSec-WebSocket-Version: 13\r\n" + extra_headers + "\r\n");
  }
  // Sends any request; returns the HTTP status of the answer (0 if none).
  int request(const std::string& req) {
    send_raw(req);
    while (buf_.find("\r\n\r\n") == std::string::npos)
      if (!fill()) return 0;
    auto end = buf_.find("\r\n\r\n") + 4;
    response_ = buf_.substr(0, end);
    buf_.erase(0, end);
    if (response_.size() < 12) return 0;
    return std::stoi(response_.substr(9, 3));
  }
  const std::string& response() const { return response_; }
  std::string expected_accept() const { return ws::accept_key(key_); }

  void send_frame(ws::opcode op, std::string_view payload, bool fin = true, bool mask = true) {
    std::byte hdr[ws::max_header_size];
    std::array<std::uint8_t, 4> m{0x12, 0x34, 0x56, 0x78};
    auto n = ws::encode_frame_header(hdr, op, payload.size(), mask ? m.data() : nullptr);
    if (!fin) hdr[0] &= std::byte{0x7F};
    std::string body(payload);
    if (mask) ws::apply_mask(reinterpret_cast<std::byte*>(body.data()), body.size(), m);
    send_raw(std::string(reinterpret_cast<const char*>(hdr), n) + body);
  }
  void send_packet(const byte_buffer& p) { send_frame(ws::opcode::binary, as_string(p)); }

  // The next frame from the server, or nullopt on EOF / timeout.
  std::optional<frame> read_frame() {
    for (;;) {
      auto r = ws::parse_frame_header(as_bytes(buf_), ws::role::client, ~0ull >> 1);
      if (r.status == ws::parse_result::fail) return std::nullopt;
      if (r.status == ws::parse_result::ok && buf_.size() >= r.header.header_len + r.header.payload_len) {
        frame f{r.header.op, buf_.substr(r.header.header_len, r.header.payload_len)};
        buf_.erase(0, r.header.header_len + r.header.payload_len);
        return f;
      }
      if (!fill()) return std::nullopt;
    }
  }

  // The next frame that is not a ping.
  std::optional<frame> read_data_or_close() {
    for (;;) {
      auto f = read_frame();
      if (!f || f->op != ws::opcode::ping) return f;
    }
  }

  // True when the server closes the TCP connection (rather than a timeout).
  bool wait_eof() {
    char tmp[4096];
    for (;;) {
      auto n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  // One request, its response back: the connection works.
  bool echo_ok(std::uint32_t id, std::string_view payload = "ping?") {
    send_packet(request_packet(id, payload));
    auto f = read_data_or_close();
    if (!f || f->op != ws::opcode::binary) return false;
    auto p = decode(as_bytes(f->payload));
    return p && p->type == packet_type::response && p->message_id == id &&
           as_string(p->payload) == payload;
  }

 private:
  bool fill() {
    char tmp[65536];
    auto n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
  std::string response_;
  std::string key_ = ws::make_client_key();
};

ws_server_config quiet_config() {
  ws_server_config c;
  c.path = "/msg";
  c.keep_alive_interval = 0ms;
  return c;
}

// A runtime server on one ws listener (its sessions decode the packets and own the idle
// timeout); it answers each request with its payload.
class runtime_server {
 public:
  explicit runtime_server(const ws_server_config& c, session_options so = {})
      : srv_(server_builder{}
                 .listen(c)
                 .threads(1)
                 .options(so)
                 .on_request([](request& r) { (void)r.respond(r.payload); })
                 .build()) {
    auto started = srv_.start();
    EXPECT_FALSE(started) << started.message();
    const auto addr = srv_.local_addresses().at(0).second;  // HOST:PORT/PATH
    port_ = std::stoi(addr.substr(addr.rfind(':') + 1));
  }
  int port() const { return port_; }
  server& srv() { return srv_; }

 private:
  server srv_;
  int port_ = 0;
};

// A connected raw client that has completed the handshake.
std::unique_ptr<raw_client> open_client(int port, std::string path = "/msg") {
  auto c = std::make_unique<raw_client>(port);
  EXPECT_TRUE(c->connected());
  EXPECT_EQ(c->handshake(path), 101) << c->response();
  return c;
}

// ---- a client-side owner for the connector --------------------------------------------

class collector final : public connection_owner {
 public:
  void on_packet(bytes_view p) override {
    std::lock_guard lk(m_);
    packets_.push_back(to_buffer(p));
    cv_.notify_all();
  }
  void on_write_done() override {
    std::lock_guard lk(m_);
    ++writes_done_;
    cv_.notify_all();
  }
  void on_closed(close_info info) override {
    std::lock_guard lk(m_);
    closed_ = std::move(info);
    cv_.notify_all();
  }
  bool wait_packets(std::size_t n, std::chrono::milliseconds t = 10s) {
    std::unique_lock lk(m_);
    return cv_.wait_for(lk, t, [&] { return packets_.size() >= n; });
  }
  std::optional<close_info> wait_closed(std::chrono::milliseconds t = 10s) {
    std::unique_lock lk(m_);
    cv_.wait_for(lk, t, [&] { return closed_.has_value(); });
    return closed_;
  }
  std::vector<byte_buffer> packets() {
    std::lock_guard lk(m_);
    return packets_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<byte_buffer> packets_;
  int writes_done_ = 0;
  std::optional<close_info> closed_;
};

// A client loop thread with one connection made by make_connector.
class test_client {
 public:
  explicit test_client(const ws_client_config& cfg) : connector_(make_connector(cfg)) {
    thread_ = std::thread([this] { io_.run(); });
  }
  ~test_client() {
    std::promise<void> done;
    asio::post(io_, [&] {
      conn_.reset();
      done.set_value();
    });
    done.get_future().wait();
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  error_info connect(std::chrono::milliseconds timeout = 5s) {
    std::promise<error_info> p;
    asio::post(io_, [&] {
      connector_->connect(io_, timeout, transport_context{},
                          [&](msgtrans::error_info ec, std::unique_ptr<connection> c) {
                            EXPECT_TRUE(io_.get_executor().running_in_this_thread());
                            if (!ec) {
                              conn_ = std::move(c);
                              conn_->start(owner_);
                            }
                            p.set_value(ec);
                          });
    });
    return p.get_future().get();
  }

  // Writes these packets in one connection::write (kept alive here).
  void write(std::vector<byte_buffer> packets) {
    asio::post(io_, [this, packets = std::move(packets)]() mutable {
      out_ = std::move(packets);
      views_.clear();
      for (auto& p : out_) views_.emplace_back(p);
      conn_->write(views_);
    });
  }

  void close(close_info info) {
    asio::post(io_, [this, info] { conn_->close(info); });
  }

  collector& owner() { return owner_; }
  endpoint_info info() {
    std::promise<endpoint_info> p;
    asio::post(io_, [&] { p.set_value(conn_->info()); });
    return p.get_future().get();
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io_.get_executor()};
  std::unique_ptr<connector> connector_;
  std::unique_ptr<connection> conn_;
  collector owner_;
  std::vector<byte_buffer> out_;
  std::vector<bytes_view> views_;
  std::thread thread_;
};

std::string url(const test_server& s, std::string scheme = "ws", std::string host = "127.0.0.1") {
  return scheme + "://" + host + ":" + std::to_string(s.port()) + "/msg";
}

}  // namespace

// ---- the happy path ---------------------------------------------------------------------

TEST(ws_transport, raw_client_echo_and_handshake_headers) {
  test_server srv(quiet_config());
  ASSERT_FALSE(srv.start_error()) << srv.start_detail();
  EXPECT_EQ(srv.lst().protocol(), "ws");
  auto c = open_client(srv.port());
  EXPECT_NE(c->response().find("Sec-WebSocket-Accept: " + c->expected_accept()), std::string::npos)
      << c->response();
  EXPECT_EQ(c->response().find("Sec-WebSocket-Extensions"), std::string::npos);
  for (std::uint32_t id = 1; id <= 5; ++id) EXPECT_TRUE(c->echo_ok(id));
}

TEST(ws_transport, pipelined_batch_and_fragmented_message) {
  test_server srv(quiet_config());
  auto c = open_client(srv.port());
  // 200 requests in one TCP write: all come back, in order.
  std::string burst;
  for (std::uint32_t id = 1; id <= 200; ++id) {
    auto p = request_packet(id, "x");
    std::byte hdr[ws::max_header_size];
    std::array<std::uint8_t, 4> m{9, 8, 7, 6};
    auto n = ws::encode_frame_header(hdr, ws::opcode::binary, p.size(), m.data());
    ws::apply_mask(p.data(), p.size(), m);
    burst.append(reinterpret_cast<const char*>(hdr), n).append(as_string(p));
  }
  c->send_raw(burst);
  for (std::uint32_t id = 1; id <= 200; ++id) {
    auto f = c->read_data_or_close();
    ASSERT_TRUE(f && f->op == ws::opcode::binary);
    auto p = decode(as_bytes(f->payload));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->message_id, id);
  }
  // One packet in three fragments, with a ping in the middle.
  auto p = request_packet(999, std::string(300, 'f'));
  auto s = as_string(p);
  c->send_frame(ws::opcode::binary, s.substr(0, 10), false);
  c->send_frame(ws::opcode::continuation, s.substr(10, 100), false);
  c->send_frame(ws::opcode::ping, "mid");
  c->send_frame(ws::opcode::continuation, s.substr(110), true);
  auto pong = c->read_frame();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->op, ws::opcode::pong);
  EXPECT_EQ(pong->payload, "mid");
  auto f = c->read_data_or_close();
  ASSERT_TRUE(f && f->op == ws::opcode::binary);
  auto back = decode(as_bytes(f->payload));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->message_id, 999u);
  EXPECT_EQ(back->payload.size(), 300u);
}

TEST(ws_transport, connector_echo_many_packets_in_one_write_small_and_large) {
  test_server srv(quiet_config());
  ws_client_config cc;
  cc.url = url(srv, "ws", "localhost");  // a host name, resolved
  test_client cli(cc);
  ASSERT_FALSE(cli.connect());
  EXPECT_EQ(cli.info().protocol, "ws");
  std::vector<byte_buffer> batch;
  for (std::uint32_t id = 1; id <= 100; ++id)
    batch.push_back(request_packet(id, std::string(id % 3 == 0 ? 100'000 : 64, char('a' + id % 26))));
  auto sent = batch;
  cli.write(std::move(batch));
  ASSERT_TRUE(cli.owner().wait_packets(100));
  auto got = cli.owner().packets();
  ASSERT_EQ(got.size(), 100u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    auto p = decode(got[i]);
    auto q = decode(sent[i]);
    ASSERT_TRUE(p && q);
    EXPECT_EQ(p->message_id, q->message_id);
    EXPECT_EQ(p->type, packet_type::response);
    EXPECT_EQ(p->payload, q->payload);
  }
}

// ---- close handshakes ----------------------------------------------------------------

TEST(ws_transport, server_shutdown_sends_1001_and_completes_the_handshake) {
  test_server srv(quiet_config());
  ws_client_config cc;
  cc.url = url(srv);
  test_client cli(cc);
  ASSERT_FALSE(cli.connect());
  ASSERT_TRUE(srv.wait_accepted(1));
  srv.close_all({close_reason::shutdown, {}, "server stopping", 0});
  auto client_side = cli.owner().wait_closed();
  ASSERT_TRUE(client_side);
  EXPECT_EQ(client_side->reason, close_reason::peer_closed);
  EXPECT_EQ(client_side->transport_code, 1001);
  EXPECT_EQ(client_side->detail, "server stopping");
  auto server_side = srv.wait_close();
  ASSERT_TRUE(server_side);
  EXPECT_EQ(server_side->reason, close_reason::shutdown);
  EXPECT_EQ(server_side->transport_code, 1001);
}

TEST(ws_transport, client_close_reaches_the_server_with_code_and_reason) {
  test_server srv(quiet_config());
  ws_client_config cc;
  cc.url = url(srv);
  test_client cli(cc);
  ASSERT_FALSE(cli.connect());
  cli.close({close_reason::normal, {}, "bye now", 0});
  auto s = srv.wait_close();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->reason, close_reason::peer_closed);
  EXPECT_EQ(s->transport_code, 1000);
  EXPECT_EQ(s->detail, "bye now");
  auto c = cli.owner().wait_closed();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->reason, close_reason::normal);
  EXPECT_EQ(c->transport_code, 1000);
}

TEST(ws_transport, raw_close_frame_is_echoed_and_reported) {
  test_server srv(quiet_config());
  auto c = open_client(srv.port());
  std::string body = "\x0F\xA0going";  // 4000
  c->send_frame(ws::opcode::close, body);
  auto f = c->read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, ws::opcode::close);
  EXPECT_EQ(f->close_code(), 4000);
  EXPECT_TRUE(c->wait_eof());  // the server closes TCP first
  auto s = srv.wait_close();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->reason, close_reason::peer_closed);
  EXPECT_EQ(s->transport_code, 4000);
  EXPECT_EQ(s->detail, "going");
}

TEST(ws_transport, dropped_connection_reports_1006) {
  test_server srv(quiet_config());
  {
    auto c = open_client(srv.port());
    ASSERT_TRUE(c->echo_ok(1));
  }
  auto s = srv.wait_close();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->reason, close_reason::peer_closed);
  EXPECT_EQ(s->transport_code, 1006);
}

// ---- bad input: a clear close, and the bystander unaffected ----------------------------

class ws_bad_input : public ::testing::Test {
 protected:
  void SetUp() override {
    decode_limits limits;
    limits.max_message_size = 1024;
    srv_ = std::make_unique<test_server>(quiet_config(), limits);
    ASSERT_FALSE(srv_->start_error());
    bystander_ = open_client(srv_->port());
    ASSERT_TRUE(bystander_->echo_ok(1));
  }
  void TearDown() override {
    EXPECT_TRUE(bystander_->echo_ok(2, "still here")) << "a bad peer disturbed another connection";
    bystander_.reset();
    srv_.reset();
  }
  // The next frame is a close with `code`, then the server drops the TCP connection.
  static void expect_close(raw_client& c, std::uint16_t code, std::string_view reason_part) {
    auto f = c.read_data_or_close();
    ASSERT_TRUE(f) << "no close frame";
    ASSERT_EQ(f->op, ws::opcode::close);
    EXPECT_EQ(f->close_code(), code);
    EXPECT_NE(f->close_reason().find(reason_part), std::string::npos) << f->close_reason();
    c.send_frame(ws::opcode::close, f->payload.substr(0, 2));
    EXPECT_TRUE(c.wait_eof());
  }
  std::unique_ptr<test_server> srv_;
  std::unique_ptr<raw_client> bystander_;
};

TEST_F(ws_bad_input, wrong_path_gets_404) {
  raw_client c(srv_->port());
  EXPECT_EQ(c.handshake("/elsewhere"), 404) << c.response();
  EXPECT_TRUE(c.wait_eof());
  raw_client q(srv_->port());
  EXPECT_EQ(q.handshake("/msg?token=1"), 101) << "the query string is not part of the path";
}

TEST_F(ws_bad_input, not_an_upgrade_and_wrong_version) {
  raw_client plain_get(srv_->port());
  EXPECT_EQ(plain_get.request("GET /msg HTTP/1.1\r\nHost: x\r\n\r\n"), 426);
  raw_client v8(srv_->port());
  EXPECT_EQ(v8.request("GET /msg HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"),
            426);
  EXPECT_NE(v8.response().find("Sec-WebSocket-Version: 13"), std::string::npos);
  raw_client post(srv_->port());
  EXPECT_EQ(post.request("POST /msg HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), 400);
  raw_client garbage(srv_->port());
  EXPECT_EQ(garbage.request("\x16\x03\x01 not http at all\r\n\r\n"), 400);
  raw_client huge(srv_->port());
  EXPECT_EQ(huge.request("GET /msg HTTP/1.1\r\nX-Big: " + std::string(10000, 'b') + "\r\n\r\n"), 431);
}

TEST_F(ws_bad_input, text_frame_closes_1003) {
  auto c = open_client(srv_->port());
  c->send_frame(ws::opcode::text, "hello");
  expect_close(*c, 1003, "text");
  auto s = srv_->wait_close();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->reason, close_reason::protocol_error);
  EXPECT_EQ(s->transport_code, 1003);
}

TEST_F(ws_bad_input, non_packet_binary_is_handed_on_undecoded) {
  // The transport does not interpret packets: the owner gets the message's bytes (the
  // echo owner sends them back), and the runtime's session is what rejects them (below).
  auto c = open_client(srv_->port());
  c->send_frame(ws::opcode::binary, "definitely not a msgtrans packet");
  auto f = c->read_data_or_close();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, ws::opcode::binary);
  EXPECT_EQ(f->payload, "definitely not a msgtrans packet");
}

TEST(ws_transport, non_packet_binary_is_closed_1002_by_the_session) {
  runtime_server srv(quiet_config());
  auto bystander = open_client(srv.port());
  ASSERT_TRUE(bystander->echo_ok(1));
  auto c = open_client(srv.port());
  c->send_frame(ws::opcode::binary, "definitely not a msgtrans packet");
  auto f = c->read_data_or_close();
  ASSERT_TRUE(f) << "no close frame";
  ASSERT_EQ(f->op, ws::opcode::close);
  EXPECT_EQ(f->close_code(), 1002);
  EXPECT_NE(f->close_reason().find("packet rejected"), std::string::npos) << f->close_reason();
  c->send_frame(ws::opcode::close, f->payload.substr(0, 2));
  EXPECT_TRUE(c->wait_eof());
  EXPECT_TRUE(bystander->echo_ok(2, "still here"));
}

TEST_F(ws_bad_input, oversized_message_closes_1009_before_the_body) {
  auto c = open_client(srv_->port());
  // Only the header of a 2000-byte frame: refused without waiting for the body.
  std::byte hdr[ws::max_header_size];
  std::array<std::uint8_t, 4> m{1, 2, 3, 4};
  auto n = ws::encode_frame_header(hdr, ws::opcode::binary, 2000, m.data());
  c->send_raw({reinterpret_cast<const char*>(hdr), n});
  auto f = c->read_frame();
  ASSERT_TRUE(f);
  ASSERT_EQ(f->op, ws::opcode::close);
  EXPECT_EQ(f->close_code(), 1009);
  EXPECT_TRUE(c->wait_eof());
  auto s = srv_->wait_close();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->reason, close_reason::limit_reached);
  EXPECT_EQ(s->transport_code, 1009);
}

TEST_F(ws_bad_input, oversized_across_fragments_closes_1009) {
  auto c = open_client(srv_->port());
  c->send_frame(ws::opcode::binary, std::string(600, 'a'), false);
  c->send_frame(ws::opcode::continuation, std::string(600, 'b'), true);
  auto f = c->read_frame();
  ASSERT_TRUE(f);
  ASSERT_EQ(f->op, ws::opcode::close);
  EXPECT_EQ(f->close_code(), 1009);
}

TEST_F(ws_bad_input, unmasked_client_frame_closes_1002) {
  auto c = open_client(srv_->port());
  c->send_frame(ws::opcode::binary, as_string(request_packet(5, "x")), true, /*mask=*/false);
  auto f = c->read_frame();
  ASSERT_TRUE(f);
  ASSERT_EQ(f->op, ws::opcode::close);
  EXPECT_EQ(f->close_code(), 1002);
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(ws_bad_input, invalid_close_code_closes_1002) {
  auto c = open_client(srv_->port());
  c->send_frame(ws::opcode::close, std::string("\x03\xED", 2));  // 1005 may not be sent
  expect_close(*c, 1002, "close frame");
}

TEST(ws_transport, handshake_that_never_completes_is_closed_after_the_timeout) {
  auto cfg = quiet_config();
  cfg.handshake_timeout = 300ms;
  test_server srv(cfg);
  auto bystander = open_client(srv.port());
  raw_client silent(srv.port());
  raw_client partial(srv.port());
  partial.send_raw("GET /msg HTTP/1.1\r\nHost: 127.0.0.1\r\n");  // never finished
  const auto t0 = clock_type::now();
  EXPECT_TRUE(silent.wait_eof());
  EXPECT_TRUE(partial.wait_eof());
  const auto took = clock_type::now() - t0;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(bystander->echo_ok(1));  // the established connection has no handshake deadline
}

TEST(ws_transport, client_that_never_answers_pings_is_closed_after_pong_timeout) {
  auto cfg = quiet_config();
  cfg.keep_alive_interval = 100ms;
  cfg.keep_alive_timeout = 300ms;
  test_server srv(cfg);
  // The polite peer is the transport's own client, which answers pings by itself.
  ws_client_config cc;
  cc.url = url(srv);
  test_client polite(cc);
  ASSERT_FALSE(polite.connect());
  auto mute = open_client(srv.port());

  // The raw one answers a few pings by hand: that keeps it open past the pong timeout.
  for (int i = 0; i < 5; ++i) {
    auto f = mute->read_frame();
    ASSERT_TRUE(f);
    ASSERT_EQ(f->op, ws::opcode::ping);
    mute->send_frame(ws::opcode::pong, f->payload);
  }
  // Then it stops answering, and is closed.
  auto ping = mute->read_frame();
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->op, ws::opcode::ping);
  const auto t0 = clock_type::now();
  auto f = mute->read_frame();
  ASSERT_TRUE(f);
  ASSERT_EQ(f->op, ws::opcode::close);
  EXPECT_EQ(f->close_code(), 1001);
  EXPECT_NE(f->close_reason().find("pong"), std::string::npos);
  EXPECT_GE(clock_type::now() - t0, 200ms);
  EXPECT_LT(clock_type::now() - t0, 3s);
  EXPECT_TRUE(mute->wait_eof());  // dropped at once: a peer that ignores pings won't answer a close
  EXPECT_LT(clock_type::now() - t0, 3s);
  auto s = srv.wait_close();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->reason, close_reason::idle_timeout);
  EXPECT_EQ(s->transport_code, 1001);

  // The polite one has answered every ping all along, and still echoes.
  polite.write({request_packet(7, "alive")});
  ASSERT_TRUE(polite.owner().wait_packets(1));
  EXPECT_EQ(decode(polite.owner().packets()[0])->message_id, 7u);
  EXPECT_FALSE(polite.owner().wait_closed(0ms));
}

TEST(ws_transport, idle_connection_is_closed_1001_by_the_session) {
  session_options so;
  so.idle_timeout = 300ms;  // idle is the session's (session_options), not the transport's
  runtime_server srv(quiet_config(), so);
  auto c = open_client(srv.port());
  ASSERT_TRUE(c->echo_ok(1));
  const auto t0 = clock_type::now();
  auto f = c->read_frame();
  ASSERT_TRUE(f);
  ASSERT_EQ(f->op, ws::opcode::close);
  EXPECT_EQ(f->close_code(), 1001);
  EXPECT_NE(f->close_reason().find("idle_timeout"), std::string::npos) << f->close_reason();
  EXPECT_GE(clock_type::now() - t0, 200ms);
  c->send_frame(ws::opcode::close, f->payload.substr(0, 2));
  EXPECT_TRUE(c->wait_eof());
}

TEST(ws_transport, listener_max_connections_is_applied_by_server_builder) {
  auto cfg = quiet_config();
  cfg.max_connections = 1;
  runtime_server srv(cfg);
  auto first = open_client(srv.port());
  ASSERT_TRUE(first->echo_ok(1));
  raw_client second(srv.port());
  EXPECT_EQ(second.handshake("/msg"), 101);  // upgraded, then refused by the runtime
  EXPECT_TRUE(second.wait_eof());
  EXPECT_EQ(srv.srv().stats().rejected_by_limit, 1u);
  EXPECT_TRUE(first->echo_ok(2));
}

TEST(ws_transport, allowed_origins) {
  auto cfg = quiet_config();
  cfg.allowed_origins = {"https://good.example"};
  test_server srv(cfg);
  raw_client good(srv.port()), case_differs(srv.port()), evil(srv.port()), none(srv.port());
  EXPECT_EQ(good.handshake("/msg", "Origin: https://good.example\r\n"), 101);
  EXPECT_TRUE(good.echo_ok(1));
  EXPECT_EQ(case_differs.handshake("/msg", "Origin: https://GOOD.example\r\n"), 101);
  EXPECT_EQ(evil.handshake("/msg", "Origin: https://evil.example\r\n"), 403);
  EXPECT_EQ(none.handshake("/msg"), 403);

  // The connector's extra headers carry the Origin.
  ws_client_config cc;
  cc.url = url(srv);
  cc.headers = {{"Origin", "https://good.example"}};
  test_client ok(cc);
  EXPECT_FALSE(ok.connect());
  cc.headers = {{"Origin", "https://evil.example"}};
  test_client refused(cc);
  const auto e = refused.connect();
  EXPECT_EQ(e, errc::protocol_error);
  // The status and the server's reason, not just "protocol error".
  EXPECT_EQ(e.detail, "HTTP 403 Forbidden: origin not allowed");
  EXPECT_EQ(e.message(), "HTTP 403 Forbidden: origin not allowed");
}

TEST(ws_transport, connector_errors) {
  test_server srv(quiet_config());
  ws_client_config cc;
  cc.url = "ws://127.0.0.1:" + std::to_string(srv.port()) + "/wrong";
  test_client wrong_path(cc);
  const auto e = wrong_path.connect();
  EXPECT_EQ(e, errc::protocol_error);
  EXPECT_EQ(e.detail, "HTTP 404 Not Found: no WebSocket endpoint at this path");

  // A listening socket that never answers: the handshake timeout fires.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(fd, 4);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  cc.url = "ws://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
  cc.handshake_timeout = 200ms;
  test_client mute(cc);
  const auto t0 = clock_type::now();
  const auto timed_out = mute.connect();
  EXPECT_EQ(timed_out, errc::timeout);
  EXPECT_EQ(timed_out.detail, "WebSocket handshake with 127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + " timed out");
  EXPECT_LT(clock_type::now() - t0, 3s);
  ::close(fd);

  ws_client_config http_url;
  http_url.url = "http://x/";
  EXPECT_THROW(make_connector(http_url), std::invalid_argument);
  ws_client_config bad_header;
  bad_header.url = "ws://x/";
  bad_header.headers = {{"Sec-WebSocket-Key", "x"}};
  EXPECT_THROW(make_connector(bad_header), std::invalid_argument);
}

TEST(ws_transport, ipv6_listener_and_url) {
  auto cfg = quiet_config();
  cfg.bind_address = "[::1]:0";
  test_server srv(cfg);
  if (srv.start_error()) GTEST_SKIP() << "no IPv6 loopback here: " << srv.start_detail();
  EXPECT_EQ(srv.lst().local_address().rfind("[::1]:", 0), 0u) << srv.lst().local_address();
  ws_client_config cc;
  cc.url = "ws://" + srv.lst().local_address();
  test_client cli(cc);
  ASSERT_FALSE(cli.connect());
  cli.write({request_packet(3, "v6")});
  ASSERT_TRUE(cli.owner().wait_packets(1));
  EXPECT_EQ(decode(cli.owner().packets()[0])->message_id, 3u);
}

TEST(ws_transport, connections_live_on_the_loop_pick_loop_returns) {
  // Accept on one loop, two connection loops picked in turn: each connection is
  // delivered on the loop it was picked for, and echoes there.
  asio::io_context accept_loop, a, b;
  auto ga = asio::make_work_guard(accept_loop), g1 = asio::make_work_guard(a), g2 = asio::make_work_guard(b);
  std::vector<std::thread> threads;
  for (auto* io : {&accept_loop, &a, &b}) threads.emplace_back([io] { io->run(); });
  std::atomic<int> picks{0}, on_a{0}, on_b{0}, wrong{0};
  std::mutex m;
  std::vector<std::unique_ptr<test::echo_owner>> owners;
  auto l = make_listener(quiet_config());
  ASSERT_FALSE(l->start(
      accept_loop,
      [&]() -> asio::io_context& {
        EXPECT_TRUE(accept_loop.get_executor().running_in_this_thread());
        return picks++ % 2 == 0 ? a : b;
      },
      [&](std::unique_ptr<connection> c) {
        asio::io_context* here = a.get_executor().running_in_this_thread()   ? &a
                                 : b.get_executor().running_in_this_thread() ? &b
                                                                             : nullptr;
        if (!here) {
          ++wrong;
          return;
        }
        ++(here == &a ? on_a : on_b);
        auto o = std::make_unique<test::echo_owner>(*here, std::move(c), nullptr);
        o->start();
        std::lock_guard lk(m);
        owners.push_back(std::move(o));
      },
      transport_context{}));
  const int port = std::stoi(l->local_address().substr(l->local_address().rfind(':') + 1));
  std::vector<std::unique_ptr<raw_client>> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(open_client(port));
  for (std::uint32_t i = 0; i < clients.size(); ++i) EXPECT_TRUE(clients[i]->echo_ok(i + 1));
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(on_a.load(), 5);
  EXPECT_EQ(on_b.load(), 5);
  clients.clear();
  std::promise<void> stopped;
  asio::post(accept_loop, [&] {
    l->stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  ga.reset();
  g1.reset();
  g2.reset();
  accept_loop.stop();
  a.stop();
  b.stop();
  for (auto& t : threads) t.join();
  owners.clear();  // loops stopped: no handler runs concurrently any more
}

TEST(ws_transport, reuse_port_lets_two_listeners_share_one_port) {
  auto cfg = quiet_config();
  cfg.reuse_port = true;
  test_server a(cfg);
  ASSERT_FALSE(a.start_error()) << a.start_detail();
  auto same = cfg;
  same.bind_address = "127.0.0.1:" + std::to_string(a.port());
  auto without = same;
  without.reuse_port = false;
  {
    test_server b(without);  // the port is taken, and b does not ask to share it
    EXPECT_EQ(b.start_error(), std::error_code(errc::bind_failed));
  }
  test_server c(same);
  ASSERT_FALSE(c.start_error()) << c.start_detail();
  EXPECT_EQ(c.port(), a.port());
  // The kernel spreads connections over both listeners (by a hash of the addresses):
  // with 32 connections, all of them landing on one listener has odds of 2^-31.
  std::vector<std::unique_ptr<raw_client>> clients;
  for (std::uint32_t i = 0; i < 32; ++i) {
    clients.push_back(open_client(a.port()));
    EXPECT_TRUE(clients.back()->echo_ok(i + 1));
  }
  EXPECT_GT(a.accepted(), 0);
  EXPECT_GT(c.accepted(), 0);
  EXPECT_EQ(a.accepted() + c.accepted(), 32);
}

// make() throws std::invalid_argument whose message names `field`.
template <class F>
void expect_names_field(F make, const std::string& field) {
  try {
    make();
    ADD_FAILURE() << "no exception for " << field;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(ws_transport, listener_configuration_errors) {
  ws_server_config c;
  c.bind_address = "nonsense";
  expect_names_field([&] { make_listener(c); }, "ws_server_config.bind_address");
  c = {};
  c.path = "msg";
  expect_names_field([&] { make_listener(c); }, "ws_server_config.path");
  c = {};
  c.tls_cert_file = "cert.pem";
  expect_names_field([&] { make_listener(c); }, "ws_server_config.tls_cert_file");
  c = {};
  c.keep_alive_timeout = 0ms;
  expect_names_field([&] { make_listener(c); }, "ws_server_config.keep_alive_timeout");
  c.keep_alive_interval = 0ms;  // no pings: no timeout needed
  EXPECT_NO_THROW(make_listener(c));
  c = {};
  c.handshake_timeout = 0ms;
  expect_names_field([&] { make_listener(c); }, "ws_server_config.handshake_timeout");
  ws_client_config cc;
  cc.url = "ws://127.0.0.1:1/";
  cc.connect_timeout = 0ms;
  expect_names_field([&] { make_connector(cc); }, "ws_client_config.connect_timeout");
  cc = {};
  cc.url = "wss://127.0.0.1:1/";
  cc.tls_ca_file = "/nonexistent/ca.pem";
  expect_names_field([&] { make_connector(cc); }, "ws_client_config.tls_ca_file");

  // A port in use: bind_failed, naming the address.
  test_server first(quiet_config());
  auto cfg = quiet_config();
  cfg.bind_address = "127.0.0.1:" + std::to_string(first.port());
  test_server second(cfg);
  EXPECT_EQ(second.start_error(), errc::bind_failed);
  EXPECT_NE(second.start_detail().find(cfg.bind_address), std::string::npos);
}

// ---- wss --------------------------------------------------------------------------------

class ws_tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("msgtrans_wss_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    auto run = [](const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); };
    // A throw-away certificate for localhost and 127.0.0.1, made here, trusted by nobody.
    ASSERT_EQ(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
                  " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
                  " -keyout " + (dir_ / "key.pem").string() + " -out " + (dir_ / "cert.pem").string()),
              0);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static ws_server_config tls_config() {
    auto c = quiet_config();
    c.tls_cert_file = (dir_ / "cert.pem").string();
    c.tls_key_file = (dir_ / "key.pem").string();
    return c;
  }
  static inline std::filesystem::path dir_;
};

TEST_F(ws_tls, verification_rejects_unknown_cert_and_accepts_it_with_ca_file) {
  test_server srv(tls_config());
  ASSERT_FALSE(srv.start_error()) << srv.start_detail();
  EXPECT_EQ(srv.lst().protocol(), "wss");

  ws_client_config cc;
  cc.url = url(srv, "wss", "localhost");
  {
    test_client strict(cc);
    auto ec = strict.connect();
    EXPECT_EQ(ec, errc::tls_error) << ec.message();
    EXPECT_NE(ec.message().find("TLS handshake with 127.0.0.1:"), std::string::npos) << ec.message();
    EXPECT_NE(ec.message().find("certificate verify failed"), std::string::npos) << ec.message();
    EXPECT_NE(ec.message().find("self-signed"), std::string::npos) << ec.message();
  }
  cc.tls_ca_file = (dir_ / "cert.pem").string();
  {
    test_client trusted(cc);
    ASSERT_FALSE(trusted.connect());
    EXPECT_EQ(trusted.info().protocol, "wss");
    std::vector<byte_buffer> batch;
    for (std::uint32_t id = 1; id <= 50; ++id) batch.push_back(request_packet(id, std::string(id * 100, 's')));
    trusted.write(std::move(batch));
    ASSERT_TRUE(trusted.owner().wait_packets(50));
    EXPECT_EQ(decode(trusted.owner().packets().back())->payload.size(), 5000u);
  }
  {
    ws_client_config by_ip = cc;
    by_ip.url = url(srv, "wss", "127.0.0.1");  // the certificate names the IP too
    test_client c(by_ip);
    EXPECT_FALSE(c.connect());
  }
  {
    ws_client_config wrong_name = cc;
    wrong_name.tls_server_name = "other.example";
    test_client c(wrong_name);
    EXPECT_TRUE(c.connect());
  }
  {
    ws_client_config insecure;
    insecure.url = url(srv, "wss", "localhost");
    insecure.tls_insecure_skip_verify = true;
    test_client c(insecure);
    EXPECT_FALSE(c.connect());
  }
  // A plain ws client on the wss port does not get in.
  {
    raw_client plain(srv.port());
    EXPECT_NE(plain.handshake("/msg"), 101);
  }
}

TEST_F(ws_tls, bad_certificate_file_is_reported_by_start) {
  auto c = tls_config();
  c.tls_cert_file = (dir_ / "missing.pem").string();
  test_server srv(c);
  EXPECT_EQ(srv.start_error(), errc::tls_error);
  EXPECT_NE(srv.start_detail().find("missing.pem"), std::string::npos);
}

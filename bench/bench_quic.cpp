// QUIC transport benchmark over 127.0.0.1: server and client each on their own thread
// (one io_context each), as the runtime would run them.
//   bench_quic [seconds] [bulk|rate|latency|all] [gso|nogso] [max UDP payload, 0 = per path]
// 1. bulk: 1 MiB one-way messages client -> server, one connection (Gbit/s of payload)
// 2. rate: 64-byte requests echoed by the server, 32 in flight (messages/s)
// 3. lock-step: 64-byte request/response, 1 in flight (p50 / p99 latency)
#include <msgtrans/packet.hpp>
#include <msgtrans/quic.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace msgtrans;
using clk = std::chrono::steady_clock;
namespace asio = boost::asio;

namespace {

// Writes whatever is queued as one batch; the next batch after on_write_done.
struct bench_owner final : connection_owner {
  std::unique_ptr<connection> conn;
  std::vector<byte_buffer> queued, in_flight;
  bool writing = false;
  std::function<void(bytes_view)> on_pkt;
  std::function<void()> on_done;
  std::size_t rx_bytes = 0, rx_packets = 0;

  void send(byte_buffer b) {
    queued.push_back(std::move(b));
    pump();
  }
  void pump() {
    if (writing || queued.empty()) return;
    in_flight.swap(queued);
    queued.clear();
    std::vector<bytes_view> v(in_flight.begin(), in_flight.end());
    writing = true;
    conn->write(v);
  }
  void on_packet(bytes_view p) override {
    rx_bytes += p.size();
    ++rx_packets;
    if (on_pkt) on_pkt(p);
  }
  void on_write_done() override {
    writing = false;
    in_flight.clear();
    if (on_done) on_done();
    pump();
  }
  void on_closed(close_info i) override {
    if (i.reason != close_reason::normal && i.reason != close_reason::peer_closed)
      std::fprintf(stderr, "closed: %s %s\n", to_string(i.reason), i.detail.c_str());
  }
};

byte_buffer packet_of(std::size_t payload, packet_type t = packet_type::one_way, std::uint32_t id = 1) {
  packet p;
  p.type = t;
  p.message_id = id;
  p.payload.resize(payload);
  return std::move(encode(p).value());
}

struct loop_thread {
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  std::thread t{[this] { ioc.run(); }};
  ~loop_thread() {
    work.reset();
    ioc.stop();
    t.join();
  }
  template <class F>
  auto run(F f) {
    std::promise<decltype(f())> p;
    asio::post(ioc, [&] {
      if constexpr (std::is_void_v<decltype(f())>) {
        f();
        p.set_value();
      } else {
        p.set_value(f());
      }
    });
    return p.get_future().get();
  }
};

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  const std::string only = argc > 2 ? argv[2] : "all";  // bulk | rate | latency | all
  const bool gso = !(argc > 3 && std::string(argv[3]) == "nogso");  // compare with plain sendmmsg
  const std::size_t payload = argc > 4 ? static_cast<std::size_t>(std::atol(argv[4])) : 0;  // e.g. 1452
  loop_thread server_loop, client_loop;
  quic_server_config scfg;
  scfg.bind_address = "127.0.0.1:0";
  scfg.connection.udp_gso = gso;
  scfg.connection.max_udp_payload = payload;
  std::unique_ptr<listener> l = make_listener(scfg);
  std::vector<std::unique_ptr<bench_owner>> server_side;
  auto started = server_loop.run([&] {
    return l->start(
        server_loop.ioc, [&]() -> asio::io_context& { return server_loop.ioc; },
        [&](std::unique_ptr<connection> c) {
          auto o = std::make_unique<bench_owner>();
          o->conn = std::move(c);
          bench_owner* raw = o.get();
          // Echo requests as responses; count one-way bytes.
          o->on_pkt = [raw](bytes_view p) {
            auto h = decode_header(p);
            if (h && h->type == packet_type::request) {
              byte_buffer r(p.begin(), p.end());
              r[2] = std::byte{2};
              raw->send(std::move(r));
            }
          };
          raw->conn->start(*raw);
          server_side.push_back(std::move(o));
        },
        transport_context{});
  });
  if (started) {
    std::fprintf(stderr, "listen: %s\n", started.message().c_str());
    return 1;
  }
  const std::string addr = server_loop.run([&] { return l->local_address(); });

  auto connect = [&] {
    quic_client_config ccfg;
    ccfg.address = addr;
    ccfg.tls_insecure_skip_verify = true;
    ccfg.connection.udp_gso = gso;
    ccfg.connection.max_udp_payload = payload;
    auto conn = make_connector(ccfg);
    std::promise<std::unique_ptr<connection>> p;
    client_loop.run([&] {
      conn->connect(client_loop.ioc, std::chrono::seconds(5), {}, [&](msgtrans::error_info e, std::unique_ptr<connection> c) {
        if (e) std::fprintf(stderr, "connect: %s\n", e.message().c_str());
        p.set_value(std::move(c));
      });
    });
    return p.get_future().get();
  };

  // 1. bulk
  if (only == "all" || only == "bulk") {
    auto client = std::make_unique<bench_owner>();
    client->conn = connect();
    if (!client->conn) return 1;
    const auto msg = packet_of(1024 * 1024 - header_size);
    std::atomic<bool> stop{false};
    clk::time_point t0;
    std::size_t sent = 0;
    client_loop.run([&] {
      client->conn->start(*client);
      t0 = clk::now();
      client->on_done = [&] {
        if (!stop) {
          client->send(msg);
          ++sent;
        }
      };
      client->send(msg);
      client->send(msg);
      sent = 2;
    });
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const std::size_t rx = server_loop.run([&] { return server_side.back()->rx_bytes; });
    const double dt = std::chrono::duration<double>(clk::now() - t0).count();
    stop = true;
    std::printf("bulk 1 MiB messages, 1 connection: %.2f Gbit/s (%.0f MiB/s, %zu messages)\n", rx * 8 / dt / 1e9,
                rx / dt / 1048576, server_loop.run([&] { return server_side.back()->rx_packets; }));
    client_loop.run([&] { client->conn->close({}); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    client_loop.run([&] { client.reset(); });
  }

  // 2. 64-byte requests, 32 in flight
  if (only == "all" || only == "rate") {
    auto client = std::make_unique<bench_owner>();
    client->conn = connect();
    if (!client->conn) return 1;
    const auto req = packet_of(64 - header_size, packet_type::request);
    std::atomic<bool> stop{false};
    clk::time_point t0;
    client_loop.run([&] {
      client->conn->start(*client);
      client->on_pkt = [&](bytes_view) {
        if (!stop) client->send(req);
      };
      t0 = clk::now();
      for (int i = 0; i < 32; ++i) client->send(req);
    });
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const std::size_t n = client_loop.run([&] { return client->rx_packets; });
    const double dt = std::chrono::duration<double>(clk::now() - t0).count();
    stop = true;
    std::printf("64-byte requests, 32 in flight, 1 connection: %.0f responses/s\n", n / dt);
    client_loop.run([&] { client->conn->close({}); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    client_loop.run([&] { client.reset(); });
  }

  // 3. lock-step latency
  if (only == "all" || only == "latency") {
    auto client = std::make_unique<bench_owner>();
    client->conn = connect();
    if (!client->conn) return 1;
    const auto req = packet_of(64 - header_size, packet_type::request);
    std::atomic<bool> stop{false};
    std::vector<double> rtts;
    clk::time_point sent_at;
    client_loop.run([&] {
      client->conn->start(*client);
      client->on_pkt = [&](bytes_view) {
        rtts.push_back(std::chrono::duration<double, std::micro>(clk::now() - sent_at).count());
        if (!stop) {
          sent_at = clk::now();
          client->send(req);
        }
      };
      sent_at = clk::now();
      client->send(req);
    });
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds / 2));
    stop = true;
    auto v = client_loop.run([&] { return rtts; });
    std::sort(v.begin(), v.end());
    if (!v.empty())
      std::printf("64-byte lock-step request/response: %zu round trips, p50 %.1f us, p99 %.1f us\n", v.size(),
                  v[v.size() / 2], v[v.size() * 99 / 100]);
    client_loop.run([&] { client->conn->close({}); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    client_loop.run([&] { client.reset(); });
  }
  server_loop.run([&] {
    l->stop();
    server_side.clear();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  return 0;
}

// ws_echo_fixture: a WebSocket echo server on the ws transport alone (no runtime), for
// the real-peer tests (Node ws, Python websockets, Chromium) and the load measurement.
//
//   ws_echo_fixture [--bind HOST:PORT] [--path /P] [--threads N] [--tls-cert F --tls-key F]
//                   [--max-message N] [--handshake-ms N] [--ping-ms N]
//                   [--pong-ms N] [--origin O]...
//
// Prints "listening ws HOST:PORT/PATH" (or wss) once bound, then serves until SIGINT or
// SIGTERM, when it closes every connection with 1001 and exits 0.
#include "echo_owner.hpp"

#include <msgtrans/ws.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <thread>

using namespace msgtrans;

int main(int argc, char** argv) {
  ws_server_config cfg;
  transport_context ctx;
  unsigned threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    auto ms = [&] { return std::chrono::milliseconds(std::stoll(next())); };
    if (a == "--bind") cfg.bind_address = next();
    else if (a == "--path") cfg.path = next();
    else if (a == "--threads") threads = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--tls-cert") cfg.tls_cert_file = next();
    else if (a == "--tls-key") cfg.tls_key_file = next();
    else if (a == "--max-message") ctx.limits.max_message_size = std::stoull(next());
    else if (a == "--handshake-ms") cfg.handshake_timeout = ms();
    else if (a == "--ping-ms") cfg.keep_alive_interval = ms();
    else if (a == "--pong-ms") cfg.keep_alive_timeout = ms();
    else if (a == "--origin") cfg.allowed_origins.push_back(next());
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (threads == 0) threads = 1;

  std::vector<std::unique_ptr<boost::asio::io_context>> loops;
  for (unsigned i = 0; i < threads; ++i) loops.push_back(std::make_unique<boost::asio::io_context>(1));
  // Each loop's owners, touched only on that loop.
  std::vector<std::set<test::echo_owner*>> owners(threads);
  std::atomic<unsigned> rr{0};

  auto listener = make_listener(cfg);
  auto ec = listener->start(
      *loops[0], [&]() -> boost::asio::io_context& { return *loops[rr++ % threads]; },
      [&](std::unique_ptr<connection> c) {
        // On the connection's loop: find which one.
        unsigned idx = 0;
        for (unsigned i = 0; i < threads; ++i)
          if (loops[i]->get_executor().running_in_this_thread()) idx = i;
        auto* o = new test::echo_owner(*loops[idx], std::move(c), [&, idx](test::echo_owner* self, close_info) {
          owners[idx].erase(self);
          boost::asio::post(*loops[idx], [self] { delete self; });
        });
        owners[idx].insert(o);
        o->start();
      },
      ctx);
  if (ec) {
    std::cerr << "ws_echo_fixture: " << ec.message() << "\n";
    return 1;
  }
  std::printf("listening %s %s\n", listener->protocol().c_str(), listener->local_address().c_str());
  std::fflush(stdout);

  using guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<guard> guards;
  for (auto& l : loops) guards.emplace_back(l->get_executor());
  boost::asio::signal_set signals(*loops[0], SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) {
    listener->stop();
    for (auto& g : guards) g.reset();
    for (unsigned i = 0; i < threads; ++i)
      boost::asio::post(*loops[i], [&, i] {
        auto copy = owners[i];
        for (auto* o : copy) o->conn().close({close_reason::shutdown, {}, "server shutting down", 0});
        // Loops end once their last connection is closed.
      });
  });

  std::vector<std::thread> workers;
  for (unsigned i = 1; i < threads; ++i) workers.emplace_back([&, i] { loops[i]->run(); });
  loops[0]->run();
  for (auto& w : workers) w.join();
  return 0;
}

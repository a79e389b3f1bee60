// Helpers for the QUIC transport tests: a test owner (records packets, echoes them if
// asked) and event loops driven until a condition holds or a deadline passes.
#pragma once

#include <msgtrans/error.hpp>
#include <msgtrans/packet.hpp>
#include <msgtrans/quic.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace msgtrans::test {

using namespace std::chrono_literals;

/// Runs `ioc` until `pred()` holds; false if `limit` passes first.
inline bool run_until(boost::asio::io_context& ioc, const std::function<bool()>& pred,
                      std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    ioc.restart();
    ioc.run_one_for(20ms);
  }
  return true;
}

/// A packet whose payload is `n` bytes of a pattern derived from `id`.
inline byte_buffer make_packet(std::uint32_t id, std::size_t n) {
  byte_buffer payload(n);
  for (std::size_t i = 0; i < n; ++i) payload[i] = std::byte(static_cast<std::uint8_t>(id * 31 + i * 7));
  auto enc = encode(packet::one_way(id, payload));
  return std::move(enc.value());
}

/// Records what the connection delivers; optionally echoes every packet back.
class test_owner final : public connection_owner {
 public:
  explicit test_owner(bool echo = false) : echo_(echo) {}

  void attach(std::unique_ptr<connection> c) {
    conn = std::move(c);
    if (!conn) return;
    conn->start(*this);
    pump();  // anything sent before the connection was attached
  }
  void send(byte_buffer p) {
    queue_.push_back(std::move(p));
    pump();
  }
  bool idle() const { return !writing_ && queue_.empty(); }

  void on_packet(bytes_view p) override {
    received.emplace_back(p.begin(), p.end());
    received_bytes += p.size();
    if (on_packet_hook) on_packet_hook(p);
    if (echo_) send(byte_buffer(p.begin(), p.end()));
  }
  void on_write_done() override {
    ++write_dones;
    writing_ = false;
    in_flight_.clear();
    pump();
  }
  void on_closed(close_info info) override {
    ++closed_count;
    closed = std::move(info);
  }

  std::unique_ptr<connection> conn;
  std::vector<byte_buffer> received;
  std::size_t received_bytes = 0;
  std::size_t write_dones = 0;
  int closed_count = 0;
  std::optional<close_info> closed;
  std::function<void(bytes_view)> on_packet_hook;

 private:
  void pump() {
    if (writing_ || queue_.empty() || !conn || closed) return;
    in_flight_.clear();
    while (!queue_.empty()) {
      in_flight_.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    std::vector<bytes_view> views;
    for (auto& b : in_flight_) views.emplace_back(b);
    writing_ = true;
    conn->write(views);
  }

  bool echo_;
  bool writing_ = false;
  std::deque<byte_buffer> queue_;
  std::vector<byte_buffer> in_flight_;
};

/// A temporary file path removed at scope exit.
struct temp_path {
  std::string path;
  explicit temp_path(const std::string& name)
      : path((std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))).string()) {}
  ~temp_path() { std::filesystem::remove(path); }
};

/// A server config on 127.0.0.1, any port, self-signed, written to `cert_out`.
inline quic_server_config server_config(const std::string& cert_out = {}) {
  quic_server_config c;
  c.bind_address = "127.0.0.1:0";
  c.write_self_signed_cert_to = cert_out;
  c.connection.initial_rtt = 10ms;
  return c;
}

inline quic_client_config client_config(const std::string& address, const std::string& ca_file) {
  quic_client_config c;
  c.address = address;
  c.tls_ca_file = ca_file;
  c.connection.initial_rtt = 10ms;
  return c;
}

/// A listener started on `ioc` that hands every accepted connection to a new owner.
struct test_server {
  boost::asio::io_context& ioc;
  std::unique_ptr<listener> l;
  std::vector<std::unique_ptr<test_owner>> owners;
  bool echo;
  std::function<void(test_owner&)> on_accept_hook;

  test_server(boost::asio::io_context& io, const quic_server_config& cfg, bool echo_packets = true,
              transport_context ctx = {})
      : ioc(io), l(make_listener(cfg)), echo(echo_packets) {
    auto e = l->start(
        ioc, [this]() -> boost::asio::io_context& { return ioc; },
        [this](std::unique_ptr<connection> c) {
          owners.push_back(std::make_unique<test_owner>(echo));
          if (on_accept_hook) on_accept_hook(*owners.back());  // before start: sees every packet
          owners.back()->attach(std::move(c));
        },
        ctx);
    EXPECT_FALSE(e) << e.message();
  }
  std::string address() const { return l->local_address(); }
};

/// Connects and returns the connection (nullptr on failure, with `ec` and its detail).
inline std::unique_ptr<connection> connect(boost::asio::io_context& ioc, const quic_client_config& cfg,
                                           error_info& ec, std::chrono::milliseconds timeout = 5s,
                                           transport_context ctx = {}) {
  auto conn = make_connector(cfg);
  bool done = false;
  std::unique_ptr<connection> out;
  conn->connect(ioc, timeout, ctx, [&](msgtrans::error_info e, std::unique_ptr<connection> c) {
    done = true;
    ec = e;
    out = std::move(c);
  });
  if (!run_until(ioc, [&] { return done; }, timeout + 5s)) ec = errc::timeout;
  return out;
}

/// The same, for tests that look at the code only.
inline std::unique_ptr<connection> connect(boost::asio::io_context& ioc, const quic_client_config& cfg,
                                           std::error_code& ec, std::chrono::milliseconds timeout = 5s,
                                           transport_context ctx = {}) {
  error_info e;
  auto out = connect(ioc, cfg, e, timeout, std::move(ctx));
  ec = e.code;
  return out;
}

}  // namespace msgtrans::test

// Helpers for the integration tests: a raw blocking TCP peer (to send bytes our own
// client never would), packet builders, and waiting on events with deadlines.
#pragma once

#include "support/expect_invalid.hpp"

#include <msgtrans/msgtrans.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <poll.h>
#include <stdexcept>
#include <string>

namespace msgtrans::test {

using namespace std::chrono_literals;

/// Waits (with a deadline) until a predicate over shared state holds.
class waiter {
 public:
  template <class F>
  void update(F&& f) {
    {
      std::lock_guard lock(mu_);
      f();
    }
    cv_.notify_all();
  }
  template <class P>
  bool wait(P&& pred, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, pred);
  }
  std::mutex& mutex() { return mu_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

inline byte_buffer encode_packet(packet_type t, std::uint32_t id, std::string_view payload, std::uint8_t biz = 0,
                                 std::uint16_t flags = 0) {
  packet p;
  p.type = t;
  p.message_id = id;
  p.biz_type = biz;
  p.flags = flags;
  p.payload = to_buffer(as_bytes(payload));
  return encode(p).value();
}

/// A blocking raw TCP peer.
class raw_peer {
 public:
  explicit raw_peer(const std::string& host_port) : sock_(io_) {
    auto colon = host_port.rfind(':');
    boost::asio::ip::tcp::resolver r(io_);
    boost::asio::connect(sock_, r.resolve(host_port.substr(0, colon), host_port.substr(colon + 1)));
  }
  /// Writes all of `b`; false if the server closed or reset the connection meanwhile.
  bool write(bytes_view b) {
    boost::system::error_code ec;
    boost::asio::write(sock_, boost::asio::buffer(b.data(), b.size()), ec);
    return !ec;
  }
  bool write(const byte_buffer& b) { return write(bytes_view(b)); }
  /// Reads one whole packet, or nullopt on EOF/error/timeout.
  std::optional<packet> read_packet(std::chrono::milliseconds timeout = 5s) {
    std::byte hdr[header_size];
    if (!read_exact(hdr, header_size, timeout)) return std::nullopt;
    auto h = decode_header({hdr, header_size}, decode_limits{1u << 30, 65535});
    if (!h) return std::nullopt;
    byte_buffer all(hdr, hdr + header_size);
    all.resize(h->total_size());
    if (!read_exact(all.data() + header_size, all.size() - header_size, timeout)) return std::nullopt;
    auto p = decode(all, decode_limits{1u << 30, 65535});
    if (!p) return std::nullopt;
    return *p;
  }
  /// True when the server closed the connection (EOF or reset) within the timeout.
  bool wait_closed(std::chrono::milliseconds timeout = 5s) {
    std::byte b[4096];
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{sock_.native_handle(), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return false;
      boost::system::error_code ec;
      sock_.read_some(boost::asio::buffer(b), ec);
      if (ec) return true;
    }
  }
  boost::asio::ip::tcp::socket& socket() { return sock_; }

 private:
  bool read_exact(std::byte* p, std::size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t got = 0;
    while (got < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{sock_.native_handle(), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return false;
      boost::system::error_code ec;
      got += sock_.read_some(boost::asio::buffer(p + got, n - got), ec);
      if (ec) return false;
    }
    return true;
  }
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket sock_;
};

/// A loopback port nothing listens on (bound once, then released).
inline unsigned short unused_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return probe.local_endpoint().port();
}

/// The address of a server's first listener.
inline std::string address_of(const server& s, std::size_t i = 0) { return s.local_addresses().at(i).second; }

}  // namespace msgtrans::test

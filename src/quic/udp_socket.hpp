// A non-blocking UDP socket on an Asio loop that sends and receives in batches
// (sendmmsg / recvmmsg, plus UDP GSO / GRO where the kernel has them): one system call
// moves many QUIC packets.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>

namespace msgtrans::quic_detail {

class udp_socket {
 public:
  /// One received datagram. `data` may be modified; it is valid only during the call.
  using datagram_handler = std::function<void(const sockaddr* from, socklen_t fromlen, std::uint8_t* data,
                                              std::size_t len)>;

  explicit udp_socket(boost::asio::io_context& loop) : sock_(loop) {}

  /// Opens and binds, with SO_SNDBUF/SO_RCVBUF of `buffer_size`, and GSO/GRO if `gso`.
  std::error_code open(const boost::asio::ip::udp::endpoint& bind, int buffer_size, bool gso);
  boost::asio::ip::udp::endpoint local_endpoint() const;
  bool is_open() const { return sock_.is_open(); }
  void close();

  /// Sends `n` datagrams laid out back to back in `buf` (the i-th is lens[i] bytes) to
  /// one address, in as few system calls as possible. Datagrams the kernel refuses
  /// (full buffer) are dropped and counted: QUIC's loss recovery resends their content.
  void send(const sockaddr* to, socklen_t tolen, const std::uint8_t* buf, const std::size_t* lens,
            std::size_t n);

  /// Receives until close(): `on_datagram` for each datagram, `on_batch_end` after each
  /// batch (the moment to flush what the datagrams produced). `keep_alive` is held while
  /// a receive is pending, so the owner lives as long as its socket is open.
  void start_receive(datagram_handler on_datagram, std::function<void()> on_batch_end,
                     std::shared_ptr<void> keep_alive);

  std::uint64_t send_drops() const noexcept { return send_drops_; }
  std::uint64_t send_calls() const noexcept { return send_calls_; }

 private:
  void arm(std::shared_ptr<void> keep_alive);
  void receive_batches();

  boost::asio::ip::udp::socket sock_;
  datagram_handler on_datagram_;
  std::function<void()> on_batch_end_;
  bool gso_ = false;  // UDP_SEGMENT sends
  bool gro_ = false;  // UDP_GRO receives
  std::uint64_t send_drops_ = 0;
  std::uint64_t send_calls_ = 0;
};

/// Parses "host:port" / "[v6]:port" into host and port; false if malformed.
bool split_host_port(const std::string& address, std::string& host, std::string& port);

}  // namespace msgtrans::quic_detail

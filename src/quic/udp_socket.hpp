// A non-blocking UDP socket on an Asio loop that sends and receives in batches
// (sendmmsg / recvmmsg, plus UDP GSO / GRO where the kernel has them): one system call
// moves many QUIC packets.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <system_error>
#include <vector>

namespace msgtrans::quic_detail {

class udp_socket {
 public:
  /// One received datagram. `data` may be modified; it is valid only during the call.
  using datagram_handler = std::function<void(const sockaddr* from, socklen_t fromlen, std::uint8_t* data,
                                              std::size_t len)>;

  explicit udp_socket(boost::asio::io_context& loop) : sock_(loop) {}

  /// Opens and binds, with SO_SNDBUF/SO_RCVBUF of `buffer_size`, and GSO/GRO if `gso`;
  /// with SO_REUSEPORT if `reuse_port` (several sockets of this process on one port).
  std::error_code open(const boost::asio::ip::udp::endpoint& bind, int buffer_size, bool gso,
                       bool reuse_port = false);
  /// For the SO_REUSEPORT group this socket is in: the kernel gives each datagram to
  /// socket number (first byte of the QUIC destination connection ID) % `count`, where
  /// sockets are numbered in the order they were bound.
  std::error_code steer_by_connection_id(std::size_t count);
  boost::asio::ip::udp::endpoint local_endpoint() const;
  bool is_open() const { return sock_.is_open(); }
  void close();

  /// Sends `n` datagrams laid out back to back in `buf` (the i-th is lens[i] bytes) to
  /// one address, in as few system calls as possible. When the kernel's buffer is full
  /// (EAGAIN), what it did not take is kept, in order, and goes first once the socket is
  /// writable again; then the `on_writable` callback runs. Returns false while that is so
  /// (`blocked()`): callers should stop producing packets until `on_writable`. A datagram
  /// the kernel refuses for good (an error for that destination) is dropped and counted.
  bool send(const sockaddr* to, socklen_t tolen, const std::uint8_t* buf, const std::size_t* lens,
            std::size_t n, bool coalesce = false);
  bool blocked() const noexcept { return !pending_.empty(); }
  /// Server sockets: small sends marked `coalesce` (up to `coalesce_bytes` per call) are copied and leave
  /// together, in one sendmmsg per loop turn (a posted handler, after the turn's other
  /// handlers), instead of one system call per connection. Order is kept: a send that is
  /// not coalesced, and close(), send what is staged first.
  void set_coalesce(bool on) noexcept { coalesce_ = on; }
  static constexpr std::size_t coalesce_bytes = 16 * 1024;
  static constexpr std::size_t max_staged = 64;  // datagrams per coalesced sendmmsg
  void set_on_writable(std::function<void()> f) { on_writable_ = std::move(f); }

  /// Test hook: replaces ::sendmmsg for every socket (nullptr restores it).
  using sendmmsg_fn = int (*)(int, mmsghdr*, unsigned, int);
  static void set_sendmmsg_for_tests(sendmmsg_fn f) noexcept;

  /// Receives until close(): `on_datagram` for each datagram, `on_batch_end` after each
  /// batch (the moment to flush what the datagrams produced). `keep_alive` is held while
  /// a receive is pending, so the owner lives as long as its socket is open.
  void start_receive(datagram_handler on_datagram, std::function<void()> on_batch_end,
                     std::shared_ptr<void> keep_alive);

  std::uint64_t send_drops() const noexcept { return send_drops_; }
  std::uint64_t send_calls() const noexcept { return send_calls_; }
  /// Times a send found the kernel's buffer full and waited for it to drain.
  std::uint64_t send_blocks() const noexcept { return send_blocks_; }

 private:
  void arm(std::shared_ptr<void> keep_alive);
  void receive_batches();
  // Sends until done or EAGAIN; returns how many datagrams it got past (sent or dropped).
  std::size_t try_send(const sockaddr* to, socklen_t tolen, const std::uint8_t* buf, const std::size_t* lens,
                       std::size_t n);
  void keep_pending(const sockaddr* to, socklen_t tolen, const std::uint8_t* buf, const std::size_t* lens,
                    std::size_t n);
  void wait_writable();
  void flush_staged();
  void on_writable_ready();

  struct pending_run {  // datagrams to one address, back to back
    sockaddr_storage to;
    socklen_t tolen;
    std::vector<std::uint8_t> bytes;
    std::vector<std::size_t> lens;
  };

  boost::asio::ip::udp::socket sock_;
  datagram_handler on_datagram_;
  std::function<void()> on_batch_end_;
  std::function<void()> on_writable_;
  std::weak_ptr<void> owner_;  // what start_receive was given: kept alive by a pending wait
  std::deque<pending_run> pending_;
  struct staged_datagram {
    sockaddr_storage to;
    socklen_t tolen;
    std::size_t offset, len;  // in staged_bytes_
  };
  std::vector<staged_datagram> staged_;
  std::vector<std::uint8_t> staged_bytes_;
  bool coalesce_ = false;
  bool flush_posted_ = false;
  std::size_t pending_bytes_ = 0;
  bool waiting_writable_ = false;
  bool gso_ = false;  // UDP_SEGMENT sends
  bool gro_ = false;  // UDP_GRO receives
  std::uint64_t send_drops_ = 0;
  std::uint64_t send_calls_ = 0;
  std::uint64_t send_blocks_ = 0;
};


}  // namespace msgtrans::quic_detail

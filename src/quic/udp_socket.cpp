// Batched UDP I/O. Receive buffers are per thread: every socket of a loop shares them,
// since a batch is handled completely before the next receive on that thread.
#include "quic/udp_socket.hpp"

#include <boost/asio/socket_base.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace msgtrans::quic_detail {
namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {
constexpr std::size_t rx_batch = 64;       // datagrams per recvmmsg
constexpr std::size_t rx_size = 2048;      // larger than any QUIC packet we accept (1500 MTU)
constexpr std::size_t rx_batches_per_wakeup = 8;  // then yield to other sockets of the loop
constexpr std::size_t tx_batch = 64;

struct rx_buffers {
  std::array<std::array<std::uint8_t, rx_size>, rx_batch> data;
  std::array<sockaddr_storage, rx_batch> from;
  std::array<iovec, rx_batch> iov;
  std::array<mmsghdr, rx_batch> msgs;
};
}  // namespace

std::error_code udp_socket::open(const udp::endpoint& bind, int buffer_size) {
  boost::system::error_code ec;
  sock_.open(bind.protocol(), ec);
  if (!ec) sock_.non_blocking(true, ec);
  if (!ec && buffer_size > 0) {
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    boost::system::error_code ignored;
    sock_.set_option(asio::socket_base::receive_buffer_size(buffer_size), ignored);
    sock_.set_option(asio::socket_base::send_buffer_size(buffer_size), ignored);
  }
  if (!ec) sock_.bind(bind, ec);
  if (ec) {
    boost::system::error_code ignored;
    sock_.close(ignored);
    return std::error_code(ec.value(), std::system_category());
  }
  return {};
}

udp::endpoint udp_socket::local_endpoint() const {
  boost::system::error_code ec;
  return sock_.local_endpoint(ec);
}

void udp_socket::close() {
  boost::system::error_code ignored;
  sock_.close(ignored);
}

void udp_socket::send(const sockaddr* to, socklen_t tolen, const std::uint8_t* buf, const std::size_t* lens,
                      std::size_t n) {
  if (!sock_.is_open()) return;
  std::array<iovec, tx_batch> iov;
  std::array<mmsghdr, tx_batch> msgs;
  std::size_t done = 0;
  while (done < n) {
    const std::size_t k = std::min(n - done, tx_batch);
    for (std::size_t i = 0; i < k; ++i) {
      iov[i] = {const_cast<std::uint8_t*>(buf), lens[done + i]};
      buf += lens[done + i];
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = const_cast<sockaddr*>(to);
      msgs[i].msg_hdr.msg_namelen = tolen;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    std::size_t sent = 0;
    while (sent < k) {
      ++send_calls_;
      int rv = ::sendmmsg(sock_.native_handle(), msgs.data() + sent, static_cast<unsigned>(k - sent), 0);
      if (rv < 0) {
        if (errno == EINTR) continue;
        // EAGAIN (buffer full) or a per-destination error: drop this datagram and go on.
        ++send_drops_;
        ++sent;
        continue;
      }
      sent += static_cast<std::size_t>(rv);
    }
    done += k;
  }
}

void udp_socket::start_receive(datagram_handler on_datagram, std::function<void()> on_batch_end,
                               std::shared_ptr<void> keep_alive) {
  on_datagram_ = std::move(on_datagram);
  on_batch_end_ = std::move(on_batch_end);
  arm(std::move(keep_alive));
}

void udp_socket::arm(std::shared_ptr<void> keep_alive) {
  sock_.async_wait(udp::socket::wait_read, [this, keep = std::move(keep_alive)](boost::system::error_code ec) mutable {
    if (ec || !sock_.is_open()) return;
    receive_batches();
    if (sock_.is_open()) arm(std::move(keep));
  });
}

void udp_socket::receive_batches() {
  thread_local std::unique_ptr<rx_buffers> tl = std::make_unique<rx_buffers>();
  rx_buffers& b = *tl;
  for (std::size_t round = 0; round < rx_batches_per_wakeup && sock_.is_open(); ++round) {
    for (std::size_t i = 0; i < rx_batch; ++i) {
      b.iov[i] = {b.data[i].data(), rx_size};
      b.msgs[i] = {};
      b.msgs[i].msg_hdr.msg_name = &b.from[i];
      b.msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      b.msgs[i].msg_hdr.msg_iov = &b.iov[i];
      b.msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int rv = ::recvmmsg(sock_.native_handle(), b.msgs.data(), rx_batch, MSG_DONTWAIT, nullptr);
    if (rv <= 0) return;  // EAGAIN: wait for the next readiness
    for (int i = 0; i < rv && sock_.is_open(); ++i) {
      auto& h = b.msgs[static_cast<std::size_t>(i)];
      if (h.msg_hdr.msg_flags & MSG_TRUNC) continue;  // larger than any packet we accept
      on_datagram_(reinterpret_cast<const sockaddr*>(h.msg_hdr.msg_name), h.msg_hdr.msg_namelen,
                   b.data[static_cast<std::size_t>(i)].data(), h.msg_len);
    }
    if (on_batch_end_) on_batch_end_();
    if (static_cast<std::size_t>(rv) < rx_batch) return;
  }
}

bool split_host_port(const std::string& address, std::string& host, std::string& port) {
  if (address.empty()) return false;
  if (address.front() == '[') {
    auto close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') return false;
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return false;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  return !host.empty() && !port.empty();
}

}  // namespace msgtrans::quic_detail

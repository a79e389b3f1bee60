// Batched UDP I/O. Receive buffers are per thread: every socket of a loop shares them,
// since a batch is handled completely before the next receive on that thread.
#include "net/close_on_exec.hpp"
#include "quic/udp_socket.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>

#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace msgtrans::quic_detail {
namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {
constexpr std::size_t rx_batch = 32;         // messages per recvmmsg
constexpr std::size_t rx_size = 64 * 1024;   // one message may hold many GRO-coalesced datagrams
constexpr std::size_t max_gso_bytes = 63 * 1024;  // a GSO send stays under the 64 KiB UDP limit
constexpr std::size_t rx_batches_per_wakeup = 8;  // then yield to other sockets of the loop
constexpr std::size_t tx_batch = 64;
constexpr std::size_t max_pending_bytes = 4 * 1024 * 1024;  // datagrams kept while the socket is full

udp_socket::sendmmsg_fn sendmmsg_impl = ::sendmmsg;

struct rx_buffers {
  std::array<std::array<std::uint8_t, rx_size>, rx_batch> data;
  std::array<sockaddr_storage, rx_batch> from;
  std::array<iovec, rx_batch> iov;
  std::array<mmsghdr, rx_batch> msgs;
  std::array<std::array<char, CMSG_SPACE(sizeof(int))>, rx_batch> ctrl;
  std::size_t used = rx_batch;  // headers the kernel filled in last time, to be reset

  rx_buffers() {
    for (std::size_t i = 0; i < rx_batch; ++i) {
      iov[i] = {data[i].data(), rx_size};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = ctrl[i].data();
    }
  }
  // recvmmsg overwrites only the lengths and flags of the messages it filled.
  void reset() {
    for (std::size_t i = 0; i < used; ++i) {
      msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      msgs[i].msg_hdr.msg_controllen = ctrl[i].size();
      msgs[i].msg_hdr.msg_flags = 0;
    }
    used = 0;
  }
};

// One sendmmsg's messages (see udp_socket::try_send).
struct tx_messages {
  std::array<iovec, tx_batch> iov;
  std::array<mmsghdr, tx_batch> msgs;
  std::array<std::array<char, CMSG_SPACE(sizeof(std::uint16_t))>, tx_batch> ctrl;
  std::array<std::size_t, tx_batch> segs;  // datagrams per message

  // Lays out messages from datagram `i` of `lens` on, moving `i` and `buf` past what they
  // hold; returns how many messages.
  std::size_t build(const sockaddr* to, socklen_t tolen, const std::uint8_t*& buf, const std::size_t* lens,
                    std::size_t& i, std::size_t n, bool gso) {
    std::size_t m = 0;
    for (; m < tx_batch && i < n; ++m) {
      const std::size_t seg = lens[i];
      std::size_t k = 1, bytes = seg;
      if (gso) {
        while (i + k < n && lens[i + k] <= seg && bytes + lens[i + k] <= max_gso_bytes) {
          bytes += lens[i + k];
          if (lens[i + k++] < seg) break;  // a shorter one ends the run
        }
      }
      iov[m] = {const_cast<std::uint8_t*>(buf), bytes};
      msgs[m] = {};
      msgs[m].msg_hdr.msg_name = const_cast<sockaddr*>(to);
      msgs[m].msg_hdr.msg_namelen = tolen;
      msgs[m].msg_hdr.msg_iov = &iov[m];
      msgs[m].msg_hdr.msg_iovlen = 1;
      if (k > 1) {
        msgs[m].msg_hdr.msg_control = ctrl[m].data();
        msgs[m].msg_hdr.msg_controllen = ctrl[m].size();
        cmsghdr* c = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
        const auto seg16 = static_cast<std::uint16_t>(seg);
        std::memcpy(CMSG_DATA(c), &seg16, sizeof seg16);
      }
      segs[m] = k;
      buf += bytes;
      i += k;
    }
    return m;
  }
};

// Segment size of a GRO-coalesced message, or 0.
std::size_t gro_segment_size(msghdr& h) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int v = 0;
      std::memcpy(&v, CMSG_DATA(c), sizeof v);
      return v > 0 ? static_cast<std::size_t>(v) : 0;
    }
  }
  return 0;
}
}  // namespace

std::error_code udp_socket::open(const udp::endpoint& bind, int buffer_size, bool gso, bool reuse_port) {
  boost::system::error_code ec;
  sock_.open(bind.protocol(), ec);
  if (!ec) net::close_on_exec(sock_.native_handle());
  if (!ec) sock_.non_blocking(true, ec);
  if (!ec && reuse_port) {
    int one = 1;
    if (::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec.assign(errno, boost::system::system_category());
  }
  if (!ec && buffer_size > 0) {
    // Past net.core.{r,w}mem_max only with CAP_NET_ADMIN (SO_*BUFFORCE); without it the
    // kernel caps the plain options there. Best effort either way.
    const int fd = sock_.native_handle();
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_size, sizeof buffer_size) != 0)
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer_size, sizeof buffer_size) != 0)
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_size, sizeof buffer_size);
  }
  if (!ec) sock_.bind(bind, ec);
  if (!ec && gso) {
    // UDP GSO/GRO: many datagrams per system call each way, where the kernel can.
    int one = 1;
    gro_ = ::setsockopt(sock_.native_handle(), SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
    gso_ = true;  // probed on first use: a failing send turns it off
  }
  if (ec) {
    boost::system::error_code ignored;
    sock_.close(ignored);
    return std::error_code(ec.value(), std::system_category());
  }
  return {};
}

std::error_code udp_socket::steer_by_connection_id(std::size_t count) {
  if (count < 1 || count > 255) return std::make_error_code(std::errc::invalid_argument);
  // The kernel runs this with the packet at the UDP payload and takes the result as the
  // index of the socket in the group (out of range: its usual hash). A QUIC long header
  // has the destination connection ID at byte 6 (after flags, version and its length),
  // a short header at byte 1. Loads past the end make the program return 0.
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),                // A = first byte
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x80, 0, 2),     // long header?
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 6),                //   A = DCID[0]
      BPF_JUMP(BPF_JMP | BPF_JA | BPF_K, 1, 0, 0),
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 1),                // short: A = DCID[0]
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, static_cast<std::uint32_t>(count)),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  sock_fprog prog{static_cast<unsigned short>(std::size(code)), code};
  if (::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0)
    return std::error_code(errno, std::system_category());
  return {};
}

udp::endpoint udp_socket::local_endpoint() const {
  boost::system::error_code ec;
  return sock_.local_endpoint(ec);
}

void udp_socket::close() {
  flush_staged();  // a CONNECTION_CLOSE may be among them
  boost::system::error_code ignored;
  sock_.close(ignored);
}

std::size_t udp_socket::try_send(const sockaddr* to, socklen_t tolen, const std::uint8_t* buf, const std::size_t* lens,
                                 std::size_t n) {
  if (!sock_.is_open()) return n;
  // Each message is a run of datagrams laid back to back: with GSO, a run of equal-size
  // datagrams (the last may be shorter) goes as one message the kernel splits; without,
  // one datagram per message. All messages leave in one sendmmsg.
  tx_messages tx;
  auto& msgs = tx.msgs;
  auto& segs = tx.segs;
  std::size_t i = 0;
  while (i < n) {
    const std::size_t first = i;  // datagram index of msgs[0]
    const std::size_t m = tx.build(to, tolen, buf, lens, i, n, gso_);
    std::size_t sent = 0;
    while (sent < m) {
      ++send_calls_;
      int rv = sendmmsg_impl(sock_.native_handle(), msgs.data() + sent, static_cast<unsigned>(m - sent), 0);
      if (rv < 0) {
        if (errno == EINTR) continue;
        if (segs[sent] > 1 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT)) {
          gso_ = false;  // no GSO here: resend this run one datagram at a time
          const auto* p = static_cast<const std::uint8_t*>(msgs[sent].msg_hdr.msg_iov->iov_base);
          std::size_t left = msgs[sent].msg_hdr.msg_iov->iov_len;
          std::uint16_t seg = 0;
          std::memcpy(&seg, CMSG_DATA(CMSG_FIRSTHDR(&msgs[sent].msg_hdr)), sizeof seg);
          while (left > 0) {
            const std::size_t len = std::min<std::size_t>(seg, left);
            if (try_send(to, tolen, p, &len, 1) == 0) {
              // Full in the middle of the run: keep the rest of it (and what follows).
              std::size_t done = first;
              for (std::size_t k = 0; k < sent; ++k) done += segs[k];
              const std::size_t sent_bytes = static_cast<std::size_t>(p - static_cast<const std::uint8_t*>(
                                                                                  msgs[sent].msg_hdr.msg_iov->iov_base));
              return done + sent_bytes / seg;
            }
            p += len;
            left -= len;
          }
          ++sent;
          continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
          std::size_t done = first;  // the kernel's buffer is full: stop here
          for (std::size_t k = 0; k < sent; ++k) done += segs[k];
          return done;
        }
        // A per-destination error (unreachable, ...): drop it; QUIC resends if it matters.
        send_drops_ += segs[sent];
        ++sent;
        continue;
      }
      sent += static_cast<std::size_t>(rv);
    }
  }
  return n;
}

bool udp_socket::send(const sockaddr* to, socklen_t tolen, const std::uint8_t* buf, const std::size_t* lens,
                      std::size_t n, bool coalesce) {
  auto keep = coalesce && coalesce_ && pending_.empty() && sock_.is_open() ? owner_.lock() : nullptr;
  if (keep) {
    std::size_t bytes = 0;
    for (std::size_t k = 0; k < n; ++k) bytes += lens[k];
    if (bytes <= coalesce_bytes && staged_.size() + n <= max_staged) {
      for (std::size_t k = 0; k < n; ++k) {
        staged_datagram d;
        std::memcpy(&d.to, to, tolen);
        d.tolen = tolen;
        d.offset = staged_bytes_.size();
        d.len = lens[k];
        staged_bytes_.insert(staged_bytes_.end(), buf, buf + lens[k]);
        buf += lens[k];
        staged_.push_back(d);
      }
      if (!flush_posted_) {
        flush_posted_ = true;
        asio::post(sock_.get_executor(), [this, keep = std::move(keep)] {
          flush_posted_ = false;
          flush_staged();
        });
      }
      return true;
    }
  }
  flush_staged();  // what was staged goes first
  if (!pending_.empty()) {  // keep the order: behind what waits already
    keep_pending(to, tolen, buf, lens, n);
    return false;
  }
  const std::size_t done = try_send(to, tolen, buf, lens, n);
  if (done == n) return true;
  std::size_t off = 0;
  for (std::size_t k = 0; k < done; ++k) off += lens[k];
  keep_pending(to, tolen, buf + off, lens + done, n - done);
  ++send_blocks_;
  wait_writable();
  return false;
}

void udp_socket::flush_staged() {
  if (staged_.empty()) return;
  if (!sock_.is_open()) {
    staged_.clear();
    staged_bytes_.clear();
    return;
  }
  std::array<mmsghdr, max_staged> msgs;
  std::array<iovec, max_staged> iov;
  for (std::size_t i = 0; i < staged_.size(); ++i) {
    iov[i] = {staged_bytes_.data() + staged_[i].offset, staged_[i].len};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_name = &staged_[i].to;
    msgs[i].msg_hdr.msg_namelen = staged_[i].tolen;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  std::size_t sent = 0;
  while (sent < staged_.size()) {
    ++send_calls_;
    int rv = sendmmsg_impl(sock_.native_handle(), msgs.data() + sent, static_cast<unsigned>(staged_.size() - sent), 0);
    if (rv >= 0) {
      sent += static_cast<std::size_t>(rv);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      // Full: the rest waits, in order, like any refused send.
      for (std::size_t i = sent; i < staged_.size(); ++i)
        keep_pending(reinterpret_cast<const sockaddr*>(&staged_[i].to), staged_[i].tolen,
                     staged_bytes_.data() + staged_[i].offset, &staged_[i].len, 1);
      ++send_blocks_;
      wait_writable();
      break;
    }
    ++send_drops_;  // a per-destination error: drop that datagram; QUIC resends if it matters
    ++sent;
  }
  staged_.clear();
  staged_bytes_.clear();
}

void udp_socket::keep_pending(const sockaddr* to, socklen_t tolen, const std::uint8_t* buf, const std::size_t* lens,
                              std::size_t n) {
  std::size_t bytes = 0;
  for (std::size_t k = 0; k < n; ++k) bytes += lens[k];
  if (pending_bytes_ + bytes > max_pending_bytes) {  // bounded: senders stop while blocked
    send_drops_ += n;
    return;
  }
  pending_run r;
  std::memcpy(&r.to, to, tolen);
  r.tolen = tolen;
  r.bytes.assign(buf, buf + bytes);
  r.lens.assign(lens, lens + n);
  pending_bytes_ += bytes;
  pending_.push_back(std::move(r));
}

void udp_socket::wait_writable() {
  if (waiting_writable_ || !sock_.is_open()) return;
  auto keep = owner_.lock();
  waiting_writable_ = true;
  sock_.async_wait(udp::socket::wait_write, [this, keep](boost::system::error_code ec) {
    waiting_writable_ = false;
    if (ec || !sock_.is_open()) return;
    on_writable_ready();
  });
}

void udp_socket::on_writable_ready() {
  while (!pending_.empty()) {
    pending_run& r = pending_.front();
    const std::size_t done =
        try_send(reinterpret_cast<const sockaddr*>(&r.to), r.tolen, r.bytes.data(), r.lens.data(), r.lens.size());
    if (done < r.lens.size()) {
      std::size_t off = 0;
      for (std::size_t k = 0; k < done; ++k) off += r.lens[k];
      r.bytes.erase(r.bytes.begin(), r.bytes.begin() + static_cast<std::ptrdiff_t>(off));
      r.lens.erase(r.lens.begin(), r.lens.begin() + static_cast<std::ptrdiff_t>(done));
      pending_bytes_ -= off;
      wait_writable();
      return;
    }
    pending_bytes_ -= r.bytes.size();
    pending_.pop_front();
  }
  if (on_writable_) on_writable_();
}

void udp_socket::start_receive(datagram_handler on_datagram, std::function<void()> on_batch_end,
                               std::shared_ptr<void> keep_alive) {
  on_datagram_ = std::move(on_datagram);
  on_batch_end_ = std::move(on_batch_end);
  owner_ = keep_alive;
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
    b.reset();
    int rv = ::recvmmsg(sock_.native_handle(), b.msgs.data(), rx_batch, MSG_DONTWAIT, nullptr);
    if (rv <= 0) return;  // EAGAIN: wait for the next readiness
    b.used = static_cast<std::size_t>(rv);
    for (int i = 0; i < rv && sock_.is_open(); ++i) {
      auto& h = b.msgs[static_cast<std::size_t>(i)];
      if (h.msg_hdr.msg_flags & MSG_TRUNC) continue;  // larger than any packet we accept
      std::uint8_t* p = b.data[static_cast<std::size_t>(i)].data();
      std::size_t left = h.msg_len;
      const std::size_t seg = gro_ ? gro_segment_size(h.msg_hdr) : 0;
      while (left > 0 && sock_.is_open()) {  // GRO: split back into the datagrams
        const std::size_t len = seg ? std::min(seg, left) : left;
        on_datagram_(reinterpret_cast<const sockaddr*>(h.msg_hdr.msg_name), h.msg_hdr.msg_namelen, p, len);
        p += len;
        left -= len;
      }
    }
    if (on_batch_end_) on_batch_end_();
    if (static_cast<std::size_t>(rv) < rx_batch) return;
  }
}

void udp_socket::set_sendmmsg_for_tests(sendmmsg_fn f) noexcept { sendmmsg_impl = f ? f : ::sendmmsg; }

}  // namespace msgtrans::quic_detail

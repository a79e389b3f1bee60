// The batched UDP socket under the QUIC transport: what `udp_gso` changes on the wire.
#include "quic/udp_socket.hpp"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace msgtrans::quic_detail {
namespace {

// A plain receiver with UDP_GRO on: a GSO send arrives as one coalesced message (with
// its segment size), separate datagrams arrive one by one.
struct gro_receiver {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  gro_receiver() {
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    int one = 1;
    EXPECT_EQ(::setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one), 0);
  }
  ~gro_receiver() { ::close(fd); }
  // Bytes of the first message waiting (blocking read).
  std::size_t first_message_size() {
    std::vector<char> buf(65536);
    iovec iov{buf.data(), buf.size()};
    msghdr h{};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    const auto n = ::recvmsg(fd, &h, 0);
    return n < 0 ? 0 : static_cast<std::size_t>(n);
  }
};

TEST(udp_socket, gso_sends_a_run_of_datagrams_as_one_message) {
  for (const bool gso : {true, false}) {
    SCOPED_TRACE(gso ? "udp_gso on" : "udp_gso off");
    boost::asio::io_context ioc;
    udp_socket s(ioc);
    ASSERT_FALSE(s.open(boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0), 1 << 20, gso));
    gro_receiver r;
    std::vector<std::uint8_t> buf(8 * 1000, 0x5a);
    std::vector<std::size_t> lens(8, 1000);
    s.send(reinterpret_cast<const sockaddr*>(&r.addr), sizeof r.addr, buf.data(), lens.data(), lens.size());
    EXPECT_EQ(s.send_calls(), 1u);  // one sendmmsg either way
    EXPECT_EQ(s.send_drops(), 0u);
    EXPECT_EQ(r.first_message_size(), gso ? 8000u : 1000u);
  }
}

// A sendmmsg that reports a full buffer (EAGAIN) on chosen calls.
int calls = 0;
int refuse_every = 0;  // 0: never; n: every n-th call
int flaky_sendmmsg(int fd, mmsghdr* m, unsigned n, int flags) {
  if (refuse_every > 0 && ++calls % refuse_every == 0) {
    errno = EAGAIN;
    return -1;
  }
  return ::sendmmsg(fd, m, n, flags);
}

struct flaky_sends {
  explicit flaky_sends(int every) {
    calls = 0;
    refuse_every = every;
    udp_socket::set_sendmmsg_for_tests(flaky_sendmmsg);
  }
  ~flaky_sends() {
    udp_socket::set_sendmmsg_for_tests(nullptr);
    refuse_every = 0;
  }
};

// A full send buffer does not drop datagrams: they wait, in order, for the socket to
// drain, and the owner hears when it has.
TEST(udp_socket, full_buffer_keeps_datagrams_until_writable) {
  boost::asio::io_context ioc;
  udp_socket s(ioc);
  ASSERT_FALSE(s.open(boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0), 1 << 20, false));
  auto owner = std::make_shared<int>(0);
  s.start_receive([](const sockaddr*, socklen_t, std::uint8_t*, std::size_t) {}, nullptr, owner);
  int writable = 0;
  s.set_on_writable([&] { ++writable; });
  gro_receiver r;
  std::vector<std::uint8_t> buf;
  std::vector<std::size_t> lens;
  for (std::uint8_t i = 0; i < 8; ++i) {
    buf.insert(buf.end(), 100, i);
    lens.push_back(100);
  }
  flaky_sends flaky(1);  // the first call (and only it, below) finds the buffer full
  EXPECT_FALSE(s.send(reinterpret_cast<const sockaddr*>(&r.addr), sizeof r.addr, buf.data(), lens.data(), 4));
  EXPECT_TRUE(s.blocked());
  // Sent while blocked: queued behind, not sent ahead.
  EXPECT_FALSE(s.send(reinterpret_cast<const sockaddr*>(&r.addr), sizeof r.addr, buf.data() + 400, lens.data() + 4, 4));
  refuse_every = 0;
  for (int i = 0; i < 100 && writable == 0; ++i) ioc.run_one_for(std::chrono::milliseconds(20));
  EXPECT_EQ(writable, 1);
  EXPECT_FALSE(s.blocked());
  EXPECT_EQ(s.send_blocks(), 1u);
  EXPECT_EQ(s.send_drops(), 0u);
  for (std::uint8_t i = 0; i < 8; ++i) {  // all eight, in order
    std::vector<char> d(2048);
    const auto n = ::recv(r.fd, d.data(), d.size(), 0);
    ASSERT_EQ(n, 100);
    EXPECT_EQ(static_cast<std::uint8_t>(d[0]), i);
  }
  s.close();
}

// A server socket's small sends of one loop turn, to several peers, leave in one sendmmsg
// (from a posted handler); a send that is not coalesced, and close(), send them first.
TEST(udp_socket, coalesced_sends_leave_together_and_in_order) {
  boost::asio::io_context ioc;
  udp_socket s(ioc);
  ASSERT_FALSE(s.open(boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0), 1 << 20, false));
  auto owner = std::make_shared<int>(0);
  s.start_receive([](const sockaddr*, socklen_t, std::uint8_t*, std::size_t) {}, nullptr, owner);
  s.set_coalesce(true);
  gro_receiver a, b;
  auto to = [](gro_receiver& r) { return reinterpret_cast<const sockaddr*>(&r.addr); };
  auto send = [&](gro_receiver& r, std::uint8_t tag, bool coalesce) {
    std::vector<std::uint8_t> d(100, tag);
    const std::size_t len = d.size();
    return s.send(to(r), sizeof r.addr, d.data(), &len, 1, coalesce);
  };
  auto next_tag = [](gro_receiver& r) {
    std::vector<char> d(2048);
    const auto n = ::recv(r.fd, d.data(), d.size(), 0);
    return n == 100 ? static_cast<int>(static_cast<std::uint8_t>(d[0])) : -1;
  };
  EXPECT_TRUE(send(a, 1, true));
  EXPECT_TRUE(send(b, 2, true));
  EXPECT_TRUE(send(a, 3, true));
  EXPECT_EQ(s.send_calls(), 0u);  // staged until the loop runs the posted flush
  ioc.poll();
  EXPECT_EQ(s.send_calls(), 1u);  // three datagrams, two peers, one system call
  EXPECT_EQ(next_tag(a), 1);
  EXPECT_EQ(next_tag(a), 3);
  EXPECT_EQ(next_tag(b), 2);
  // Not coalesced (a large or urgent send): what is staged goes first.
  EXPECT_TRUE(send(a, 4, true));
  EXPECT_TRUE(send(a, 5, false));
  EXPECT_EQ(next_tag(a), 4);
  EXPECT_EQ(next_tag(a), 5);
  // Closing sends what is staged (a CONNECTION_CLOSE may be among it).
  EXPECT_TRUE(send(b, 6, true));
  s.close();
  EXPECT_EQ(next_tag(b), 6);
  ioc.poll();  // the posted flush finds nothing left
  EXPECT_EQ(s.send_drops(), 0u);
}

}  // namespace
}  // namespace msgtrans::quic_detail

// What an idle WebSocket connection costs the server: at most 2 KiB of heap (issue 6's
// goal is 2 KiB of RSS). The clients are plain blocking sockets that do the HTTP upgrade
// by hand, so they allocate nothing themselves.
#include "support/heap_probe.hpp"

#include <msgtrans/msgtrans.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace msgtrans;
using namespace std::chrono_literals;

TEST(WsIdleMemory, IdleConnectionCostsUnder2KiBOfHeap) {
  if (!test::heap_probe_works) GTEST_SKIP() << "the sanitizers' allocator replaces glibc's heap, which mallinfo2 measures";
  ws_server_config c;
  c.bind_address = "127.0.0.1:0";
  c.keep_alive_interval = 0ms;  // the clients below never answer a ping
  auto s = server_builder{}.listen(c).threads(1).on_request([](request& r) { (void)r.respond(r.payload); }).build();
  ASSERT_FALSE(s.start());
  const std::string addr = s.local_addresses().at(0).second;  // HOST:PORT/PATH
  const auto colon = addr.rfind(':');
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<std::uint16_t>(std::stoi(addr.substr(colon + 1))));
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const char upgrade[] =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  auto open_n = [&](std::vector<int>& fds, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      ASSERT_GE(fd, 0);
      timeval tv{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 0);
      ASSERT_EQ(::send(fd, upgrade, sizeof upgrade - 1, MSG_NOSIGNAL), static_cast<ssize_t>(sizeof upgrade - 1));
      char buf[512];
      std::size_t got = 0;
      while (got < 4 || std::memcmp(buf + got - 4, "\r\n\r\n", 4) != 0) {  // the 101 response, whole
        ASSERT_LT(got, sizeof buf);
        auto r = ::recv(fd, buf + got, 1, 0);
        ASSERT_EQ(r, 1) << "upgrade " << i;
        ++got;
      }
      ASSERT_EQ(std::memcmp(buf, "HTTP/1.1 101", 12), 0);
      fds.push_back(fd);
    }
    for (int i = 0; i < 1000 && s.stats().active < fds.size(); ++i) std::this_thread::sleep_for(5ms);  // bounded
    ASSERT_EQ(s.stats().active, fds.size());
  };
  std::vector<int> fds;
  fds.reserve(1100);
  const double per_connection = test::heap_per_connection([&](std::size_t k) { open_n(fds, k); }, 1000);
  std::printf("server heap per idle WebSocket connection: %.0f bytes\n", per_connection);
  EXPECT_LT(per_connection, 2048.0);
  for (int fd : fds) ::close(fd);
}

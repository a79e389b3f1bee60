// The baseline for "the syscall limit": a single-threaded epoll server that echoes bytes
// unchanged without parsing them. Usage: raw_echo HOST PORT (port 0 picks one; prints
// "listening tcp HOST:PORT").
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace {
void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }
struct conn {
  std::vector<char> pending;  // bytes the kernel did not take yet
};
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return std::fprintf(stderr, "usage: raw_echo HOST PORT\n"), 1;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  inet_pton(AF_INET, argv[1], &a.sin_addr);
  if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) || listen(ls, 4096)) return std::perror("bind"), 1;
  socklen_t len = sizeof a;
  getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
  std::printf("listening tcp %s:%d\n", argv[1], ntohs(a.sin_port));
  std::fflush(stdout);
  nonblock(ls);
  int ep = epoll_create1(0);
  epoll_event ev{EPOLLIN, {.fd = ls}};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  std::unordered_map<int, conn> conns;
  std::vector<epoll_event> events(1024);
  static char buf[256 * 1024];
  for (;;) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == ls) {
        for (int c; (c = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{EPOLLIN | EPOLLRDHUP, {.fd = c}};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          conns[c];
        }
        continue;
      }
      auto& c = conns[fd];
      bool dead = (events[i].events & (EPOLLHUP | EPOLLERR)) != 0;
      if (events[i].events & EPOLLOUT && !c.pending.empty()) {
        ssize_t w = write(fd, c.pending.data(), c.pending.size());
        if (w > 0) c.pending.erase(c.pending.begin(), c.pending.begin() + w);
      }
      if (c.pending.empty() && !dead) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EAGAIN)) dead = true;
        else if (r > 0) {
          ssize_t w = write(fd, buf, static_cast<size_t>(r));
          if (w < 0) w = 0;
          if (w < r) c.pending.assign(buf + w, buf + r);
        }
      }
      epoll_event mod{static_cast<uint32_t>(EPOLLIN | EPOLLRDHUP | (c.pending.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT))), {.fd = fd}};
      if (dead) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        conns.erase(fd);
      } else {
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &mod);
      }
    }
  }
}

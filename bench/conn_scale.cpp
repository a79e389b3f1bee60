// Connection scale: opens N idle TCP or WebSocket connections to a server and holds them,
// then reports the time taken, the server's RSS growth per connection, the kernel's share
// (/proc/net/sockstat, and the TCP slab when /proc/slabinfo is readable), and whether the
// server still answers a request on a fresh connection while holding them all.
//
//   conn_scale HOST:PORT -n N [--ws PATH] [--pid SERVER_PID] [--per-source 5000]
//              [--window 256] [--hold SECS] [--json]
//              [--src-offset K] [--timeout SECS] [--hold-until-signal]
//
// Source addresses are spread over 127.1.x.y (per-source connections each; 127.2.x.y and
// on past 64,000 addresses) with IP_BIND_ADDRESS_NO_PORT, so the kernel picks the port at
// connect() time and one source address is not limited to the ephemeral port range.
// --src-offset K starts at the K-th address, so that several processes (each under its
// own file-descriptor limit) use disjoint addresses. WebSocket: the HTTP upgrade is
// written by hand with a fixed Sec-WebSocket-Key.
//
// --hold-until-signal (for bench/conn_scale.sh with several processes): opens, prints the
// open report at once (no server figures, no fresh request: the script measures those
// for all processes together), holds the connections until SIGTERM or SIGINT, then
// prints {"dropped":N} (connections the server closed meanwhile) and exits.
#include <msgtrans/packet.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::size_t n = 1000;
  bool ws = false;
  std::string path = "/";
  long pid = 0;
  std::size_t per_source = 5000;
  std::size_t window = 256;
  double hold_s = 2;
  bool json = false;
  std::size_t src_offset = 0;
  double timeout_s = 120;
  bool hold_until_signal = false;
};

// VmRSS of a process in KiB (0 if unreadable).
long rss_kib(long pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return 0;
}

struct sockstat {
  long tcp_inuse = 0, tcp_mem_pages = 0, sockets_used = 0;
};
sockstat read_sockstat() {
  sockstat s;
  std::ifstream f("/proc/net/sockstat");
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string tag, key;
    long v = 0;
    in >> tag;
    while (in >> key >> v) {
      if (tag == "sockets:" && key == "used") s.sockets_used = v;
      if (tag == "TCP:" && key == "inuse") s.tcp_inuse = v;
      if (tag == "TCP:" && key == "mem") s.tcp_mem_pages = v;
    }
  }
  return s;
}

// Bytes held by the slab caches that grow with each TCP connection (both ends live on
// this machine, so the delta covers client and server sockets). -1 when unreadable.
long slab_bytes() {
  std::ifstream f("/proc/slabinfo");
  if (!f) return -1;
  std::string line;
  long total = 0;
  bool any = false;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string name;
    long active = 0, objs = 0, objsize = 0;
    if (!(in >> name >> active >> objs >> objsize)) continue;
    if (name == "TCP" || name == "sock_inode_cache" || name == "request_sock_TCP" || name == "filp" ||
        name == "dentry" || name == "tcp_bind_bucket" || name == "eventpoll_epi" || name == "eventpoll_pwq") {
      total += active * objsize;
      any = true;
    }
  }
  return any ? total : -1;
}

int connect_from(const options& o, std::size_t index) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const std::size_t k = o.src_offset + index / o.per_source;  // source address number
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl((127u << 24) | (1u << 16) | static_cast<std::uint32_t>(((k / 250) << 8) + k % 250 + 1));
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    close(fd);
    return -1;
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(o.port);
  inet_pton(AF_INET, o.host.c_str(), &dst.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string upgrade_request(const options& o) {
  return "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n";
}

bool send_all(int fd, const void* p, std::size_t n) {
  auto* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd pf{fd, POLLOUT, 0};
      poll(&pf, 1, 1000);
      continue;
    }
    if (w <= 0) return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Blocking read with a deadline into buf; returns false on close/timeout.
bool read_some(int fd, std::string& buf, clock_type::time_point deadline) {
  char tmp[4096];
  for (;;) {
    ssize_t r = recv(fd, tmp, sizeof tmp, 0);
    if (r > 0) {
      buf.append(tmp, static_cast<std::size_t>(r));
      return true;
    }
    if (r == 0) return false;
    if (errno != EAGAIN && errno != EINTR) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    if (left <= 0) return false;
    pollfd pf{fd, POLLIN, 0};
    poll(&pf, 1, static_cast<int>(left));
  }
}

// A fresh connection (from 127.0.0.1) sends one msgtrans request and waits for the
// response. Returns the round trip in microseconds, or -1.
double fresh_request(const options& o) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(o.port);
  inet_pton(AF_INET, o.host.c_str(), &dst.sin_addr);
  const auto t0 = clock_type::now();
  const auto deadline = t0 + std::chrono::seconds(5);
  if (connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) return close(fd), -1;
  pollfd pf{fd, POLLOUT, 0};
  if (poll(&pf, 1, 5000) != 1) return close(fd), -1;
  std::string in;
  if (o.ws) {
    auto req = upgrade_request(o);
    if (!send_all(fd, req.data(), req.size())) return close(fd), -1;
    while (in.find("\r\n\r\n") == std::string::npos)
      if (!read_some(fd, in, deadline)) return close(fd), -1;
    if (in.rfind("HTTP/1.1 101", 0) != 0) return close(fd), -1;
    in.erase(0, in.find("\r\n\r\n") + 4);
  }
  const std::string payload = "conn_scale fresh request";
  msgtrans::packet_view v;
  v.header.type = msgtrans::packet_type::request;
  v.header.message_id = 4242;
  v.payload = msgtrans::as_bytes(payload);
  std::vector<std::byte> pkt(msgtrans::encoded_size(v));
  if (!msgtrans::encode_to(v, pkt)) return close(fd), -1;
  std::vector<unsigned char> wire;
  if (o.ws) {  // one masked binary frame (mask 0: XOR leaves the bytes as they are)
    wire.push_back(0x82);
    if (pkt.size() < 126) {
      wire.push_back(static_cast<unsigned char>(0x80 | pkt.size()));
    } else {
      wire.push_back(0x80 | 126);
      wire.push_back(static_cast<unsigned char>(pkt.size() >> 8));
      wire.push_back(static_cast<unsigned char>(pkt.size() & 0xff));
    }
    for (int i = 0; i < 4; ++i) wire.push_back(0);
  }
  for (auto b : pkt) wire.push_back(static_cast<unsigned char>(b));
  if (!send_all(fd, wire.data(), wire.size())) return close(fd), -1;
  // Response: (WS frame header +) a msgtrans packet with the same message id.
  for (;;) {
    std::size_t off = 0;
    if (o.ws) {
      if (in.size() >= 2) {
        const auto len7 = static_cast<unsigned char>(in[1]) & 0x7f;
        off = len7 < 126 ? 2 : len7 == 126 ? 4 : 10;
        const auto op = static_cast<unsigned char>(in[0]) & 0x0f;
        if (in.size() >= off && op != 0x2) {  // skip a ping or other control frame
          std::size_t len = len7 < 126 ? len7 : 0;
          if (len7 == 126) len = (static_cast<unsigned char>(in[2]) << 8) | static_cast<unsigned char>(in[3]);
          if (in.size() >= off + len) {
            in.erase(0, off + len);
            continue;
          }
        }
      }
    }
    if (in.size() >= off + msgtrans::header_size) {
      auto h = msgtrans::decode_header(msgtrans::as_bytes(std::string_view(in).substr(off)));
      if (h && in.size() >= off + h->total_size()) {
        close(fd);
        if (h->type != msgtrans::packet_type::response || h->message_id != 4242) return -1;
        return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
      }
    }
    if (!read_some(fd, in, deadline)) return close(fd), -1;
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: conn_scale HOST:PORT -n N [--ws PATH] [--pid SERVER_PID] [--per-source 5000] "
               "[--window 256] [--hold SECS] [--json] [--src-offset K] [--timeout SECS] [--hold-until-signal]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (argc < 2) return usage();
  {
    std::string t = argv[1];
    auto colon = t.rfind(':');
    if (colon == std::string::npos) return usage();
    o.host = t.substr(0, colon);
    o.port = static_cast<std::uint16_t>(std::atoi(t.c_str() + colon + 1));
  }
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "-n") o.n = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--ws") { o.ws = true; o.path = next(); }
    else if (a == "--pid") o.pid = std::atol(next().c_str());
    else if (a == "--per-source") o.per_source = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--window") o.window = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--hold") o.hold_s = std::atof(next().c_str());
    else if (a == "--json") o.json = true;
    else if (a == "--src-offset") o.src_offset = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--timeout") o.timeout_s = std::atof(next().c_str());
    else if (a == "--hold-until-signal") o.hold_until_signal = true;
    else return usage();
  }
  if (o.per_source == 0 || o.window == 0) return usage();
  if (o.hold_until_signal) {  // taken by sigwait after the connections are open
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, nullptr);
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  const long rss_before = rss_kib(o.pid);
  const sockstat ss_before = read_sockstat();
  const long slab_before = slab_bytes();

  // Open: at most `window` connections in progress (connect, then the upgrade) at once.
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct pending {
    int fd = -1;
    bool connected = false;
    std::string in;
  };
  std::vector<pending> conns(o.n);
  std::vector<int> open_fds;
  open_fds.reserve(o.n);
  const std::string req = upgrade_request(o);
  std::size_t next = 0, in_progress = 0, done = 0, failed = 0;
  const auto t0 = clock_type::now();
  const auto give_up = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.timeout_s));
  std::vector<epoll_event> evs(1024);
  while (done + failed < o.n && clock_type::now() < give_up) {
    while (in_progress < o.window && next < o.n) {
      int fd = connect_from(o, next);
      if (fd < 0) {
        ++failed;
        ++next;
        continue;
      }
      conns[next].fd = fd;
      epoll_event ev{};
      ev.events = EPOLLOUT | EPOLLIN;
      ev.data.u64 = next;
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      ++in_progress;
      ++next;
    }
    int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 1000);
    for (int i = 0; i < n; ++i) {
      auto& c = conns[evs[i].data.u64];
      auto finish = [&](bool ok) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        --in_progress;
        if (ok) {
          ++done;
          open_fds.push_back(c.fd);
        } else {
          ++failed;
          close(c.fd);
        }
        c.fd = -1;
        std::string().swap(c.in);
      };
      if (c.fd < 0) continue;
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
        finish(false);
        continue;
      }
      if (!c.connected && (evs[i].events & EPOLLOUT)) {
        c.connected = true;
        if (!o.ws) {
          finish(true);
          continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = evs[i].data.u64;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        if (!send_all(c.fd, req.data(), req.size())) finish(false);
        continue;
      }
      if (evs[i].events & EPOLLIN) {
        char buf[1024];
        ssize_t r = recv(c.fd, buf, sizeof buf, 0);
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          finish(false);
          continue;
        }
        c.in.append(buf, static_cast<std::size_t>(r));
        if (c.in.find("\r\n\r\n") != std::string::npos) finish(c.in.rfind("HTTP/1.1 101", 0) == 0);
      }
    }
  }
  const double open_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  for (auto& c : conns)
    if (c.fd >= 0) {
      close(c.fd);
      ++failed;
    }
  close(ep);

  if (o.hold_until_signal) {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    std::printf("{\"proto\":\"%s\",\"requested\":%zu,\"opened\":%zu,\"failed\":%zu,\"open_seconds\":%.3f}\n",
                o.ws ? "ws" : "tcp", o.n, done, failed, open_s);
    std::fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    std::size_t dropped = 0;
    for (int fd : open_fds) {
      char b;
      ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
      if (r == 0 || (r < 0 && errno != EAGAIN)) ++dropped;
    }
    std::printf("{\"dropped\":%zu}\n", dropped);
    std::fflush(stdout);
    for (int fd : open_fds) close(fd);
    return done == o.n && dropped == 0 ? 0 : 1;
  }

  // Hold, let the server settle, then measure.
  std::this_thread::sleep_for(std::chrono::duration<double>(o.hold_s));
  const long rss_after = rss_kib(o.pid);
  const sockstat ss_after = read_sockstat();
  const long slab_after = slab_bytes();
  const double fresh_us = fresh_request(o);
  // Still all open? (a server that dropped them shows as readable EOF)
  std::size_t dropped = 0;
  for (int fd : open_fds) {
    char b;
    ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
    if (r == 0 || (r < 0 && errno != EAGAIN)) ++dropped;
  }

  const double nd = done > 0 ? static_cast<double>(done) : 1.0;
  const double rss_per = static_cast<double>(rss_after - rss_before) * 1024.0 / nd;
  const double kernel_mem_per = static_cast<double>(ss_after.tcp_mem_pages - ss_before.tcp_mem_pages) * 4096.0 / nd;
  const double slab_per = slab_before >= 0 ? static_cast<double>(slab_after - slab_before) / nd : -1;
  if (o.json) {
    std::printf("{\"proto\":\"%s\",\"requested\":%zu,\"opened\":%zu,\"failed\":%zu,\"dropped\":%zu,\"open_seconds\":%.3f,"
                "\"server_rss_kib_before\":%ld,\"server_rss_kib_after\":%ld,\"server_rss_bytes_per_conn\":%.1f,"
                "\"tcp_inuse_delta\":%ld,\"tcp_mem_bytes_per_conn\":%.1f,\"slab_bytes_per_conn_both_ends\":%.1f,"
                "\"fresh_request_us\":%.1f}\n",
                o.ws ? "ws" : "tcp", o.n, done, failed, dropped, open_s, rss_before, rss_after, rss_per,
                ss_after.tcp_inuse - ss_before.tcp_inuse, kernel_mem_per, slab_per, fresh_us);
  } else {
    std::printf("%s %s:%u: %zu of %zu connections open (%zu failed, %zu dropped since) in %.2f s\n",
                o.ws ? "ws" : "tcp", o.host.c_str(), o.port, done, o.n, failed, dropped, open_s);
    if (o.pid > 0)
      std::printf("  server RSS %ld -> %ld KiB: %.0f B per connection\n", rss_before, rss_after, rss_per);
    std::printf("  kernel: TCP sockets in use +%ld, TCP buffer memory %.0f B per connection", ss_after.tcp_inuse - ss_before.tcp_inuse,
                kernel_mem_per);
    if (slab_per >= 0) std::printf(", slab (TCP, inode, file, epoll; both ends) %.0f B per connection", slab_per);
    std::printf("\n  fresh request while holding: %s", fresh_us >= 0 ? "answered" : "NOT answered");
    if (fresh_us >= 0) std::printf(" in %.0f us", fresh_us);
    std::printf("\n");
  }
  for (int fd : open_fds) close(fd);
  return done == o.n && fresh_us >= 0 && dropped == 0 ? 0 : 1;
}

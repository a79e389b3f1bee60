// ws_load: a small single-threaded epoll load generator for the ws transport measurement.
//
//   ws_load ws  HOST PORT PATH CONNS INFLIGHT SIZE SECONDS   WebSocket client (masked frames)
//   ws_load raw HOST PORT -    CONNS INFLIGHT SIZE SECONDS   msgtrans packets straight on TCP
//   ws_load echo-server PORT                                 raw TCP byte echo (1 thread)
//
// Each connection keeps INFLIGHT msgtrans request packets of SIZE bytes (header included)
// outstanding; a reply (matched by message_id) sends the next one. Prints one line:
// "<mode> conns=.. inflight=.. size=.. msgs/s=.. p50_us=.. p99_us=..".
#include "ws/ws_frame.hpp"

#include <msgtrans/packet.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace msgtrans;
using clk = std::chrono::steady_clock;

namespace {

struct conn {
  int fd = -1;
  std::string in, out;
  std::size_t out_off = 0;
  std::uint32_t next_id = 1;
  std::vector<clk::time_point> sent_at = std::vector<clk::time_point>(4096);
};

bool ws_mode = true;
std::size_t msg_size = 64;
ws::mask_source masks;
byte_buffer tmpl;

int connect_to(const char* host, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, host, &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void handshake(int fd, const char* host, int port, const char* path) {
  std::string req = std::string("GET ") + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + ws::make_client_key() +
                    "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (::send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) std::exit(1);
  std::string resp;
  char c;
  while (resp.find("\r\n\r\n") == std::string::npos) {
    if (::recv(fd, &c, 1, 0) != 1) {
      std::fprintf(stderr, "handshake failed\n");
      std::exit(1);
    }
    resp += c;
  }
  if (resp.compare(9, 3, "101") != 0) {
    std::fprintf(stderr, "handshake refused: %s\n", resp.c_str());
    std::exit(1);
  }
}

void queue_request(conn& c) {
  const std::uint32_t id = c.next_id++;
  if (c.next_id == 0) c.next_id = 1;
  byte_buffer p = tmpl;
  p[4] = std::byte(id >> 24);
  p[5] = std::byte(id >> 16);
  p[6] = std::byte(id >> 8);
  p[7] = std::byte(id);
  c.sent_at[id % c.sent_at.size()] = clk::now();
  if (ws_mode) {
    auto m = masks.next();
    std::byte hdr[ws::max_header_size];
    auto n = ws::encode_frame_header(hdr, ws::opcode::binary, p.size(), m.data());
    ws::apply_mask(p.data(), p.size(), m);
    c.out.append(reinterpret_cast<const char*>(hdr), n);
  }
  c.out.append(reinterpret_cast<const char*>(p.data()), p.size());
}

void flush(conn& c) {
  while (c.out_off < c.out.size()) {
    auto n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n <= 0) break;
    c.out_off += static_cast<std::size_t>(n);
  }
  if (c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  }
}

std::uint32_t id_of(const char* packet) {
  auto u = reinterpret_cast<const unsigned char*>(packet);
  return (std::uint32_t{u[4]} << 24) | (std::uint32_t{u[5]} << 16) | (std::uint32_t{u[6]} << 8) | u[7];
}

int echo_server(int port) {
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 1024) != 0) return 1;
  socklen_t len = sizeof a;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::printf("listening tcp 127.0.0.1:%d\n", ntohs(a.sin_port));
  std::fflush(stdout);
  int ep = ::epoll_create1(0);
  epoll_event ev{EPOLLIN, {.fd = lfd}};
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::vector<char> buf(1 << 16);
  epoll_event evs[256];
  for (;;) {
    int n = ::epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
        if (c < 0) continue;
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event e{EPOLLIN, {.fd = c}};
        ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
        continue;
      }
      auto r = ::recv(fd, buf.data(), buf.size(), 0);
      if (r <= 0) {
        ::close(fd);
        continue;
      }
      // Loopback with small in-flight windows: a blocking-style retry is enough here.
      std::size_t off = 0;
      while (off < static_cast<std::size_t>(r)) {
        auto w = ::send(fd, buf.data() + off, static_cast<std::size_t>(r) - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += static_cast<std::size_t>(w);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "echo-server") return echo_server(std::atoi(argv[2]));
  if (argc != 9) {
    std::fprintf(stderr, "usage: ws_load ws|raw HOST PORT PATH CONNS INFLIGHT SIZE SECONDS\n");
    return 2;
  }
  ws_mode = std::string(argv[1]) == "ws";
  const char* host = argv[2];
  const int port = std::atoi(argv[3]);
  const char* path = argv[4];
  const int nconns = std::atoi(argv[5]);
  const int inflight = std::atoi(argv[6]);
  msg_size = std::max<std::size_t>(header_size, std::strtoul(argv[7], nullptr, 10));
  const double seconds = std::atof(argv[8]);

  tmpl = *encode(packet::request(1, byte_buffer(msg_size - header_size, std::byte{'x'})));

  std::vector<conn> conns(static_cast<std::size_t>(nconns));
  int ep = ::epoll_create1(0);
  for (int i = 0; i < nconns; ++i) {
    auto& c = conns[static_cast<std::size_t>(i)];
    c.fd = connect_to(host, port);
    if (ws_mode) handshake(c.fd, host, port, path);
    ::fcntl(c.fd, F_SETFL, O_NONBLOCK);
    epoll_event ev{EPOLLIN, {.u32 = static_cast<std::uint32_t>(i)}};
    ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
  for (auto& c : conns) {
    for (int k = 0; k < inflight; ++k) queue_request(c);
    flush(c);
  }

  const auto warmup_end = clk::now() + std::chrono::milliseconds(300);
  const auto end = warmup_end + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(seconds));
  std::uint64_t count = 0;
  std::vector<std::uint32_t> lat_us;
  lat_us.reserve(1 << 22);
  std::vector<char> buf(1 << 17);
  epoll_event evs[256];
  bool measuring = false;
  for (;;) {
    const auto now0 = clk::now();
    if (now0 >= end) break;
    if (!measuring && now0 >= warmup_end) measuring = true;
    int n = ::epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; ++i) {
      auto& c = conns[evs[i].data.u32];
      auto r = ::recv(c.fd, buf.data(), buf.size(), 0);
      if (r == 0) {
        std::fprintf(stderr, "server closed a connection\n");
        return 1;
      }
      if (r < 0) continue;
      c.in.append(buf.data(), static_cast<std::size_t>(r));
      std::size_t pos = 0;
      const auto now = clk::now();
      for (;;) {
        const char* packet = nullptr;
        std::size_t used = 0;
        if (ws_mode) {
          auto h = ws::parse_frame_header(as_bytes(std::string_view(c.in).substr(pos)), ws::role::client,
                                          ~0ull >> 1);
          if (h.status != ws::parse_result::ok) break;
          used = h.header.header_len + h.header.payload_len;
          if (c.in.size() - pos < used) break;
          if (h.header.op == ws::opcode::ping) {
            // Answer with a masked pong carrying the same payload.
            std::string body = c.in.substr(pos + h.header.header_len, h.header.payload_len);
            auto m = masks.next();
            std::byte hdr[ws::max_header_size];
            auto hn = ws::encode_frame_header(hdr, ws::opcode::pong, body.size(), m.data());
            ws::apply_mask(reinterpret_cast<std::byte*>(body.data()), body.size(), m);
            c.out.append(reinterpret_cast<const char*>(hdr), hn).append(body);
            pos += used;
            continue;
          }
          if (h.header.op != ws::opcode::binary) {
            std::fprintf(stderr, "unexpected opcode %d\n", static_cast<int>(h.header.op));
            return 1;
          }
          packet = c.in.data() + pos + h.header.header_len;
        } else {
          if (c.in.size() - pos < msg_size) break;
          used = msg_size;
          packet = c.in.data() + pos;
        }
        const auto id = id_of(packet);
        if (measuring) {
          ++count;
          lat_us.push_back(static_cast<std::uint32_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent_at[id % c.sent_at.size()])
                  .count()));
        }
        pos += used;
        queue_request(c);
      }
      c.in.erase(0, pos);
      flush(c);
    }
  }
  std::sort(lat_us.begin(), lat_us.end());
  auto pct = [&](double q) {
    return lat_us.empty() ? 0u : lat_us[std::min(lat_us.size() - 1, static_cast<std::size_t>(q * lat_us.size()))];
  };
  std::printf("%s conns=%d inflight=%d size=%zu msgs/s=%.0f p50_us=%u p99_us=%u\n", argv[1], nconns, inflight,
              msg_size, static_cast<double>(count) / seconds, pct(0.50), pct(0.99));
  return 0;
}

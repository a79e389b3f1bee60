// Full against resumed TLS handshakes per second on a tls:// server (`msgtrans serve
// --tls`). Each connection is a TCP connect, the TLS handshake, one msgtrans request
// answered (so the TLS 1.3 tickets, sent after the handshake, have arrived), an orderly
// close_notify and close; one after another from one thread, OpenSSL driven directly on
// a blocking socket. `full` offers no session; `resumed` offers the session (ticket) of
// the previous connection, and counts how many the server really resumed. The modes
// alternate in rounds, so both see the same machine.
//
// With SERVER_PID, the server's CPU time (user + system, /proc/PID/stat) is read around
// each round: CPU per handshake is what a busy machine does not blur, and 1 s divided by
// it is what one server core can do (`server_core_per_sec`).
//
// With `http` last, the request is "GET /ok HTTP/1.0" read to its end instead, so that
// `openssl s_server -HTTP` (a file named `ok` in its folder) can be measured the same
// way: the fastest server on the same library, for comparison.
//
// Usage: tls_handshakes HOST PORT CA_FILE [SECONDS_PER_ROUND] [ROUNDS] [1.2|1.3] [SERVER_PID] [http]
// Prints one JSON line per mode and round:
//   {"tls":"1.3","mode":"full","round":1,"handshakes":N,"resumed":0,"seconds":S,"per_sec":R,
//    "server_cpu_us":C,"server_core_per_sec":K}
#include <msgtrans/packet.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using steady = std::chrono::steady_clock;

struct tally {
  std::uint64_t handshakes = 0, resumed = 0, failed = 0;
};

int tcp_connect(const sockaddr_in& a) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One connection; keeps the newest session in `session` for the next resumed one.
void one_connection(SSL_CTX* ctx, const sockaddr_in& a, const msgtrans::byte_buffer& req, bool http, bool resume,
                    SSL_SESSION*& session, tally& t) {
  const int fd = tcp_connect(a);
  if (fd < 0) {
    ++t.failed;
    return;
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "localhost");
  SSL_set1_host(ssl, "localhost");
  if (resume && session) SSL_set_session(ssl, session);
  bool ok = SSL_connect(ssl) == 1 && SSL_write(ssl, req.data(), static_cast<int>(req.size())) == static_cast<int>(req.size());
  std::size_t got = 0;
  char buf[4096];
  while (ok && (http || got < req.size())) {  // the echo of the request: as many bytes
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) {
      ok = http && got > 0;  // HTTP/1.0: the answer ends with the connection
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  if (ok) {
    ++t.handshakes;
    if (SSL_session_reused(ssl)) ++t.resumed;
    if (SSL_SESSION* s = SSL_get1_session(ssl)) {
      if (session) SSL_SESSION_free(session);
      session = s;
    }
    SSL_shutdown(ssl);
  } else {
    ++t.failed;
    ERR_clear_error();
  }
  SSL_free(ssl);
  ::close(fd);
}

// The CPU time `pid` has used, in microseconds (0 if unknown).
double cpu_us(int pid) {
  if (pid <= 0) return 0;
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return 0;
  char buf[1024] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* p = std::strrchr(buf, ')');  // the command may hold spaces
  if (!p || n == 0) return 0;
  unsigned long long utime = 0, stime = 0;
  // After ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return 0;
  return static_cast<double>(utime + stime) * 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: tls_handshakes HOST PORT CA_FILE [SECONDS_PER_ROUND] [ROUNDS] [1.2|1.3]\n");
    return 2;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[2])));
  if (::inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) return std::fprintf(stderr, "bad host %s\n", argv[1]), 2;
  const double seconds = argc > 4 ? std::atof(argv[4]) : 3.0;
  const int rounds = argc > 5 ? std::atoi(argv[5]) : 3;
  const std::string version = argc > 6 ? argv[6] : "1.3";
  const int server_pid = argc > 7 ? std::atoi(argv[7]) : 0;
  const bool http = argc > 8 && std::string(argv[8]) == "http";

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  const int v = version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
  SSL_CTX_set_min_proto_version(ctx, v);
  SSL_CTX_set_max_proto_version(ctx, v);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, argv[3], nullptr) != 1)
    return std::fprintf(stderr, "cannot load CA file %s\n", argv[3]), 2;

  const std::string payload(64, 'h');
  auto req = msgtrans::encode(msgtrans::packet::request(
      1, msgtrans::bytes_view(reinterpret_cast<const std::byte*>(payload.data()), payload.size())));
  if (!req) return std::fprintf(stderr, "encode failed\n"), 2;
  if (http) {
    const std::string get = "GET /ok HTTP/1.0\r\n\r\n";
    req->assign(reinterpret_cast<const std::byte*>(get.data()), reinterpret_cast<const std::byte*>(get.data() + get.size()));
  }

  SSL_SESSION* session = nullptr;
  int failed_total = 0;
  for (int round = 1; round <= rounds; ++round) {
    for (const bool resume : {false, true}) {
      tally t;
      if (resume && !session) one_connection(ctx, a, *req, http, false, session, t);  // a first ticket
      t = {};
      const double cpu0 = cpu_us(server_pid);
      const auto t0 = steady::now();
      const auto end = t0 + std::chrono::duration<double>(seconds);
      while (steady::now() < end) one_connection(ctx, a, *req, http, resume, session, t);
      const double took = std::chrono::duration<double>(steady::now() - t0).count();
      const double cpu = t.handshakes ? (cpu_us(server_pid) - cpu0) / static_cast<double>(t.handshakes) : 0;
      std::printf(
          "{\"tls\":\"%s\",\"mode\":\"%s\",\"round\":%d,\"handshakes\":%llu,\"resumed\":%llu,\"failed\":%llu,"
          "\"seconds\":%.3f,\"per_sec\":%.0f,\"server_cpu_us\":%.1f,\"server_core_per_sec\":%.0f}\n",
          version.c_str(), resume ? "resumed" : "full", round, static_cast<unsigned long long>(t.handshakes),
          static_cast<unsigned long long>(t.resumed), static_cast<unsigned long long>(t.failed), took,
          static_cast<double>(t.handshakes) / took, cpu, cpu > 0 ? 1e6 / cpu : 0.0);
      std::fflush(stdout);
      failed_total += static_cast<int>(t.failed);
    }
  }
  if (session) SSL_SESSION_free(session);
  SSL_CTX_free(ctx);
  return failed_total == 0 ? 0 : 1;
}

// Real nats-server child processes for the cluster tests: one server on a random
// loopback port (killed with SIGKILL and restarted on the same port), or a 3-node NATS
// cluster joined by routes. No disk (no JetStream); logs go to /dev/null unless
// MSGTRANS_NATS_LOG is set in the environment; MSGTRANS_NATS_SERVER overrides the binary.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace msgtrans::test {

/// Free loopback TCP ports, all distinct: each is bound to port 0 and read back, and
/// all are released together (the kernel does not hand a bound port out twice).
inline std::vector<int> free_ports(int n) {
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("free_ports: cannot bind a loopback port");
    fds.push_back(fd);
    ports.push_back(ntohs(a.sin_port));
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

/// True when something accepts a TCP connection on 127.0.0.1:port.
inline bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

/// The body of `GET path` on 127.0.0.1:port (HTTP/1.0, read to EOF), or "" on failure.
inline std::string http_get(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return {};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      std::array<char, 4096> buf{};
      ssize_t n = 0;
      while ((n = ::recv(fd, buf.data(), buf.size(), 0)) > 0) out.append(buf.data(), static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  auto body = out.find("\r\n\r\n");
  return body == std::string::npos ? std::string{} : out.substr(body + 4);
}

/// MSGTRANS_NATS_SERVER, else nats-server on PATH, else Debian's /usr/sbin/nats-server.
inline std::string nats_server_binary() {
  if (const char* env = std::getenv("MSGTRANS_NATS_SERVER")) return env;
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/usr/bin";
  for (std::size_t b = 0; b <= path.size();) {
    auto e = path.find(':', b);
    if (e == std::string::npos) e = path.size();
    const std::string cand = path.substr(b, e - b) + "/nats-server";
    if (e > b && ::access(cand.c_str(), X_OK) == 0) return cand;
    b = e + 1;
  }
  throw std::runtime_error("nats-server not found (scripts/setup.sh installs it)");
}

/// One nats-server child process on 127.0.0.1, started by the constructor.
class nats_server {
 public:
  /// Starts on a random free port; `extra` is appended to the command line
  /// (e.g. {"--auth", "TOKEN"}).
  explicit nats_server(std::vector<std::string> extra = {}) : nats_server(free_ports(1)[0], std::move(extra)) {}
  /// Starts on `port`.
  nats_server(int port, std::vector<std::string> extra) : port_(port), extra_(std::move(extra)) { start(); }
  ~nats_server() { kill(); }
  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;

  int port() const { return port_; }
  /// nats://127.0.0.1:PORT
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  bool running() const { return pid_ > 0; }

  /// SIGKILL and reap (no goodbye to the clients: as a crash). No-op when not running.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  /// Starts again on the same port (kills first if still running).
  void restart() {
    kill();
    start();
  }

 private:
  void start() {
    std::vector<std::string> args{"nats-server", "-a", "127.0.0.1", "-p", std::to_string(port_)};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const bool log = std::getenv("MSGTRANS_NATS_LOG") != nullptr;
    const std::string bin = nats_server_binary();  // found before fork: no PATH search in the child
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("nats_server: fork failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      if (!log) {
        int null = ::open("/dev/null", O_RDWR);
        ::dup2(null, 1);
        ::dup2(null, 2);
      }
      // Asio opens sockets without FD_CLOEXEC: a child started after servers and clients
      // exist would hold their sockets open (a closed connection would never see FIN).
      ::close_range(3, ~0U, 0);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    wait_ready();
  }

  // Polls for the listening port, with a deadline; fails at once if the child exits.
  void wait_ready() {
    using namespace std::chrono;
    const auto deadline = steady_clock::now() + seconds(10);
    while (steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("nats_server: nats-server exited at start on port " + std::to_string(port_) +
                                 " (status " + std::to_string(status) + "); set MSGTRANS_NATS_LOG to see why");
      }
      if (accepts(port_)) return;
      std::this_thread::sleep_for(milliseconds(10));
    }
    kill();
    throw std::runtime_error("nats_server: nothing listening on port " + std::to_string(port_) + " after 10 s");
  }

  int port_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

/// Three nats-servers joined by routes (each lists the other two), cluster name
/// "msgtrans-test", each with a monitoring port. The constructor waits until every
/// node reports 2 routes on /routez.
class nats_cluster {
 public:
  static constexpr int size = 3;

  nats_cluster() {
    auto p = free_ports(3 * size);
    for (int i = 0; i < size; ++i) {
      client_[i] = p[i];
      cluster_[i] = p[size + i];
      monitor_[i] = p[2 * size + i];
    }
    for (int i = 0; i < size; ++i) {
      std::string routes;
      for (int j = 0; j < size; ++j)
        if (j != i) routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(cluster_[j]);
      nodes_[i] = std::make_unique<nats_server>(
          client_[i], std::vector<std::string>{"--cluster", "nats://127.0.0.1:" + std::to_string(cluster_[i]),
                                               "--routes", routes, "--cluster_name", "msgtrans-test", "-m",
                                               std::to_string(monitor_[i]), "-n", "nats-" + std::to_string(i + 1)});
    }
    wait_routes(size - 1);
  }

  /// Node i (0-based: node 0 is "nats-1").
  nats_server& node(int i) { return *nodes_[i]; }

  /// Waits (10 s deadline) until every running node has at least `n` routes; throws if not.
  void wait_routes(int n) {
    using namespace std::chrono;
    const auto deadline = steady_clock::now() + seconds(10);
    for (int i = 0; i < size; ++i) {
      while (nodes_[i]->running() && num_routes(i) < n) {
        if (steady_clock::now() > deadline)
          throw std::runtime_error("nats_cluster: node " + std::to_string(i + 1) + " has " +
                                   std::to_string(num_routes(i)) + " routes after 10 s");
        std::this_thread::sleep_for(milliseconds(20));
      }
    }
  }

  /// num_routes from node i's /routez, or -1 when it does not answer.
  int num_routes(int i) const {
    const std::string body = http_get(monitor_[i], "/routez");
    const auto k = body.find("\"num_routes\"");
    if (k == std::string::npos) return -1;
    const auto colon = body.find(':', k);
    return colon == std::string::npos ? -1 : std::atoi(body.c_str() + colon + 1);
  }

 private:
  std::array<int, size> client_{}, cluster_{}, monitor_{};
  std::array<std::unique_ptr<nats_server>, size> nodes_;
};

}  // namespace msgtrans::test

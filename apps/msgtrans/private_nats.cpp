// A private nats-server for the workers of one supervisor (see private_nats.hpp).
//
// The choice: the supervisor picks a free loopback port (bind to port 0, read it, close)
// and runs `nats-server -a 127.0.0.1 -p PORT`; it is ready when a TCP connect succeeds.
// Reading the port from nats-server's log (`-p -1`) would avoid the short race on the
// port, but would keep a pipe that must be drained for the server's whole life; the race
// is handled instead by trying another port when nats-server exits at start.
#include "private_nats.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace msgtrans::cli {

namespace {

using clock_type = std::chrono::steady_clock;
constexpr auto ready_timeout = std::chrono::seconds(5);
constexpr auto stop_timeout = std::chrono::seconds(5);
constexpr int start_attempts = 3;

// nats-server on PATH, or in /usr/sbin (Debian's place, often not on a user's PATH).
std::string find_nats_server() {
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/sbin:/usr/local/sbin:/usr/local/bin";
  std::stringstream in(dirs);
  for (std::string d; std::getline(in, d, ':');) {
    if (d.empty()) continue;
    auto p = d + "/nats-server";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

sockaddr_in loopback(unsigned port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A loopback port nobody listens on now (0 on error).
unsigned free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  unsigned port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) ::close(fd);
  return port;
}

bool accepts(unsigned port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(port);
  const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (fd >= 0) ::close(fd);
  return ok;
}

// In the forked child: own process group, all signals unblocked (the supervisor blocks
// some for its signalfd, and exec keeps the mask), output to /dev/null unless verbose.
[[noreturn]] void exec_child(const std::string& program, unsigned port, bool verbose) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the supervisor died: do not linger
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  const int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, 0);
    if (!verbose) {
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
  }
  const std::string p = std::to_string(port);
  ::execl(program.c_str(), program.c_str(), "-a", "127.0.0.1", "-p", p.c_str(), static_cast<char*>(nullptr));
  _exit(127);
}

}  // namespace

std::string private_nats::start(bool verbose) {
  const std::string program = find_nats_server();
  if (program.empty())
    return "nats-server not found (looked on PATH and in /usr/sbin): `serve --workers N --mode chat` without "
           "--nats runs a private nats-server to share rooms between the workers. Install it (scripts/setup.sh, "
           "or apt-get install nats-server), or point the workers at a NATS server with --nats nats://HOST:PORT";
  std::string err;
  for (int attempt = 0; attempt < start_attempts; ++attempt) {
    const unsigned port = free_port();
    if (port == 0) return std::string("private nats-server: no free loopback port: ") + std::strerror(errno);
    if (err = spawn(program, port, verbose); !err.empty()) return err;
    if (wait_ready(port)) {
      url_ = "nats://127.0.0.1:" + std::to_string(port);
      return "";
    }
    err = "private nats-server (" + program + " -a 127.0.0.1 -p " + std::to_string(port) +
          ") did not accept connections within 5 s";
    stop();  // exited (port taken meanwhile?) or hung: try another port
  }
  return err;
}

std::string private_nats::spawn(const std::string& program, unsigned port, bool verbose) {
  const pid_t pid = ::fork();
  if (pid < 0) return std::string("private nats-server: fork: ") + std::strerror(errno);
  if (pid == 0) exec_child(program, port, verbose);
  ::setpgid(pid, pid);  // also here: no race with a signal to the terminal's group
  pid_ = pid;
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return "";
}

// Connects until it succeeds; between tries, waits 20 ms on the child's end.
bool private_nats::wait_ready(unsigned port) {
  const auto deadline = clock_type::now() + ready_timeout;
  while (clock_type::now() < deadline) {
    if (accepts(port)) return true;
    pollfd p{pidfd_, POLLIN, 0};
    if (pidfd_ >= 0 && ::poll(&p, 1, 20) > 0) return false;  // it exited
    if (pidfd_ < 0) ::usleep(20'000);
  }
  return false;
}

void private_nats::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    pollfd p{pidfd_, POLLIN, 0};
    const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(stop_timeout).count());
    if (pidfd_ < 0 || ::poll(&p, 1, ms) <= 0) ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

}  // namespace msgtrans::cli

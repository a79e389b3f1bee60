// `msgtrans serve --workers N`: the supervisor process.
//
// The parent binds (but does not listen on) each TCP and WebSocket listener's address
// with SO_REUSEPORT: a port-0 listener gets its real port here, and the port stays
// reserved for restarted workers. Each worker is a fork of this process (which has no
// threads of its own) that runs the ordinary server with `reuse_port` on those concrete
// ports; the kernel spreads new connections over the workers' listening sockets. A
// worker reports "listening ..." lines through a pipe once its listeners are up; the
// parent prints them once, when every worker is up. The parent waits on one signalfd
// (SIGCHLD, SIGINT, SIGTERM) and the workers' pipes.
#include "workers.hpp"

#include "commands.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace msgtrans::cli {

namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds first_backoff{100};  // delay before the first restart of a worker
constexpr milliseconds max_backoff{5000};   // doubling stops here
constexpr auto stable_after = std::chrono::seconds(10);  // a worker that lived this long resets its delay
constexpr auto stop_grace = std::chrono::seconds(15);    // then SIGKILL: workers stop within ~8 s themselves
constexpr std::size_t max_workers = 1024;

bool g_info = true, g_warn = true;

template <class... A>
void plog(const char* level, const char* fmt, A... args) {
  if ((std::strcmp(level, "info") == 0 && !g_info) || (std::strcmp(level, "warn") == 0 && !g_warn)) return;
  char line[1024];
  std::snprintf(line, sizeof line, fmt, args...);
  std::fprintf(stderr, "serve: %s: %s\n", level, line);
}
void plog(const char* level, const char* text) { plog(level, "%s", text); }

struct reservation {
  int fd = -1;
  std::string address;  // the listener's address with the concrete port
};

// Binds "HOST:PORT" (port 0 = any) with SO_REUSEADDR + SO_REUSEPORT, without listening:
// the workers' listening sockets join the port, and no connection waits on this one.
// The host is resolved as the listeners resolve it (passive, first result).
bool reserve(const std::string& a, reservation& r, std::string& err) {
  std::string host_text, host, port;
  if (!a.empty() && a.front() == '[') {
    auto close = a.find(']');
    if (close == std::string::npos || close + 1 >= a.size() || a[close + 1] != ':') return err = "bad address '" + a + "'", false;
    host_text = a.substr(0, close + 1);
    host = a.substr(1, close - 1);
    port = a.substr(close + 2);
  } else {
    auto colon = a.rfind(':');
    if (colon == std::string::npos) return err = "bad address '" + a + "' (expected HOST:PORT)", false;
    host_text = host = a.substr(0, colon);
    port = a.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  addrinfo* res = nullptr;
  if (int e = getaddrinfo(host.empty() ? "0.0.0.0" : host.c_str(), port.c_str(), &hints, &res); e != 0 || !res) {
    err = "cannot resolve '" + a + "': " + gai_strerror(e);
    return false;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  bool ok = fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0 &&
            ::bind(fd, res->ai_addr, res->ai_addrlen) == 0;
  freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (ok) ok = ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0;
  if (!ok) {
    err = "cannot bind " + a + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  const unsigned p = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                              : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  r.fd = fd;
  r.address = host_text + ":" + std::to_string(p);
  return true;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended";
}

struct worker {
  pid_t pid = -1;
  int ready_fd = -1;     // read end of the pipe the worker reports its listeners on
  std::string lines;     // what it reported so far
  bool ready = false;    // reported, in this incarnation
  bool ever_ready = false;
  bool restart_pending = false;
  clock_type::time_point started, restart_at;
  milliseconds backoff = first_backoff;
};

}  // namespace

int run_workers(const serve_options& o, const serve_function& serve_one) {
  g_info = !o.quiet && (o.log_level == "info" || o.log_level == "debug");
  g_warn = !o.quiet && o.log_level != "error";
  if (o.workers > max_workers) {
    plog("error", "--workers %zu: at most %zu", o.workers, max_workers);
    return usage;
  }
  if (!o.quic.empty()) {
    plog("error", "--quic cannot be combined with --workers (QUIC connections cannot move between processes); --threads spreads QUIC over the loops of one process");
    return usage;
  }
  if (!o.metrics.empty()) {
    plog("error", "--metrics cannot be combined with --workers (each worker has its own counters)");
    return usage;
  }
  if (o.tcp.empty() && o.ws.empty()) {
    plog("error", "no listener; add --tcp HOST:PORT or --ws HOST:PORT/PATH");
    return usage;
  }

  // Reserve the ports; the workers get the concrete addresses.
  serve_options wo = o;
  wo.workers = 0;
  wo.reuse_port = true;
  std::vector<reservation> held;
  auto release = [&] {
    for (auto& r : held) ::close(r.fd);
    held.clear();
  };
  std::string err;
  for (auto& a : wo.tcp) {
    reservation r;
    if (!reserve(a, r, err)) {
      plog("error", "tcp: %s", err.c_str());
      release();
      return connect_failed;
    }
    a = r.address;
    held.push_back(r);
  }
  for (auto& a : wo.ws) {
    auto slash = a.find('/', a.rfind(']') == std::string::npos ? 0 : a.rfind(']'));
    std::string path = slash == std::string::npos ? "" : a.substr(slash);
    reservation r;
    if (!reserve(a.substr(0, slash), r, err)) {
      plog("error", "ws: %s", err.c_str());
      release();
      return connect_failed;
    }
    a = r.address + path;
    held.push_back(r);
  }

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGCHLD);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  const int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) {
    plog("error", "signalfd: %s", std::strerror(errno));
    release();
    return failed;
  }

  const pid_t parent = ::getpid();
  std::vector<worker> ws(o.workers);
  std::size_t live = 0;
  bool stopping = false, printed = false, killed = false;
  int result = ok;
  clock_type::time_point stop_deadline{};

  auto spawn = [&](std::size_t i) -> bool {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return false;
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(p[0]);
      ::close(p[1]);
      return false;
    }
    if (pid == 0) {
      // The worker: nothing of the supervisor's but the options.
      ::close(p[0]);
      ::close(sfd);
      for (auto& r : held) ::close(r.fd);
      for (auto& w : ws)
        if (w.ready_fd >= 0) ::close(w.ready_fd);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the supervisor died: stop gracefully
      if (::getppid() != parent) _exit(ok);
      sigset_t chld;
      sigemptyset(&chld);
      sigaddset(&chld, SIGCHLD);
      pthread_sigmask(SIG_UNBLOCK, &chld, nullptr);  // SIGINT / SIGTERM stay blocked for sigwait
      serve_options mine = wo;
      mine.ready_fd = p[1];
      mine.worker_index = i + 1;
      const int rc = serve_one(mine);
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(rc);
    }
    ::close(p[1]);
    auto& w = ws[i];
    w.pid = pid;
    w.ready_fd = p[0];
    w.lines.clear();
    w.ready = false;
    w.restart_pending = false;
    w.started = clock_type::now();
    ++live;
    return true;
  };

  auto begin_stop = [&](int sig) {
    if (stopping) return;
    stopping = true;
    stop_deadline = clock_type::now() + stop_grace;
    for (auto& w : ws) {
      w.restart_pending = false;
      if (w.pid > 0) ::kill(w.pid, sig);
    }
  };

  for (std::size_t i = 0; i < ws.size(); ++i) {
    if (!spawn(i)) {
      plog("error", "cannot start worker %zu: %s", i + 1, std::strerror(errno));
      result = failed;
      begin_stop(SIGTERM);
      break;
    }
  }

  auto on_ready = [&](std::size_t i) {
    auto& w = ws[i];
    w.ready = w.ever_ready = true;
    if (!printed) {
      if (!std::all_of(ws.begin(), ws.end(), [](const worker& x) { return x.ready; })) return;
      printed = true;
      std::fputs(w.lines.c_str(), stdout);
      std::fflush(stdout);
      std::string pids;
      for (auto& x : ws) pids += (pids.empty() ? "" : ", ") + std::to_string(x.pid);
      plog("info", "%zu workers running (pids %s)", ws.size(), pids.c_str());
    } else {
      plog("info", "worker %zu (pid %d) is up again", i + 1, static_cast<int>(w.pid));
    }
  };

  auto reap = [&] {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto it = std::find_if(ws.begin(), ws.end(), [pid](const worker& w) { return w.pid == pid; });
      if (it == ws.end()) continue;
      auto& w = *it;
      const std::size_t i = static_cast<std::size_t>(it - ws.begin());
      w.pid = -1;
      --live;
      if (w.ready_fd >= 0) {
        ::close(w.ready_fd);
        w.ready_fd = -1;
      }
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (stopping) {
        plog(clean ? "info" : "warn", "worker %zu (pid %d) %s", i + 1, static_cast<int>(pid), describe(status).c_str());
        if (!clean && result == ok) result = failed;
        continue;
      }
      if (!w.ever_ready && !printed && WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        // A worker that cannot start (bad option, address in use) would fail again.
        plog("error", "worker %zu (pid %d) %s before it listened; stopping", i + 1, static_cast<int>(pid),
             describe(status).c_str());
        result = WEXITSTATUS(status);
        begin_stop(SIGTERM);
        continue;
      }
      const auto now = clock_type::now();
      if (now - w.started >= stable_after) w.backoff = first_backoff;
      w.restart_pending = true;
      w.restart_at = now + w.backoff;
      plog("warn", "worker %zu (pid %d) %s; restarting it in %.1f s", i + 1, static_cast<int>(pid),
           describe(status).c_str(), static_cast<double>(w.backoff.count()) / 1000.0);
      w.backoff = std::min(w.backoff * 2, max_backoff);
    }
  };

  while (!(stopping && live == 0)) {
    const auto now = clock_type::now();
    if (stopping && !killed && now >= stop_deadline) {
      killed = true;
      for (auto& w : ws)
        if (w.pid > 0) {
          plog("warn", "worker %zu (pid %d) did not stop in time; SIGKILL", static_cast<std::size_t>(&w - ws.data()) + 1,
               static_cast<int>(w.pid));
          ::kill(w.pid, SIGKILL);
        }
      if (result == ok) result = failed;
    }
    if (!stopping) {
      for (std::size_t i = 0; i < ws.size(); ++i) {
        if (!ws[i].restart_pending || ws[i].restart_at > now) continue;
        if (!spawn(i)) {  // out of processes or memory: try again later
          plog("warn", "cannot restart worker %zu: %s", i + 1, std::strerror(errno));
          ws[i].restart_at = now + ws[i].backoff;
        }
      }
    }
    // Sleep until a signal, a worker's report, or the next deadline.
    int timeout = -1;
    auto until = [&](clock_type::time_point t) {
      const auto ms = std::chrono::ceil<milliseconds>(t - now).count();
      const int v = static_cast<int>(std::clamp<std::int64_t>(ms, 0, 60'000));
      timeout = timeout < 0 ? v : std::min(timeout, v);
    };
    if (stopping && !killed) until(stop_deadline);
    for (auto& w : ws)
      if (w.restart_pending && !stopping) until(w.restart_at);
    std::vector<pollfd> fds{{sfd, POLLIN, 0}};
    std::vector<std::size_t> owner{0};
    for (std::size_t i = 0; i < ws.size(); ++i)
      if (ws[i].ready_fd >= 0) {
        fds.push_back({ws[i].ready_fd, POLLIN, 0});
        owner.push_back(i);
      }
    if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      plog("error", "poll: %s", std::strerror(errno));
      begin_stop(SIGTERM);
    }
    for (std::size_t k = 1; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      auto& w = ws[owner[k]];
      char buf[512];
      const ssize_t n = ::read(w.ready_fd, buf, sizeof buf);
      if (n > 0) {
        w.lines.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      ::close(w.ready_fd);  // the worker is done reporting (or gone)
      w.ready_fd = -1;
      if (w.lines.find("listening ") != std::string::npos) on_ready(owner[k]);
    }
    if (fds[0].revents) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGCHLD) {
          reap();
        } else if (!stopping) {
          plog("info", "%s, stopping %zu workers gracefully", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", live);
          begin_stop(static_cast<int>(si.ssi_signo));
        }
      }
      reap();  // SIGCHLDs merge: always look for every dead worker
    }
  }
  ::close(sfd);
  release();
  plog("info", "all workers stopped");
  return result;
}

}  // namespace msgtrans::cli

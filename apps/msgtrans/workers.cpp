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
//
// Chat rooms must span the workers: with --mode chat and no --nats, the supervisor
// starts a private nats-server on a free loopback port (private_nats.cpp) before the
// workers, points each worker at it (--nats nats://127.0.0.1:PORT, --node-name
// BASE-wN), and stops it last, after every worker has stopped. If it dies, serve stops
// (exit 1) rather than run with rooms split between the workers. With --nats the
// workers use that cluster, and no private server runs.
#include "workers.hpp"

#include "commands.hpp"
#include "private_nats.hpp"

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

// The checks of the options that need no system call; `ok` or `usage` (logged).
int check_worker_options(const serve_options& o) {
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
  if (o.tcp.empty() && o.tls.empty() && o.ws.empty()) {
    plog("error", "no listener; add --tcp HOST:PORT, --tls HOST:PORT or --ws HOST:PORT/PATH");
    return usage;
  }
  return ok;
}

void release(std::vector<reservation>& held) {
  for (auto& r : held) ::close(r.fd);
  held.clear();
}

// Reserves the ports of `wo`'s TCP, TLS and WebSocket listeners and gives them the
// concrete addresses; false (logged, nothing held) if one cannot be reserved.
bool reserve_ports(serve_options& wo, std::vector<reservation>& held) {
  std::string err;
  for (auto* list : {&wo.tcp, &wo.tls}) {
    for (auto& a : *list) {
      reservation r;
      if (!reserve(a, r, err)) {
        plog("error", "%s: %s", list == &wo.tcp ? "tcp" : "tls", err.c_str());
        release(held);
        return false;
      }
      a = r.address;
      held.push_back(r);
    }
  }
  for (auto& a : wo.ws) {
    const auto slash = ws_path_start(a);
    std::string path = slash == std::string::npos ? "" : a.substr(slash);
    reservation r;
    if (!reserve(a.substr(0, slash), r, err)) {
      plog("error", "ws: %s", err.c_str());
      release(held);
      return false;
    }
    a = r.address + path;
    held.push_back(r);
  }
  return true;
}

// SIGCHLD, SIGINT, SIGTERM and SIGHUP, blocked and read from the returned signalfd (-1
// on error).
int open_signalfd() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGCHLD);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  return signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
}

// The supervisor's state and its steps: start, restart and stop workers, collect their
// reports, and wait on the signalfd and the report pipes.
class supervisor {
 public:
  supervisor(const serve_options& wo, const std::vector<reservation>& held, int sfd, const serve_function& serve_one,
             std::size_t n, private_nats* nats)
      : wo_(wo), held_(held), sfd_(sfd), serve_one_(serve_one), nats_(nats), ws_(n) {}

  // Runs the workers until they all stopped; returns the exit code.
  int run() {
    start_all();
    while (!(stopping_ && live_ == 0)) {
      const auto now = clock_type::now();
      if (stopping_ && !killed_ && now >= stop_deadline_) kill_all();
      if (!stopping_) restart_due(now);
      wait_for_events(now);
    }
    return result_;
  }

 private:
  void start_all() {
    for (std::size_t i = 0; i < ws_.size(); ++i) {
      if (!spawn(i)) {
        plog("error", "cannot start worker %zu: %s", i + 1, std::strerror(errno));
        result_ = failed;
        begin_stop(SIGTERM);
        break;
      }
    }
  }

  bool spawn(std::size_t i) {
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
      ::close(p[0]);
      run_worker(i, p[1]);
    }
    ::close(p[1]);
    auto& w = ws_[i];
    w.pid = pid;
    w.ready_fd = p[0];
    w.lines.clear();
    w.ready = false;
    w.restart_pending = false;
    w.started = clock_type::now();
    ++live_;
    return true;
  }

  // In the forked child: nothing of the supervisor's but the options.
  [[noreturn]] void run_worker(std::size_t i, int report_fd) {
    ::close(sfd_);
    for (auto& r : held_) ::close(r.fd);
    for (auto& w : ws_)
      if (w.ready_fd >= 0) ::close(w.ready_fd);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the supervisor died: stop gracefully
    if (::getppid() != parent_) _exit(ok);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_UNBLOCK, &chld, nullptr);  // SIGINT / SIGTERM stay blocked for sigwait
    serve_options mine = wo_;
    mine.ready_fd = report_fd;
    mine.worker_index = i + 1;
    if (!mine.nats.empty()) mine.node_name = node_base() + "-w" + std::to_string(i + 1);
    const int rc = serve_one_(mine);
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(rc);
  }

  // The workers' node names: --node-name, or host and supervisor pid (unique per machine).
  std::string node_base() const {
    if (!wo_.node_name.empty()) return wo_.node_name;
    char host[256] = "host";
    ::gethostname(host, sizeof host - 1);
    return std::string(host) + "-" + std::to_string(parent_);
  }

  void begin_stop(int sig) {
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ = clock_type::now() + stop_grace;
    for (auto& w : ws_) {
      w.restart_pending = false;
      if (w.pid > 0) ::kill(w.pid, sig);
    }
  }

  void kill_all() {
    killed_ = true;
    for (auto& w : ws_)
      if (w.pid > 0) {
        plog("warn", "worker %zu (pid %d) did not stop in time; SIGKILL", static_cast<std::size_t>(&w - ws_.data()) + 1,
             static_cast<int>(w.pid));
        ::kill(w.pid, SIGKILL);
      }
    if (result_ == ok) result_ = failed;
  }

  void restart_due(clock_type::time_point now) {
    for (std::size_t i = 0; i < ws_.size(); ++i) {
      if (!ws_[i].restart_pending || ws_[i].restart_at > now) continue;
      if (!spawn(i)) {  // out of processes or memory: try again later
        plog("warn", "cannot restart worker %zu: %s", i + 1, std::strerror(errno));
        ws_[i].restart_at = now + ws_[i].backoff;
      }
    }
  }

  void on_ready(std::size_t i) {
    auto& w = ws_[i];
    w.ready = w.ever_ready = true;
    if (!printed_) {
      if (!std::all_of(ws_.begin(), ws_.end(), [](const worker& x) { return x.ready; })) return;
      printed_ = true;
      std::fputs(w.lines.c_str(), stdout);
      std::fflush(stdout);
      std::string pids;
      for (auto& x : ws_) pids += (pids.empty() ? "" : ", ") + std::to_string(x.pid);
      plog("info", "%zu workers running (pids %s)", ws_.size(), pids.c_str());
    } else {
      plog("info", "worker %zu (pid %d) is up again", i + 1, static_cast<int>(w.pid));
    }
  }

  void reap() {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (nats_ && pid == nats_->pid()) {
        nats_ended(status);
        continue;
      }
      auto it = std::find_if(ws_.begin(), ws_.end(), [pid](const worker& w) { return w.pid == pid; });
      if (it == ws_.end()) continue;
      worker_ended(static_cast<std::size_t>(it - ws_.begin()), pid, status);
    }
  }

  // The private nats-server died: the workers' rooms would be split, so stop them all.
  void nats_ended(int status) {
    const pid_t pid = nats_->pid();
    nats_->forget();
    if (stopping_) return;
    plog("error", "the private nats-server (pid %d) %s; stopping the workers", static_cast<int>(pid),
         describe(status).c_str());
    result_ = failed;
    begin_stop(SIGTERM);
  }

  // Worker `i` (process `pid`) ended with `status`: done, fatal, or to be restarted.
  void worker_ended(std::size_t i, pid_t pid, int status) {
    auto& w = ws_[i];
    w.pid = -1;
    --live_;
    if (w.ready_fd >= 0) {
      ::close(w.ready_fd);
      w.ready_fd = -1;
    }
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (stopping_) {
      plog(clean ? "info" : "warn", "worker %zu (pid %d) %s", i + 1, static_cast<int>(pid), describe(status).c_str());
      if (!clean && result_ == ok) result_ = failed;
      return;
    }
    if (!w.ever_ready && !printed_ && WIFEXITED(status) && WEXITSTATUS(status) != 0) {
      // A worker that cannot start (bad option, address in use) would fail again.
      plog("error", "worker %zu (pid %d) %s before it listened; stopping", i + 1, static_cast<int>(pid),
           describe(status).c_str());
      result_ = WEXITSTATUS(status);
      begin_stop(SIGTERM);
      return;
    }
    const auto now = clock_type::now();
    if (now - w.started >= stable_after) w.backoff = first_backoff;
    w.restart_pending = true;
    w.restart_at = now + w.backoff;
    plog("warn", "worker %zu (pid %d) %s; restarting it in %.1f s", i + 1, static_cast<int>(pid),
         describe(status).c_str(), static_cast<double>(w.backoff.count()) / 1000.0);
    w.backoff = std::min(w.backoff * 2, max_backoff);
  }

  // Milliseconds until the next deadline (stop grace, restarts), -1 for none.
  int poll_timeout(clock_type::time_point now) const {
    int timeout = -1;
    auto until = [&](clock_type::time_point t) {
      const auto ms = std::chrono::ceil<milliseconds>(t - now).count();
      const int v = static_cast<int>(std::clamp<std::int64_t>(ms, 0, 60'000));
      timeout = timeout < 0 ? v : std::min(timeout, v);
    };
    if (stopping_ && !killed_) until(stop_deadline_);
    for (auto& w : ws_)
      if (w.restart_pending && !stopping_) until(w.restart_at);
    return timeout;
  }

  // Sleeps until a signal, a worker's report, or the next deadline, and handles them.
  void wait_for_events(clock_type::time_point now) {
    std::vector<pollfd> fds{{sfd_, POLLIN, 0}};
    std::vector<std::size_t> owner{0};
    for (std::size_t i = 0; i < ws_.size(); ++i)
      if (ws_[i].ready_fd >= 0) {
        fds.push_back({ws_[i].ready_fd, POLLIN, 0});
        owner.push_back(i);
      }
    if (::poll(fds.data(), fds.size(), poll_timeout(now)) < 0 && errno != EINTR) {
      plog("error", "poll: %s", std::strerror(errno));
      begin_stop(SIGTERM);
    }
    for (std::size_t k = 1; k < fds.size(); ++k)
      if (fds[k].revents) read_report(owner[k]);
    if (fds[0].revents) read_signals();
  }

  void read_report(std::size_t i) {
    auto& w = ws_[i];
    char buf[512];
    const ssize_t n = ::read(w.ready_fd, buf, sizeof buf);
    if (n > 0) {
      w.lines.append(buf, static_cast<std::size_t>(n));
      return;
    }
    if (n < 0 && errno == EINTR) return;
    ::close(w.ready_fd);  // the worker is done reporting (or gone)
    w.ready_fd = -1;
    if (w.lines.find("listening ") != std::string::npos) on_ready(i);
  }

  void read_signals() {
    signalfd_siginfo si;
    while (::read(sfd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      if (si.ssi_signo == SIGCHLD) {
        reap();
      } else if (si.ssi_signo == SIGHUP) {
        for (auto& w : ws_)  // each worker reloads its own listeners' certificates
          if (w.pid > 0) ::kill(w.pid, SIGHUP);
      } else if (!stopping_) {
        plog("info", "%s, stopping %zu workers gracefully", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", live_);
        begin_stop(static_cast<int>(si.ssi_signo));
      }
    }
    reap();  // SIGCHLDs merge: always look for every dead worker
  }

  const serve_options& wo_;
  const std::vector<reservation>& held_;
  const int sfd_;
  const serve_function& serve_one_;
  private_nats* const nats_;  // null without a private nats-server
  const pid_t parent_ = ::getpid();
  std::vector<worker> ws_;
  std::size_t live_ = 0;
  bool stopping_ = false, printed_ = false, killed_ = false;
  int result_ = ok;
  clock_type::time_point stop_deadline_{};
};

}  // namespace

int run_workers(const serve_options& o, const serve_function& serve_one) {
  g_info = !o.quiet && (o.log_level == "info" || o.log_level == "debug");
  g_warn = !o.quiet && o.log_level != "error";
  if (int rc = check_worker_options(o); rc != ok) return rc;
  // Reserve the ports; the workers get the concrete addresses.
  serve_options wo = o;
  wo.workers = 0;
  wo.reuse_port = true;
  std::vector<reservation> held;
  if (!reserve_ports(wo, held)) return connect_failed;
  const int sfd = open_signalfd();
  if (sfd < 0) {
    plog("error", "signalfd: %s", std::strerror(errno));
    release(held);
    return failed;
  }
  private_nats nats;
  if (o.mode == "chat" && o.nats.empty()) {
    if (auto e = nats.start(!o.quiet && o.log_level == "debug"); !e.empty()) {
      plog("error", "%s", e.c_str());
      ::close(sfd);
      release(held);
      return failed;
    }
    wo.nats = {nats.url()};
    plog("info", "private nats-server (pid %d) at %s links the workers' rooms", static_cast<int>(nats.pid()),
         nats.url().c_str());
  }
  const int result = supervisor(wo, held, sfd, serve_one, o.workers, nats.pid() > 0 ? &nats : nullptr).run();
  ::close(sfd);
  release(held);
  plog("info", "all workers stopped");
  if (nats.pid() > 0) {
    nats.stop();  // last: workers deliver until they stop
    plog("info", "private nats-server stopped");
  }
  return result;
}

}  // namespace msgtrans::cli

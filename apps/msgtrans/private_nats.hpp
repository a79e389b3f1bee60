// The private nats-server of `msgtrans serve --workers N --mode chat` without --nats:
// one broker on loopback that links the workers' rooms (docs/scaling.md).
#pragma once

#include <sys/types.h>

#include <string>

namespace msgtrans::cli {

/// A `nats-server` child process on 127.0.0.1, on a free port, with no disk (no
/// JetStream, logs dropped unless `verbose`). It runs in its own process group, so a
/// terminal's Ctrl-C reaches the workers and not it: the supervisor stops it last.
class private_nats {
 public:
  private_nats() = default;
  private_nats(const private_nats&) = delete;
  private_nats& operator=(const private_nats&) = delete;
  ~private_nats() { stop(); }

  /// Starts it and waits (up to 5 s) until it accepts connections. Returns "" or an
  /// error text (nats-server not installed: how to install it).
  std::string start(bool verbose);
  /// nats://127.0.0.1:PORT
  const std::string& url() const { return url_; }
  /// Its process id, -1 when it is not running.
  pid_t pid() const { return pid_; }
  /// Someone else reaped it (the supervisor's waitpid(-1)): forget the pid.
  void forget() { pid_ = -1; }
  /// SIGTERM, then SIGKILL after 5 s; waits for it. Idempotent.
  void stop();

 private:
  std::string spawn(const std::string& program, unsigned port, bool verbose);
  bool wait_ready(unsigned port);

  pid_t pid_ = -1;
  int pidfd_ = -1;  // becomes readable when the child ends
  std::string url_;
};

}  // namespace msgtrans::cli

// A minimal HTTP endpoint that serves one text body at GET /metrics (Prometheus scrape).
// It runs on its own thread and io_context, away from the server's loops. At most 64
// connections at once, 5 s for each exchange, an 8 KiB request head (past it: 431);
// accept backs off 100 ms on errors such as EMFILE.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <system_error>

namespace msgtrans::cli {

class metrics_endpoint {
 public:
  /// Binds `address` (host:port, port 0 = any) and serves `body()` at /metrics. `warn`
  /// (may be empty) hears accept failures, at most once per 10 s.
  metrics_endpoint(const std::string& address, std::function<std::string()> body,
                   std::function<void(const std::string&)> warn = {});
  ~metrics_endpoint();
  /// The bound address, or empty with `error()` set.
  const std::string& local_address() const;
  const std::string& error() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace msgtrans::cli

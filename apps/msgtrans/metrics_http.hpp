// A minimal HTTP endpoint that serves one text body at GET /metrics (Prometheus scrape).
// It runs on its own thread and io_context, away from the server's loops.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <system_error>

namespace msgtrans::cli {

class metrics_endpoint {
 public:
  /// Binds `address` (host:port, port 0 = any) and serves `body()` at /metrics.
  metrics_endpoint(const std::string& address, std::function<std::string()> body);
  ~metrics_endpoint();
  /// The bound address, or empty with `error()` set.
  const std::string& local_address() const;
  const std::string& error() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace msgtrans::cli

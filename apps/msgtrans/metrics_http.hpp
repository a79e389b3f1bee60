// A minimal HTTP endpoint that serves one text body at GET /metrics (Prometheus scrape).
// It runs on its own thread and io_context, away from the server's loops. At most 64
// connections at once, 5 s for each exchange, an 8 KiB request head (past it: 431);
// accept backs off 100 ms on errors such as EMFILE.
#pragma once

#include <msgtrans/stats.hpp>

#include <functional>
#include <memory>
#include <string>
#include <system_error>

namespace msgtrans::cli {

/// The Prometheus text of `s`: msgtrans::to_prometheus, plus the rooms and cluster
/// series (msgtrans_rooms, msgtrans_room_memberships, msgtrans_room_deliveries_total,
/// msgtrans_cluster_messages_{in,out}_total, msgtrans_cluster_publish_errors_total,
/// msgtrans_cluster_malformed_total, msgtrans_cluster_reconnects_total and
/// msgtrans_cluster_state{state="..."}: 1 for the current state, 0 for the others)
/// unless the library's text already has them.
std::string serve_metrics_text(const server_stats& s);

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

// What server_builder collects and server_impl is built from.
#pragma once

#include <msgtrans/auth.hpp>
#include <msgtrans/cluster.hpp>
#include <msgtrans/server.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace msgtrans {

struct listener_entry {
  std::unique_ptr<listener> l;
  std::size_t max = 0;         // this listener's max_connections (0: none)
  std::size_t max_per_ip = 0;  // this listener's max_connections_per_ip (0: none)
};

struct server_config {
  std::vector<listener_entry> listeners;
  std::size_t threads = 0;
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_ip = 0;
  std::size_t max_handshakes_per_second_per_ip = 0;
  session_options opts;
  handlers h;
  std::size_t event_capacity = 0;
  bool sent_events = false;
  std::function<void(const notice&)> on_notice;
  std::size_t inbound_memory_limit = 256u * 1024 * 1024;
  std::unique_ptr<cluster_bus> bus;  // none: rooms stay in this process
  cluster_node_options node;
  auth_handler auth;  // none: every connection is established at once
  std::chrono::milliseconds auth_timeout{10'000};
  std::size_t max_pending_auth = 1024;
};

}  // namespace msgtrans

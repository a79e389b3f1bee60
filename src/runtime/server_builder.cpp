// server_builder: collects the settings (server_config.hpp), checking each value;
// build() is in server.cpp, beside the server it makes.
#include "runtime/server_config.hpp"
#include "runtime/session_options.hpp"

#include <msgtrans/server.hpp>

#include <stdexcept>

namespace msgtrans {

// ---- server_builder ----

server_builder::server_builder() : cfg_(std::make_unique<server_config>()) {}
server_builder::~server_builder() = default;
server_builder::server_builder(server_builder&&) noexcept = default;
server_builder& server_builder::operator=(server_builder&&) noexcept = default;

server_builder& server_builder::listen(std::unique_ptr<listener> l, std::size_t max_connections,
                                       std::size_t max_connections_per_ip) {
  if (!l) throw std::invalid_argument("listen: listener is null");
  cfg_->listeners.push_back(listener_entry{std::move(l), max_connections, max_connections_per_ip});
  return *this;
}
server_builder& server_builder::max_connections_per_ip(std::size_t n) {
  cfg_->max_connections_per_ip = n;
  return *this;
}
server_builder& server_builder::max_handshakes_per_second_per_ip(std::size_t n) {
  if (n > 1'000'000'000) throw std::invalid_argument("max_handshakes_per_second_per_ip must be at most 1e9 (0 = off)");
  cfg_->max_handshakes_per_second_per_ip = n;
  return *this;
}
server_builder& server_builder::threads(std::size_t n) { cfg_->threads = n; return *this; }
server_builder& server_builder::max_connections(std::size_t n) {
  if (n == 0) throw std::invalid_argument("max_connections must be at least 1");
  cfg_->max_connections = n;
  return *this;
}
server_builder& server_builder::options(const session_options& o) {
  detail::validate(o);
  cfg_->opts = o;
  return *this;
}
server_builder& server_builder::apply(preset p) {
  if (auto loops = detail::apply_preset(p, cfg_->opts)) cfg_->threads = loops;
  return *this;
}
server_builder& server_builder::on_connected(std::function<void(const connection_info&)> f) { cfg_->h.on_connected = std::move(f); return *this; }
server_builder& server_builder::on_message(std::function<void(const message&)> f) { cfg_->h.on_message = std::move(f); return *this; }
server_builder& server_builder::on_request(std::function<void(request&)> f) { cfg_->h.on_request = std::move(f); return *this; }
server_builder& server_builder::on_closed(std::function<void(session_id, const close_info&)> f) { cfg_->h.on_closed = std::move(f); return *this; }
server_builder& server_builder::on_sent(std::function<void(session_id, std::uint32_t)> f) { cfg_->h.on_sent = std::move(f); return *this; }
server_builder& server_builder::sent_events(bool enabled) {
  cfg_->sent_events = enabled;
  return *this;
}
server_builder& server_builder::events(std::size_t capacity) {
  if (capacity == 0) throw std::invalid_argument("events capacity must be at least 1");
  cfg_->event_capacity = capacity;
  return *this;
}
server_builder& server_builder::on_notice(std::function<void(const notice&)> f) {
  cfg_->on_notice = std::move(f);
  return *this;
}
server_builder& server_builder::inbound_memory_limit(std::size_t bytes) {
  cfg_->inbound_memory_limit = bytes;
  return *this;
}
server_builder& server_builder::cluster(const nats_cluster_config& c) {
  auto bus = make_nats_bus(c);  // validates, naming the field
  return cluster(std::move(bus), cluster_node_options{c.cluster_name, c.node_name, c.presence_interval});
}
server_builder& server_builder::cluster(std::unique_ptr<cluster_bus> bus, cluster_node_options o) {
  if (!bus) throw std::invalid_argument("cluster: bus is null");
  if (o.cluster_name.empty()) throw std::invalid_argument("cluster_name must not be empty");
  if (o.presence_interval <= std::chrono::milliseconds::zero())
    throw std::invalid_argument("presence_interval must be positive");
  cfg_->bus = std::move(bus);
  cfg_->node = std::move(o);
  return *this;
}
server_builder& server_builder::on_authenticate(auth_handler h) {
  if (!h) throw std::invalid_argument("on_authenticate: handler is empty");
  cfg_->auth = std::move(h);
  return *this;
}
server_builder& server_builder::auth_timeout(std::chrono::milliseconds t) {
  if (t.count() <= 0) throw std::invalid_argument("auth_timeout must be positive");
  cfg_->auth_timeout = t;
  return *this;
}
server_builder& server_builder::max_pending_auth(std::size_t n) {
  if (n == 0) throw std::invalid_argument("max_pending_auth must be at least 1");
  cfg_->max_pending_auth = n;
  return *this;
}
const session_options& server_builder::current_options() const noexcept { return cfg_->opts; }

}  // namespace msgtrans

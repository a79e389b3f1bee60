/// @file cluster.hpp
/// Rooms across processes and machines: the bus that links a server's nodes, and the
/// NATS configuration. A server without a cluster keeps its rooms in its own process
/// (no network, no extra thread); the room API (server.hpp) is the same either way.
///
///     auto server = msgtrans::server_builder{}
///         .listen(msgtrans::tcp_server_config{"0.0.0.0:8001"})
///         .cluster(msgtrans::nats_cluster_config{.servers = {"nats://10.0.0.5:4222"},
///                                                .cluster_name = "chat"})
///         .build();
///
/// docs/scaling.md has the semantics (at-most-once across nodes, order per publisher per
/// room, what happens while the broker is away).
#pragma once

#include <msgtrans/error.hpp>
#include <msgtrans/transport.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace msgtrans {

namespace detail {
struct hub_state;
}

/// Where a bus stands. Publishing works only while `connected`.
enum class bus_state { connecting, connected, reconnecting, closed };
std::string_view to_string(bus_state s) noexcept;

/// Publish/subscribe on literal subjects: what a server needs from a broker to link its
/// nodes. Implementations: NATS (make_nats_bus) and in-process (in_process_hub); another
/// engine (Redis, ...) is one more implementation of this class, with no change to the
/// runtime.
///
/// Contract: subjects are literal (the runtime never asks for wildcards); `subscribe`
/// of a subject already subscribed and `unsubscribe` of one that is not are no-ops;
/// messages of one subject from one publisher arrive in the order published; a bus
/// never hands a node its own publishes; handlers may run on any thread (the bus's own
/// or the publisher's), but never two at once for one subject, and none after `stop()`
/// returns.
class cluster_bus {
 public:
  /// A message: its subject and its bytes (valid during the call only).
  using message_handler = std::function<void(std::string_view subject, bytes_view data)>;
  /// A change of state, with a human-readable detail (which server, why).
  using state_handler = std::function<void(bus_state, std::string_view detail)>;

  virtual ~cluster_bus() = default;
  /// Connects and starts delivering to `on_message`. Fails with a detail naming the
  /// server(s) tried when none answers within the connect timeout.
  virtual error_info start(message_handler on_message, state_handler on_state) = 0;
  /// Publishes; errc::not_connected while the broker is away (nothing is queued).
  virtual std::error_code publish(std::string_view subject, bytes_view data) = 0;
  virtual std::error_code subscribe(std::string_view subject) = 0;
  virtual void unsubscribe(std::string_view subject) = 0;
  virtual bus_state state() const noexcept = 0;
  /// Unsubscribes everything and disconnects. Idempotent.
  virtual void stop() = 0;
};

/// The NATS connection of a server's node (Debian's libnats, the official C client).
struct nats_cluster_config {
  /// Tried in order at start and on every reconnect (`nats://host:port`, `tls://...`).
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};
  /// Nodes with the same cluster name share rooms and sessions; it prefixes every subject.
  std::string cluster_name = "msgtrans";
  /// This node's name, unique in the cluster (empty: host name, pid and a random part).
  /// Session ids carry a 24-bit node id derived from it.
  std::string node_name;
  std::string user, password;  ///< user/password authentication (both or neither)
  std::string token;           ///< token authentication
  bool tls = false;            ///< require TLS to the NATS server
  std::string tls_ca_file;     ///< trust these CAs (default: the system's)
  std::string tls_cert_file, tls_key_file;  ///< client certificate (both or neither)
  bool tls_insecure_skip_verify = false;    ///< tests only
  std::chrono::milliseconds connect_timeout{2000};  ///< per server, at start
  std::chrono::milliseconds reconnect_wait{250};    ///< between rounds over the list
  /// How often a node tells the others its room sizes (room_scope::cluster is at most
  /// about this stale; a vanished node's members are forgotten after 3 intervals).
  std::chrono::milliseconds presence_interval{1000};
};

/// A bus on NATS. Throws std::invalid_argument naming the field for a bad config.
std::unique_ptr<cluster_bus> make_nats_bus(const nats_cluster_config& c);

/// Links servers of one process as if they were nodes on a broker: messages are handed
/// over synchronously on the publisher's thread (no thread, no network). For tests and
/// for several servers in one process.
class in_process_hub {
 public:
  in_process_hub();
  ~in_process_hub();
  in_process_hub(const in_process_hub&) = delete;
  in_process_hub& operator=(const in_process_hub&) = delete;
  /// A new bus attached to this hub (one per server). The hub must outlive it.
  std::unique_ptr<cluster_bus> connect();

 private:
  std::shared_ptr<detail::hub_state> state_;
};

}  // namespace msgtrans

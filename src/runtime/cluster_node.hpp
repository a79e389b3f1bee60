// A server's place in a cluster: its node id, the subjects it uses on the bus, the
// envelopes it sends and receives (rooms, directed sends, requests, closes, presence)
// and the requests it waits on from other nodes. Subjects (cluster name C, node id N):
//   msgtrans.C.r.ROOM   a room's publishes (subscribed while the room has local members)
//   msgtrans.C.n.N      sends, requests, responses and closes for this node's sessions
//   msgtrans.C.p        room sizes, every presence_interval from every node
// C and ROOM are subject_token()-encoded, so no name ever acts as a wildcard.
#pragma once

#include "runtime/session_core.hpp"

#include <msgtrans/cluster.hpp>
#include <msgtrans/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

namespace msgtrans::detail {

struct envelope;

/// What the node needs from its server.
class cluster_host {
 public:
  virtual ~cluster_host() = default;
  virtual std::shared_ptr<session_core> find_local(session_id s) const = 0;
  /// Hands an encoded packet from another node to the room's local members.
  virtual void deliver_to_room(std::string_view room, session_id except, bytes_view encoded) = 0;
  /// Calls f(room, members) for each room with local members.
  virtual void for_each_local_room(const std::function<void(std::string_view, std::size_t)>& f) const = 0;
};

class cluster_node : public std::enable_shared_from_this<cluster_node> {
 public:
  cluster_node(std::unique_ptr<cluster_bus> bus, cluster_node_options o, cluster_host& host,
               boost::asio::io_context& loop);
  ~cluster_node();

  /// The 24-bit id inside this node's session ids.
  std::uint32_t id() const noexcept { return id_; }
  bool is_local(session_id s) const noexcept { return (s.value >> 40) == id_; }
  /// The session id for this node's n-th session.
  session_id make_session_id(std::uint64_t n) const noexcept { return session_id{std::uint64_t{id_} << 40 | n}; }

  error_info start();
  /// Fails pending requests with shutting_down and leaves the bus.
  void stop();

  /// Called under the room registry's lock (see room_registry::on_interest).
  void interest(std::string_view room, bool interested);
  std::error_code publish_room(std::string_view room, session_id except, bytes_view encoded);
  std::error_code send(session_id target, bytes_view encoded, bool high_priority);
  void request(session_id target, bytes_view payload, std::chrono::milliseconds timeout, const send_options& o,
               response_handler h);
  std::error_code close(session_id target, std::string_view detail);
  /// Members of `room` on other nodes, as last reported (fresh reports only).
  std::size_t remote_room_size(std::string_view room) const;
  void fill_stats(server_stats& st) const;

 private:
  struct pending_request {
    response_handler handler;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  struct presence_entry {
    std::map<std::string, std::uint32_t, std::less<>> rooms;
    std::chrono::steady_clock::time_point seen;
  };

  std::string room_subject(std::string_view room) const;
  std::string node_subject(std::uint32_t node) const;
  std::error_code publish(const std::string& subject, const envelope& e);
  void on_bus_message(std::string_view subject, bytes_view data);
  void on_state(bus_state s, std::string_view detail);
  void on_request(std::uint32_t origin, std::uint64_t target, std::uint64_t correlation, std::uint32_t timeout_ms,
                  std::uint8_t biz, std::uint16_t flags, byte_buffer ext, byte_buffer payload);
  void on_presence(const envelope& e);
  void complete(std::uint64_t correlation, std::error_code ec, packet p);
  void publish_presence();

  std::unique_ptr<cluster_bus> bus_;
  cluster_node_options opts_;
  cluster_host& host_;
  boost::asio::io_context& loop_;
  std::uint32_t id_;
  std::string prefix_, own_subject_, presence_subject_;

  std::mutex pending_mu_;
  std::unordered_map<std::uint64_t, pending_request> pending_;
  std::uint64_t next_correlation_ = 1;

  mutable std::mutex presence_mu_;
  std::unordered_map<std::uint32_t, presence_entry> presence_;  // by node
  std::set<std::string, std::less<>> emptied_;                    // rooms to report as 0 once
  std::shared_ptr<boost::asio::steady_timer> presence_timer_;

  std::atomic<bool> started_{false}, stopped_{false};
  std::atomic<std::uint64_t> out_{0}, in_{0}, publish_errors_{0}, malformed_{0}, reconnects_{0};
  std::atomic<bool> was_lost_{false};
};

/// The 24-bit node id of a node name (FNV-1a, never 0).
std::uint32_t node_id_of(std::string_view node_name) noexcept;
/// A node name for a node that has none: host name, pid and a random part.
std::string default_node_name();

}  // namespace msgtrans::detail

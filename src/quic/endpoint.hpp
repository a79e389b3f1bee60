// The server side: one UDP socket, many connections, routed by connection ID. Also
// answers what no connection owns: Version Negotiation, Retry (address validation),
// Stateless Reset, and refusals when full.
#pragma once

#include "quic/quic_conn.hpp"
#include "quic/udp_socket.hpp"

#include <msgtrans/quic.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace msgtrans::quic_detail {

struct cid_key {
  std::uint8_t len = 0;
  std::array<std::uint8_t, NGTCP2_MAX_CIDLEN> data{};
  // Longer IDs are cut to the QUIC v1 maximum (the caller refuses them before this).
  cid_key(const std::uint8_t* p, std::size_t n) : len(static_cast<std::uint8_t>(std::min<std::size_t>(n, NGTCP2_MAX_CIDLEN))) {
    std::memcpy(data.data(), p, len);
  }
  explicit cid_key(const ngtcp2_cid& c) : cid_key(c.data, c.datalen) {}
  bool operator==(const cid_key& o) const noexcept {
    return len == o.len && std::memcmp(data.data(), o.data.data(), len) == 0;
  }
};
struct cid_hash {
  std::size_t operator()(const cid_key& k) const noexcept {
    return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(k.data.data()), k.len));
  }
};

class endpoint;

/// What the endpoints of one listener share. A listener has an endpoint (a UDP socket
/// and the connections it carries) per runtime loop, all bound to one port; the kernel
/// steers each datagram to its connection's socket (quic_server_config::sockets).
struct endpoint_group {
  endpoint_group(const quic_server_config& cfg, const transport_context& ctx, std::size_t count);
  conn_config conn_cfg;  // one secret: any socket can check a Retry token or make a reset
  /// The credentials new handshakes use; reload_tls replaces them (any thread).
  std::shared_ptr<const tls_credentials> credentials() const {
    std::lock_guard lock(cred_mu);
    return cred;
  }
  void set_credentials(std::shared_ptr<const tls_credentials> c) {
    std::lock_guard lock(cred_mu);
    cred = std::move(c);
  }
  mutable std::mutex cred_mu;
  std::shared_ptr<const tls_credentials> cred;
  std::size_t count;
  std::atomic<std::size_t> connections{0};  // handshakes included, for max_connections
  std::atomic<std::size_t> handshakes{0};   // for max_pending_handshakes
  std::atomic<std::size_t> idle{0};         // members stopped with no connection left
  admission_control* admission = nullptr;   // max_handshakes_per_second_per_ip (null: none)
  std::vector<std::weak_ptr<endpoint>> members;  // filled before any member receives
};

class endpoint final : public conn_host, public std::enable_shared_from_this<endpoint> {
 public:
  /// Member `index` of `group`.
  endpoint(boost::asio::io_context& loop, const quic_server_config& cfg, std::shared_ptr<endpoint_group> group,
           std::size_t index);
  /// Binds the socket (with SO_REUSEPORT when the group has several members).
  std::error_code bind(const boost::asio::ip::udp::endpoint& addr, std::string& detail);
  /// Attaches the group's steering program (once, on any member, after all are bound).
  std::error_code steer_group(std::string& detail);
  /// Starts receiving on the socket's loop; may be called from another thread before any
  /// datagram is handled.
  void start_receive(listener::accept_handler on_accept);
  /// Stops accepting; the socket stays open while connections remain on any member.
  void stop();
  boost::asio::io_context& loop() noexcept { return loop_; }
  boost::asio::ip::udp::endpoint bound_endpoint() const { return sock_.local_endpoint(); }
  std::string local_address() const { return local_address_; }
  const std::shared_ptr<endpoint_group>& group() const noexcept { return group_; }

  // For tests and stats.
  std::size_t connection_count() const noexcept { return conns_.size(); }
  std::size_t handshake_count() const noexcept { return handshaking_.size(); }
  std::uint64_t retries_sent() const noexcept { return retries_sent_; }

  // conn_host
  void send_close(const ngtcp2_addr& remote, const std::uint8_t* buf, std::size_t len) override;
  void send_packets(const ngtcp2_addr& remote, const std::uint8_t* buf, const std::size_t* lens,
                    std::size_t n) override;
  void add_cid(quic_conn& c, const ngtcp2_cid& cid) override;
  void remove_cid(const ngtcp2_cid& cid) override;
  void on_established(const std::shared_ptr<quic_conn>& c) override;
  void on_failed(quic_conn&, const close_info&) override {}
  void on_terminated(quic_conn& c) override;
  bool send_blocked() const override { return sock_.blocked(); }
  void wait_writable(const std::shared_ptr<quic_conn>& c) override;

 private:
  void on_datagram(const sockaddr* from, socklen_t fromlen, std::uint8_t* data, std::size_t len);
  void accept_initial(const sockaddr* from, socklen_t fromlen, std::uint8_t* data, std::size_t len);
  void send_one(const sockaddr* to, socklen_t tolen, const std::uint8_t* p, std::size_t n);
  void send_version_negotiation(const ngtcp2_version_cid& vc, const sockaddr* to, socklen_t tolen, std::size_t len);
  void send_stateless_reset(const ngtcp2_version_cid& vc, const sockaddr* to, socklen_t tolen, std::size_t len);
  void send_retry(const ngtcp2_pkt_hd& hd, const sockaddr* to, socklen_t tolen);
  void send_refusal(const ngtcp2_pkt_hd& hd, std::uint64_t code, const sockaddr* to, socklen_t tolen);
  void maybe_close_socket();
  bool mine(const std::uint8_t* dcid) const noexcept {
    return group_->count <= 1 || dcid[0] % group_->count == conn_cfg_.steer_index;
  }

  boost::asio::io_context& loop_;
  quic_server_config cfg_;
  std::shared_ptr<endpoint_group> group_;
  conn_config conn_cfg_;  // the group's, with this member's steer_index
  udp_socket sock_;
  bool idle_ = false;  // counted in group_->idle
  sockaddr_storage local_{};
  socklen_t locallen_ = 0;
  std::string local_address_;
  listener::accept_handler on_accept_;
  bool accepting_ = false;
  std::unordered_map<cid_key, quic_conn*, cid_hash> by_cid_;
  std::unordered_set<quic_conn*> conns_;
  std::unordered_set<quic_conn*> handshaking_;
  std::unordered_set<quic_conn*> undelivered_;  // established, on_accept posted
  std::vector<std::weak_ptr<quic_conn>> writable_waiters_;  // flushed when the socket drains
  std::uint64_t retries_sent_ = 0;
  // Stateless resets answer unknown packets; bounded per second so they cannot be used
  // to make us flood.
  std::chrono::steady_clock::time_point reset_window_{};
  std::size_t resets_in_window_ = 0;
};

/// A listener's endpoints, bound but not receiving yet: `n` of them on one port, the i-th
/// on `loops[i]`, with the steering program when n > 1 (`steer_failed` tells that the
/// kernel refused it). What the listener does at start, and tests that inspect an endpoint.
std::error_code bind_endpoints(const quic_server_config& cfg, const transport_context& ctx,
                               const std::vector<boost::asio::io_context*>& loops, std::size_t n,
                               std::vector<std::shared_ptr<endpoint>>& out, bool& steer_failed,
                               std::string& detail);

}  // namespace msgtrans::quic_detail

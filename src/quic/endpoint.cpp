// QUIC listener: UDP endpoints (one per runtime loop, sharing the port) and their routing.
// All connections of an endpoint live on the endpoint's loop.
#include "quic/config.hpp"
#include "net/address.hpp"
#include "net/resolve.hpp"
#include "quic/endpoint.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <ngtcp2/ngtcp2_crypto.h>

#include <future>
#include <stdexcept>

namespace msgtrans::quic_detail {
namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {
constexpr std::size_t max_resets_per_second = 256;
constexpr auto retry_token_lifetime = std::chrono::seconds(10);
}  // namespace

endpoint_group::endpoint_group(const quic_server_config& cfg, const transport_context& ctx, std::size_t n)
    : count(n) {
  conn_cfg.opts = cfg.connection;
  conn_cfg.handshake_timeout = cfg.handshake_timeout;
  conn_cfg.limits = ctx.limits;
  conn_cfg.close_timeout = ctx.close_timeout;
  conn_cfg.notices = ctx.notices;
  admission = ctx.admission;
  conn_cfg.steer_count = static_cast<std::uint8_t>(n);
  random_bytes(conn_cfg.secret.data(), conn_cfg.secret.size());
}

endpoint::endpoint(asio::io_context& loop, const quic_server_config& cfg, std::shared_ptr<endpoint_group> group,
                   std::size_t index)
    : loop_(loop), cfg_(cfg), group_(std::move(group)), conn_cfg_(group_->conn_cfg), sock_(loop) {
  conn_cfg_.steer_index = static_cast<std::uint8_t>(index);
}

// The listener's certificate and client CAs, read from their files (or generated).
static std::error_code load_server_credentials(const quic_server_config& cfg,
                                               std::shared_ptr<const tls_credentials>& out, std::string& detail) {
  auto cred = std::make_shared<tls_credentials>();
  server_tls_files f{cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_client_ca_file, cfg.require_client_cert};
  if (auto e = cred->init_server(f, cfg.certificate_names, cfg.write_self_signed_cert_to, detail)) return e;
  out = std::move(cred);
  return {};
}

std::error_code bind_endpoints(const quic_server_config& cfg, const transport_context& ctx,
                               const std::vector<asio::io_context*>& loops, std::size_t n,
                               std::vector<std::shared_ptr<endpoint>>& out, bool& steer_failed,
                               std::string& detail) {
  steer_failed = false;
  udp::endpoint addr;
  if (auto e = net::resolve_bind<udp>(*loops.front(), cfg.bind_address, "quic", addr)) {
    detail = e.detail;
    return e.code;
  }
  auto group = std::make_shared<endpoint_group>(cfg, ctx, n);
  if (auto e = load_server_credentials(cfg, group->cred, detail)) return e;
  std::vector<std::shared_ptr<endpoint>> eps;
  for (std::size_t i = 0; i < n; ++i) {
    eps.push_back(std::make_shared<endpoint>(*loops[i], cfg, group, i));
    if (auto e = eps.back()->bind(addr, detail)) return e;  // the others close with eps
    addr = eps.back()->bound_endpoint();                    // port 0: the others take its port
  }
  if (n > 1) {
    if (auto e = eps.front()->steer_group(detail)) {
      steer_failed = true;
      return e;
    }
  }
  for (auto& ep : eps) group->members.push_back(ep);
  out = std::move(eps);
  return {};
}

std::error_code endpoint::bind(const udp::endpoint& addr, std::string& detail) {
  if (auto e = sock_.open(addr, cfg_.connection.udp_buffer_size, cfg_.connection.udp_gso, group_->count > 1)) {
    detail = "cannot bind udp " + cfg_.bind_address + ": " + e.message();
    return errc::bind_failed;
  }
  sock_.set_coalesce(true);  // one sendmmsg per loop turn for all its connections
  auto le = sock_.local_endpoint();
  std::memcpy(&local_, le.data(), le.size());
  locallen_ = static_cast<socklen_t>(le.size());
  local_address_ = net::format(reinterpret_cast<const sockaddr*>(&local_));
  return {};
}

std::error_code endpoint::steer_group(std::string& detail) {
  if (auto e = sock_.steer_by_connection_id(group_->count)) {
    detail = "cannot attach the connection-ID steering program to udp " + local_address_ + ": " + e.message();
    return errc::bind_failed;
  }
  return {};
}

void endpoint::start_receive(listener::accept_handler on_accept) {
  on_accept_ = std::move(on_accept);
  accepting_ = true;
  sock_.set_on_writable([this] {
    auto waiters = std::move(writable_waiters_);
    writable_waiters_.clear();
    for (auto& w : waiters)
      if (auto c = w.lock()) c->flush();
  });
  sock_.start_receive([this](const sockaddr* from, socklen_t fromlen, std::uint8_t* data,
                             std::size_t len) { on_datagram(from, fromlen, data, len); },
                      nullptr, shared_from_this());
}

void endpoint::stop() {
  accepting_ = false;
  // Connections the runtime has not been given yet (handshaking, or delivery posted)
  // are closed now, so their clients hear CONNECTION_CLOSE rather than silence.
  std::vector<std::shared_ptr<quic_conn>> undelivered;
  for (quic_conn* c : handshaking_) undelivered.push_back(c->shared_from_this());
  for (quic_conn* c : undelivered_) undelivered.push_back(c->shared_from_this());
  for (auto& c : undelivered)
    c->close({close_reason::shutdown, errc::shutting_down, "the server is not accepting connections", 0});
  maybe_close_socket();
}

// The sockets of a group close together, once every member has stopped and lost its
// last connection: the kernel numbers the sockets of a port in the order they remain, so
// closing one early would send other members' datagrams to the wrong socket.
void endpoint::maybe_close_socket() {
  if (accepting_ || !conns_.empty() || idle_) return;
  idle_ = true;
  if (group_->idle.fetch_add(1) + 1 < group_->count) return;
  for (auto& w : group_->members)
    if (auto m = w.lock()) asio::dispatch(m->loop_, [m] { m->sock_.close(); });
}

// ---------------------------------------------------------------------------------------
// Routing

void endpoint::on_datagram(const sockaddr* from, socklen_t fromlen, std::uint8_t* data, std::size_t len) {
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, server_cid_len);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    if (accepting_) send_version_negotiation(vc, from, fromlen, len);
    return;
  }
  // A Version Negotiation packet (version 0) is a server's answer, never meant for us,
  // and ngtcp2 passes its connection IDs through at any length up to 255 bytes.
  if (rv != 0 || ((data[0] & 0x80) && vc.version == 0) || vc.dcidlen > NGTCP2_MAX_CIDLEN) return;
  if (auto it = by_cid_.find(cid_key(vc.dcid, vc.dcidlen)); it != by_cid_.end()) {
    it->second->on_datagram(reinterpret_cast<const sockaddr*>(&local_), locallen_, from, fromlen, data, len);
    return;
  }
  if (!(data[0] & 0x80)) {  // short header for no connection we know
    // One of another member's connection IDs, misrouted: never reset it from here.
    if (vc.dcidlen > 0 && mine(vc.dcid)) send_stateless_reset(vc, from, fromlen, len);
    return;
  }
  if (accepting_) accept_initial(from, fromlen, data, len);
}

void endpoint::accept_initial(const sockaddr* from, socklen_t fromlen, std::uint8_t* data, std::size_t len) {
  ngtcp2_pkt_hd hd;
  // Rejects anything but a well-formed client Initial in a datagram of at least 1200 bytes
  // (truncated Initials end here).
  if (ngtcp2_accept(&hd, data, len) != 0 || hd.type != NGTCP2_PKT_INITIAL) return;
  if (cfg_.max_connections != 0 && group_->connections.load() >= cfg_.max_connections) {
    send_refusal(hd, NGTCP2_CONNECTION_REFUSED, from, fromlen);
    return;
  }
  ngtcp2_cid odcid;
  const ngtcp2_cid* podcid = nullptr;
  if (hd.token.len > 0 && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
    if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len, conn_cfg_.secret.data(),
                                         conn_cfg_.secret.size(), hd.version, from, fromlen, &hd.dcid,
                                         std::chrono::nanoseconds(retry_token_lifetime).count(), now_ts()) != 0) {
      send_refusal(hd, NGTCP2_INVALID_TOKEN, from, fromlen);
      return;
    }
    podcid = &odcid;
  } else {
    hd.token.len = 0;  // we issue no NEW_TOKEN tokens; anything else is ignored
    if (cfg_.retry || group_->handshakes.load() >= cfg_.max_pending_handshakes) {
      send_retry(hd, from, fromlen);
      return;
    }
  }
  // max_handshakes_per_second_per_ip: counted once per connection made (a Retry round
  // trip is not counted; with `retry` only validated addresses are).
  if (group_->admission && !group_->admission->admit_handshake(from, "quic")) {
    send_refusal(hd, NGTCP2_CONNECTION_REFUSED, from, fromlen);
    return;
  }
  quic_conn::server_args args{&hd, podcid, {}};
  args.scid.datalen = server_cid_len;
  random_bytes(args.scid.data, server_cid_len);
  conn_cfg_.steer(args.scid.data);
  std::string detail;
  auto c = quic_conn::make_server(loop_, shared_from_this(), group_->credentials(), conn_cfg_, reinterpret_cast<sockaddr*>(&local_),
                                  locallen_, from, fromlen, args, detail);
  if (!c) return;
  conns_.insert(c.get());
  handshaking_.insert(c.get());
  group_->connections.fetch_add(1);
  group_->handshakes.fetch_add(1);
  by_cid_[cid_key(hd.dcid)] = c.get();
  by_cid_[cid_key(args.scid)] = c.get();
  c->on_datagram(reinterpret_cast<const sockaddr*>(&local_), locallen_, from, fromlen, data, len);
  c->flush();  // arms its timer, which keeps it alive until it completes or times out
}

// ---------------------------------------------------------------------------------------
// conn_host

void endpoint::send_packets(const ngtcp2_addr& remote, const std::uint8_t* buf, const std::size_t* lens,
                            std::size_t n) {
  // Coalesce only when there is another connection to share the system call with: for a
  // single one the copy and the posted flush cost 4% more instructions per message.
  sock_.send(remote.addr, remote.addrlen, buf, lens, n, /*coalesce=*/conns_.size() > 1);
}

void endpoint::send_close(const ngtcp2_addr& remote, const std::uint8_t* buf, std::size_t len) {
  sock_.send(remote.addr, remote.addrlen, buf, &len, 1);
}

void endpoint::send_one(const sockaddr* to, socklen_t tolen, const std::uint8_t* p, std::size_t n) {
  sock_.send(to, tolen, p, &n, 1);
}

void endpoint::wait_writable(const std::shared_ptr<quic_conn>& c) {
  for (const auto& w : writable_waiters_)
    if (!w.owner_before(c) && !c.owner_before(w)) return;  // already waiting
  writable_waiters_.push_back(c);
}

void endpoint::add_cid(quic_conn& c, const ngtcp2_cid& cid) { by_cid_[cid_key(cid)] = &c; }

void endpoint::remove_cid(const ngtcp2_cid& cid) { by_cid_.erase(cid_key(cid)); }

void endpoint::on_established(const std::shared_ptr<quic_conn>& c) {
  if (handshaking_.erase(c.get())) group_->handshakes.fetch_sub(1);
  undelivered_.insert(c.get());
  asio::post(loop_, [self = shared_from_this(), c] {
    if (!self->undelivered_.erase(c.get())) return;  // closed by stop() meanwhile
    if (!self->accepting_ || !self->on_accept_) {
      c->close({close_reason::shutdown, errc::shutting_down, "the server is not accepting connections", 0});
      return;
    }
    self->on_accept_(std::make_unique<quic_connection>(c));
  });
}

void endpoint::on_terminated(quic_conn& c) {
  auto erase_if_mine = [&](const ngtcp2_cid& cid) {
    auto it = by_cid_.find(cid_key(cid));
    if (it != by_cid_.end() && it->second == &c) by_cid_.erase(it);
  };
  for (auto& cid : c.cids()) erase_if_mine(cid);
  erase_if_mine(c.original_dcid());
  if (conns_.erase(&c)) group_->connections.fetch_sub(1);
  if (handshaking_.erase(&c)) group_->handshakes.fetch_sub(1);
  undelivered_.erase(&c);
  maybe_close_socket();
}

// ---------------------------------------------------------------------------------------
// Stateless answers

void endpoint::send_version_negotiation(const ngtcp2_version_cid& vc, const sockaddr* to, socklen_t tolen,
                                        std::size_t len) {
  if (len < NGTCP2_MAX_UDP_PAYLOAD_SIZE) return;  // only for Initial-sized datagrams (RFC 9000 6.1)
  std::uint8_t buf[256];
  std::uint8_t unused;
  random_bytes(&unused, 1);
  const std::uint32_t versions[] = {NGTCP2_PROTO_VER_V1};
  auto n = ngtcp2_pkt_write_version_negotiation(buf, sizeof buf, unused, vc.scid, vc.scidlen, vc.dcid, vc.dcidlen,
                                                versions, 1);
  if (n > 0) send_one(to, tolen, buf, static_cast<std::size_t>(n));
}

void endpoint::send_stateless_reset(const ngtcp2_version_cid& vc, const sockaddr* to, socklen_t tolen,
                                    std::size_t len) {
  // A reset must be shorter than what triggered it, and look like a short-header packet.
  constexpr std::size_t min_len = 1 + 20 + NGTCP2_STATELESS_RESET_TOKENLEN + 1;
  if (len <= min_len || vc.dcidlen != server_cid_len) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - reset_window_ > std::chrono::seconds(1)) {
    reset_window_ = now;
    resets_in_window_ = 0;
  }
  if (++resets_in_window_ > max_resets_per_second) return;
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, vc.dcid, vc.dcidlen);
  std::uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  if (ngtcp2_crypto_generate_stateless_reset_token(token, conn_cfg_.secret.data(), conn_cfg_.secret.size(), &cid) != 0)
    return;
  std::uint8_t rand[64];
  const std::size_t randlen = std::min<std::size_t>(sizeof rand, len - 1 - NGTCP2_STATELESS_RESET_TOKENLEN);
  random_bytes(rand, randlen);
  std::uint8_t buf[128];
  auto n = ngtcp2_pkt_write_stateless_reset(buf, sizeof buf, token, rand, randlen);
  if (n > 0) send_one(to, tolen, buf, static_cast<std::size_t>(n));
}

void endpoint::send_retry(const ngtcp2_pkt_hd& hd, const sockaddr* to, socklen_t tolen) {
  ngtcp2_cid scid;
  scid.datalen = server_cid_len;
  random_bytes(scid.data, scid.datalen);
  conn_cfg_.steer(scid.data);
  std::uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  auto tokenlen = ngtcp2_crypto_generate_retry_token(token, conn_cfg_.secret.data(), conn_cfg_.secret.size(),
                                                     hd.version, to, tolen, &scid, &hd.dcid, now_ts());
  if (tokenlen < 0) return;
  std::uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  auto n = ngtcp2_crypto_write_retry(buf, sizeof buf, hd.version, &hd.scid, &scid, &hd.dcid, token,
                                     static_cast<std::size_t>(tokenlen));
  if (n > 0) {
    ++retries_sent_;
    send_one(to, tolen, buf, static_cast<std::size_t>(n));
  }
}

void endpoint::send_refusal(const ngtcp2_pkt_hd& hd, std::uint64_t code, const sockaddr* to, socklen_t tolen) {
  std::uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  auto n = ngtcp2_crypto_write_connection_close(buf, sizeof buf, hd.version, &hd.scid, &hd.dcid, code, nullptr, 0);
  if (n > 0) send_one(to, tolen, buf, static_cast<std::size_t>(n));
}

// ---------------------------------------------------------------------------------------
// The listener the runtime sees

namespace {

class quic_listener final : public listener {
 public:
  explicit quic_listener(const quic_server_config& c) : cfg_(c) {}
  ~quic_listener() override { stop(); }

  error_info start(asio::io_context& accept_loop, loop_picker, accept_handler on_accept,
                   const transport_context& ctx) override {
    std::string detail;
    std::error_code ec = start_listening(accept_loop, on_accept, ctx, detail);
    return {ec, std::move(detail)};
  }

  std::error_code start_listening(asio::io_context& accept_loop, const accept_handler& on_accept,
                                  const transport_context& ctx, std::string& detail) {
    std::vector<asio::io_context*> loops = ctx.loops;
    if (loops.empty()) loops.push_back(&accept_loop);
    std::size_t n = cfg_.sockets == 0 ? loops.size() : std::min(cfg_.sockets, loops.size());
    n = std::clamp<std::size_t>(n, 1, max_sockets);
    auto ec = start_group(loops, n, on_accept, ctx, detail);
    // A kernel that refuses the steering program (SO_ATTACH_REUSEPORT_CBPF, Linux 4.5+)
    // still gets a working listener: one socket, every connection on the first loop.
    if (ec && n > 1 && steer_failed_) ec = start_group(loops, 1, on_accept, ctx, detail);
    return ec;
  }

  std::error_code start_group(const std::vector<asio::io_context*>& loops, std::size_t n,
                              const accept_handler& on_accept, const transport_context& ctx, std::string& detail) {
    std::vector<std::shared_ptr<endpoint>> eps;
    if (auto e = bind_endpoints(cfg_, ctx, loops, n, eps, steer_failed_, detail)) return e;
    for (auto& ep : eps) ep->start_receive(on_accept);
    eps_ = std::move(eps);
    return {};
  }
  // Each endpoint stops on its own loop, and this waits for it: the runtime may stop its
  // loops right after, and a handshaking client must hear CONNECTION_CLOSE first.
  void stop() override {
    for (auto& ep : eps_) {
      auto& loop = ep->loop();
      if (loop.get_executor().running_in_this_thread() || loop.stopped()) {
        ep->stop();
        continue;
      }
      auto done = std::make_shared<std::promise<void>>();
      auto stopped = done->get_future();
      asio::post(loop, [ep, done] {
        ep->stop();
        done->set_value();
      });
      stopped.wait_for(std::chrono::seconds(5));  // bounded, should the loop never run again
    }
  }
  std::string local_address() const override {
    return eps_.empty() ? cfg_.bind_address : eps_.front()->local_address();
  }
  std::string protocol() const override { return "quic"; }
  // New handshakes take the new credentials; a connection keeps the ones it was made
  // with (quic_conn holds them). A generated self-signed certificate has no files to
  // read again: nothing to reload.
  error_info reload_tls() override {
    if (cfg_.tls_cert_file.empty() || eps_.empty()) return {};
    std::shared_ptr<const tls_credentials> cred;
    std::string detail;
    if (auto e = load_server_credentials(cfg_, cred, detail)) return {errc::tls_error, "quic: " + detail};
    eps_.front()->group()->set_credentials(std::move(cred));
    return {};
  }

 private:
  static constexpr std::size_t max_sockets = 64;
  quic_server_config cfg_;
  std::vector<std::shared_ptr<endpoint>> eps_;
  bool steer_failed_ = false;
};

}  // namespace
}  // namespace msgtrans::quic_detail

namespace msgtrans {
std::unique_ptr<listener> make_listener(const quic_server_config& c) {
  std::string why;
  if (!net::address::parse_bind(c.bind_address, why))
    throw std::invalid_argument("quic_server_config.bind_address: " + why);
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    throw std::invalid_argument("quic_server_config: tls_cert_file and tls_key_file must be given together");
  if (c.handshake_timeout.count() <= 0)
    throw std::invalid_argument("quic_server_config.handshake_timeout must be positive");
  if (c.require_client_cert && c.tls_client_ca_file.empty())
    throw std::invalid_argument("quic_server_config.require_client_cert needs tls_client_ca_file");
  quic_detail::validate(c.connection, "quic_server_config.connection");
  return std::make_unique<quic_detail::quic_listener>(c);
}
}  // namespace msgtrans

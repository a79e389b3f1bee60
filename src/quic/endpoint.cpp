// QUIC listener: the UDP endpoint and its routing. All connections of an endpoint live on
// the endpoint's loop (see quic.hpp for why).
#include "quic/endpoint.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>

#include <ngtcp2/ngtcp2_crypto.h>

namespace msgtrans::quic_detail {
namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {
constexpr std::size_t max_resets_per_second = 256;
constexpr auto retry_token_lifetime = std::chrono::seconds(10);
}  // namespace

endpoint::endpoint(asio::io_context& loop, const quic_server_config& cfg, const transport_context& ctx)
    : loop_(loop), cfg_(cfg), sock_(loop) {
  conn_cfg_.opts = cfg.connection;
  conn_cfg_.handshake_timeout = cfg.handshake_timeout;
  conn_cfg_.limits = ctx.limits;
  random_bytes(conn_cfg_.secret.data(), conn_cfg_.secret.size());
}

std::error_code endpoint::start(listener::accept_handler on_accept, std::string& detail) {
  std::string host, port;
  if (!split_host_port(cfg_.bind_address, host, port)) {
    detail = "quic_server_config.bind_address: expected host:port, got \"" + cfg_.bind_address + "\"";
    return errc::address_error;
  }
  boost::system::error_code ec;
  udp::resolver resolver(loop_);
  auto results = resolver.resolve(host, port, udp::resolver::passive, ec);
  if (ec || results.empty()) {
    detail = "cannot resolve " + cfg_.bind_address + ": " + ec.message();
    return errc::address_error;
  }
  if (auto e = cred_.init_server(cfg_.cert_file, cfg_.key_file, cfg_.certificate_names, cfg_.write_self_signed_cert_to,
                                 detail))
    return e;
  if (auto e = sock_.open(results.begin()->endpoint(), cfg_.connection.udp_buffer_size, cfg_.connection.udp_gso)) {
    detail = "cannot bind udp " + cfg_.bind_address + ": " + e.message();
    return errc::bind_failed;
  }
  auto le = sock_.local_endpoint();
  std::memcpy(&local_, le.data(), le.size());
  locallen_ = static_cast<socklen_t>(le.size());
  local_address_ = to_string(reinterpret_cast<const sockaddr*>(&local_));
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
  return {};
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

void endpoint::maybe_close_socket() {
  if (!accepting_ && conns_.empty()) sock_.close();
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
  if (rv != 0) return;
  if (auto it = by_cid_.find(cid_key(vc.dcid, vc.dcidlen)); it != by_cid_.end()) {
    it->second->on_datagram(reinterpret_cast<const sockaddr*>(&local_), locallen_, from, fromlen, data, len);
    return;
  }
  if (!(data[0] & 0x80)) {  // short header for no connection we know
    send_stateless_reset(vc, from, fromlen, len);
    return;
  }
  if (accepting_) accept_initial(from, fromlen, data, len);
}

void endpoint::accept_initial(const sockaddr* from, socklen_t fromlen, std::uint8_t* data, std::size_t len) {
  ngtcp2_pkt_hd hd;
  // Rejects anything but a well-formed client Initial in a datagram of at least 1200 bytes
  // (truncated Initials end here).
  if (ngtcp2_accept(&hd, data, len) != 0 || hd.type != NGTCP2_PKT_INITIAL) return;
  if (conns_.size() >= cfg_.max_connections) {
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
    if (cfg_.retry || handshaking_.size() >= cfg_.max_pending_handshakes) {
      send_retry(hd, from, fromlen);
      return;
    }
  }
  quic_conn::server_args args{&hd, podcid, {}};
  args.scid.datalen = server_cid_len;
  random_bytes(args.scid.data, server_cid_len);
  std::string detail;
  auto c = quic_conn::make_server(loop_, shared_from_this(), cred_, conn_cfg_, reinterpret_cast<sockaddr*>(&local_),
                                  locallen_, from, fromlen, args, detail);
  if (!c) return;
  conns_.insert(c.get());
  handshaking_.insert(c.get());
  by_cid_[cid_key(hd.dcid)] = c.get();
  by_cid_[cid_key(args.scid)] = c.get();
  c->on_datagram(reinterpret_cast<const sockaddr*>(&local_), locallen_, from, fromlen, data, len);
  c->flush();  // arms its timer, which keeps it alive until it completes or times out
}

// ---------------------------------------------------------------------------------------
// conn_host

void endpoint::send_packets(const ngtcp2_addr& remote, const std::uint8_t* buf, const std::size_t* lens,
                            std::size_t n) {
  sock_.send(remote.addr, remote.addrlen, buf, lens, n);
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
  handshaking_.erase(c.get());
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
  conns_.erase(&c);
  handshaking_.erase(&c);
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

  std::error_code start(asio::io_context& accept_loop, loop_picker, accept_handler on_accept,
                        const transport_context& ctx, std::string& detail) override {
    // The endpoint and all its connections live on the accept loop: one UDP socket
    // carries them all, and the runtime takes the loop a connection is delivered on.
    ep_ = std::make_shared<endpoint>(accept_loop, cfg_, ctx);
    auto ec = ep_->start(std::move(on_accept), detail);
    if (ec) ep_.reset();
    return ec;
  }
  void stop() override {
    if (ep_) ep_->stop();
  }
  std::string local_address() const override { return ep_ ? ep_->local_address() : cfg_.bind_address; }
  std::string protocol() const override { return "quic"; }

 private:
  quic_server_config cfg_;
  std::shared_ptr<endpoint> ep_;
};

}  // namespace
}  // namespace msgtrans::quic_detail

namespace msgtrans {
std::unique_ptr<listener> make_listener(const quic_server_config& c) {
  return std::make_unique<quic_detail::quic_listener>(c);
}
}  // namespace msgtrans

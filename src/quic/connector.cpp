// QUIC client: each connection owns a UDP socket on the loop it was connected on.
#include "quic/config.hpp"
#include "net/address.hpp"
#include "quic/quic_conn.hpp"
#include "quic/udp_socket.hpp"

#include <msgtrans/error.hpp>
#include <msgtrans/quic.hpp>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <stdexcept>
#include <utility>

namespace msgtrans::quic_detail {
namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {

error_info to_connect_error(const close_info& why, const std::string& peer) {
  std::string detail = "QUIC connect to " + peer + ": " + (why.detail.empty() ? to_string(why.reason) : why.detail);
  switch (why.reason) {
    case close_reason::handshake_timeout:
    case close_reason::idle_timeout:
      return {errc::timeout, std::move(detail)};
    default:
      break;
  }
  if (why.error == errc::tls_error) return {errc::tls_error, std::move(detail)};
  return {errc::connection_closed, std::move(detail)};
}

// One client connection's socket, and the pending connect until it is answered.
class client_host final : public conn_host, public std::enable_shared_from_this<client_host> {
 public:
  client_host(asio::io_context& loop, std::shared_ptr<tls_credentials> cred, connector::connect_handler done)
      : loop_(loop), cred_(std::move(cred)), sock_(loop), deadline_(loop), done_(std::move(done)) {}

  void connect(const udp::endpoint& remote, const quic_client_config& cfg, const transport_context& ctx,
               std::chrono::milliseconds timeout) {
    const udp::endpoint any(remote.protocol() == udp::v4() ? udp::endpoint(asio::ip::address_v4::any(), 0)
                                                           : udp::endpoint(asio::ip::address_v6::any(), 0));
    peer_ = net::format_endpoint(remote);
    if (auto ec = sock_.open(any, cfg.connection.udp_buffer_size, cfg.connection.udp_gso))
      return finish({ec, "opening a UDP socket for " + peer_ + ": " + ec.message()});
    auto le = sock_.local_endpoint();
    std::memcpy(&local_, le.data(), le.size());
    locallen_ = static_cast<socklen_t>(le.size());
    conn_config cc;
    cc.opts = cfg.connection;
    cc.handshake_timeout = timeout;
    cc.limits = ctx.limits;
    cc.close_timeout = ctx.close_timeout;
    random_bytes(cc.secret.data(), cc.secret.size());
    quic_conn::client_args args;
    args.server_name = cfg.tls_server_name;
    args.verify = !cfg.tls_insecure_skip_verify;
    args.alpn = cfg.alpn;
    std::string detail;
    auto c = quic_conn::make_client(loop_, shared_from_this(), *cred_, cc, reinterpret_cast<sockaddr*>(&local_),
                                    locallen_, remote.data(), static_cast<socklen_t>(remote.size()), args, detail);
    if (!c) return finish({errc::tls_error, "QUIC connect to " + peer_ + ": " + detail});
    conn_ = c.get();
    sock_.set_on_writable([this] {
      if (auto c = std::exchange(writable_waiter_, {}).lock()) c->flush();
    });
    sock_.start_receive(
        [this](const sockaddr* from, socklen_t fromlen, std::uint8_t* data, std::size_t len) {
          if (conn_) conn_->on_datagram(reinterpret_cast<sockaddr*>(&local_), locallen_, from, fromlen, data, len);
        },
        nullptr, shared_from_this());
    deadline_.expires_after(timeout);
    deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || !self->done_ || !self->conn_) return;
      self->conn_->abort({close_reason::handshake_timeout, errc::timeout, "timed out", 0});
    });
    c->flush();  // the client Initial; from here its timer keeps the connection alive
  }

  void send_packets(const ngtcp2_addr& remote, const std::uint8_t* buf, const std::size_t* lens,
                    std::size_t n) override {
    sock_.send(remote.addr, remote.addrlen, buf, lens, n);
  }
  bool send_blocked() const override { return sock_.blocked(); }
  void wait_writable(const std::shared_ptr<quic_conn>& c) override { writable_waiter_ = c; }
  void add_cid(quic_conn&, const ngtcp2_cid&) override {}
  void remove_cid(const ngtcp2_cid&) override {}
  void on_established(const std::shared_ptr<quic_conn>& c) override {
    deadline_.cancel();
    if (!done_) return;
    asio::post(loop_, [d = std::move(done_), c]() mutable { d({}, std::make_unique<quic_connection>(c)); });
    done_ = nullptr;
  }
  void on_failed(quic_conn&, const close_info& why) override { finish(to_connect_error(why, peer_)); }
  void on_terminated(quic_conn&) override {
    conn_ = nullptr;
    deadline_.cancel();
    sock_.close();
  }

  void finish(error_info ec) {
    deadline_.cancel();
    if (!done_) return;
    asio::post(loop_, [d = std::move(done_), ec = std::move(ec)]() mutable { d(std::move(ec), nullptr); });
    done_ = nullptr;
  }

 private:
  asio::io_context& loop_;
  std::shared_ptr<tls_credentials> cred_;
  udp_socket sock_;
  asio::steady_timer deadline_;
  connector::connect_handler done_;
  quic_conn* conn_ = nullptr;
  std::weak_ptr<quic_conn> writable_waiter_;
  sockaddr_storage local_{};
  socklen_t locallen_ = 0;
  std::string peer_;
};

class quic_connector final : public connector {
 public:
  explicit quic_connector(const quic_client_config& c) : cfg_(c) {
    std::string why;
    auto addr = net::address::parse_connect(cfg_.address, why);  // checked by make_connector
    if (!addr) return;
    host_ = addr->host;
    port_ = std::to_string(addr->port);
    if (cfg_.tls_server_name.empty()) cfg_.tls_server_name = host_;
    cred_ = std::make_shared<tls_credentials>();
    if (cred_->init_client(cfg_.tls_insecure_skip_verify ? std::string() : cfg_.tls_ca_file, cfg_.tls_cert_file,
                           cfg_.tls_key_file, cred_error_))
      cred_.reset();
  }

  void connect(asio::io_context& loop, std::chrono::milliseconds timeout, const transport_context& ctx,
               connect_handler done) override {
    auto fail = [&](error_info ec) {
      asio::post(loop, [done = std::move(done), ec = std::move(ec)] { done(ec, nullptr); });
    };
    if (port_.empty()) return fail({errc::address_error, "quic_client_config.address: " + cfg_.address});
    if (!cred_) return fail({errc::tls_error, cred_error_});
    if (timeout.count() <= 0) timeout = cfg_.connect_timeout;
    auto resolver = std::make_shared<udp::resolver>(loop);
    resolver->async_resolve(
        host_, port_,
        [resolver, &loop, name = host_, cfg = cfg_, cred = cred_, ctx, timeout, done = std::move(done)](
            boost::system::error_code ec, udp::resolver::results_type results) mutable {
          if (ec || results.empty())
            return done({errc::address_error, "cannot resolve '" + name + "': " +
                                                  (ec ? ec.message() : std::string("no address"))},
                        nullptr);
          auto host = std::make_shared<client_host>(loop, cred, std::move(done));
          host->connect(results.begin()->endpoint(), cfg, ctx, timeout);
        });
  }

  std::string target() const override { return "quic://" + cfg_.address; }

 private:
  quic_client_config cfg_;
  std::string host_, port_;
  std::shared_ptr<tls_credentials> cred_;
  std::string cred_error_;
};

}  // namespace
}  // namespace msgtrans::quic_detail

namespace msgtrans {
std::unique_ptr<connector> make_connector(const quic_client_config& c) {
  std::string why;
  if (!net::address::parse_connect(c.address, why)) throw std::invalid_argument("quic_client_config.address: " + why);
  if (c.connect_timeout.count() <= 0) throw std::invalid_argument("quic_client_config.connect_timeout must be positive");
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    throw std::invalid_argument("quic_client_config: tls_cert_file and tls_key_file must be given together");
  for (const auto& a : c.alpn)
    if (a.empty() || a.size() > 255)
      throw std::invalid_argument("quic_client_config.alpn: each protocol name must be 1..255 bytes");
  quic_detail::validate(c.connection, "quic_client_config.connection");
  return std::make_unique<quic_detail::quic_connector>(c);
}
}  // namespace msgtrans

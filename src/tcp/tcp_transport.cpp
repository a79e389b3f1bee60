// TCP listener and connector, plain or TLS (tls://). The TLS handshakes and the
// connection over a TLS stream are tls_transport.cpp's (the file with asio::ssl).
#include "net/close_on_exec.hpp"
#include "net/address.hpp"
#include "net/stream_listener.hpp"
#include "net/tls_context.hpp"
#include "tcp/tcp_connection.hpp"
#include "tcp/tls_stream.hpp"

#include <msgtrans/error.hpp>
#include <msgtrans/tcp.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <netinet/tcp.h>

#include <stdexcept>

namespace msgtrans {

namespace asio = boost::asio;
using boost::system::error_code;
using asio::ip::tcp;

namespace {

void apply_socket_options(tcp::socket& s, bool nodelay, std::chrono::milliseconds keep_alive) {
  error_code ignored;
  s.set_option(tcp::no_delay(nodelay), ignored);
  s.set_option(asio::socket_base::keep_alive(keep_alive.count() > 0), ignored);
  if (keep_alive.count() > 0) {
    // TCP_KEEPIDLE counts whole seconds: round up, at least 1.
    int idle = static_cast<int>(std::max<std::int64_t>(1, (keep_alive.count() + 999) / 1000));
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  }
}

std::string validated_address(const std::string& text, bool bind, const char* field) {
  std::string why;
  auto a = bind ? net::address::parse_bind(text, why) : net::address::parse_connect(text, why);
  if (!a) throw std::invalid_argument(std::string(field) + ": " + why);
  return text;
}

bool tls_configured(const tcp_server_config& c) { return !c.tls_cert_file.empty(); }

class tcp_listener final : public listener {
 public:
  explicit tcp_listener(tcp_server_config c) : cfg_(std::move(c)) {}
  ~tcp_listener() override { stop(); }

  error_info start(asio::io_context& accept_loop, loop_picker pick, accept_handler on_accept,
                   const transport_context& ctx) override {
    net::stream_listener_options o;
    o.protocol = protocol();
    o.bind_address = cfg_.bind_address;
    o.reuse_address = cfg_.reuse_address;
    o.reuse_port = cfg_.reuse_port;
    o.backlog = cfg_.backlog;
    ctx_ = ctx;
    if (tls_configured(cfg_)) return start_tls(accept_loop, std::move(pick), std::move(on_accept), ctx, o);
    return socket_.start(accept_loop, std::move(pick), ctx, o,
                         [this, on_accept = std::move(on_accept)](tcp::socket sock, asio::io_context& loop) {
                           apply_socket_options(sock, cfg_.nodelay, cfg_.keep_alive_interval);
                           asio::post(loop, [this, &on_accept, sock = std::move(sock)]() mutable {
                             on_accept(detail::make_tcp_connection(std::move(sock), ctx_));
                           });
                         });
  }

  void stop() override {
    if (tls_) tls_->stopped.store(true);
    socket_.stop();
  }
  std::string local_address() const override { return socket_.local_address(); }
  std::string protocol() const override { return tls_configured(cfg_) ? "tls" : "tcp"; }
  // New handshakes use the files as they are now; open connections keep theirs.
  error_info reload_tls() override {
    if (!tls_) return {};
    net::tls_context_ptr tls;
    if (auto e = net::make_server_tls_context(tls_options(), tls)) return e;
    tls_->tls.set(std::move(tls));
    return {};
  }

 private:
  net::tls_server_options tls_options() const {
    net::tls_server_options to;
    to.cert_file = cfg_.tls_cert_file;
    to.key_file = cfg_.tls_key_file;
    to.client_ca_file = cfg_.tls_client_ca_file;
    to.require_client_cert = cfg_.require_client_cert;
    return to;
  }

  // Each accepted socket's TLS handshake runs on its own loop; the shared state outlives
  // the listener while handshakes are under way.
  error_info start_tls(asio::io_context& accept_loop, loop_picker pick, accept_handler on_accept,
                       const transport_context& ctx, const net::stream_listener_options& o) {
    auto sh = std::make_shared<detail::tls_server_shared>();
    net::tls_context_ptr tls;
    if (auto e = net::make_server_tls_context(tls_options(), tls)) return e;
    sh->tls.set(std::move(tls));
    sh->on_accept = std::move(on_accept);
    sh->ctx = ctx;
    sh->handshake_timeout = cfg_.handshake_timeout;
    auto e = socket_.start(accept_loop, std::move(pick), ctx, o, [this, sh](tcp::socket sock, asio::io_context& loop) {
      apply_socket_options(sock, cfg_.nodelay, cfg_.keep_alive_interval);
      asio::post(loop, [sh, sock = std::move(sock)]() mutable { detail::tls_accept(sh, std::move(sock)); });
    });
    if (!e) tls_ = std::move(sh);
    return e;
  }

  tcp_server_config cfg_;
  transport_context ctx_;
  std::shared_ptr<detail::tls_server_shared> tls_;
  net::stream_listener socket_;
};

class tcp_connector final : public connector {
 public:
  explicit tcp_connector(tcp_client_config c) : cfg_(std::move(c)) {
    if (!cfg_.tls) return;
    std::string why;
    auto addr = net::address::parse_connect(cfg_.address, why);  // checked by make_connector
    net::tls_client_options to;
    to.ca_file = cfg_.tls_ca_file;
    to.insecure = cfg_.tls_insecure_skip_verify;
    to.cert_file = cfg_.tls_cert_file;
    to.key_file = cfg_.tls_key_file;
    tls_.tls = net::make_client_tls_context(to, "tcp_client_config");
    tls_.server_name = cfg_.tls_server_name.empty() ? addr->host : cfg_.tls_server_name;
    tls_.verify = !cfg_.tls_insecure_skip_verify;
  }

  void connect(asio::io_context& loop, std::chrono::milliseconds timeout, const transport_context& ctx,
               connect_handler done) override {
    std::string why;
    auto addr = net::address::parse_connect(cfg_.address, why);  // checked by make_connector
    auto op = std::make_shared<attempt>(loop, std::move(done), ctx, cfg_, tls_);
    op->deadline = std::chrono::steady_clock::now() + timeout;
    op->timer.expires_after(timeout);
    op->timer.async_wait([op, timeout](error_code ec) {
      if (ec) return;
      op->timed_out = true;
      op->timeout = timeout;
      error_code ignored;
      op->resolver.cancel();
      op->sock.close(ignored);
    });
    op->resolver.async_resolve(addr->host, std::to_string(addr->port), [op, host = addr->host](error_code ec, tcp::resolver::results_type r) {
      if (ec)
        return op->timed_out ? op->finish_timeout("resolving '" + host + "'")
                             : op->finish({errc::address_error, "cannot resolve '" + host + "': " + ec.message()});
      auto tried = [op](const error_code&, const tcp::endpoint& ep) {
        op->last = net::format_endpoint(ep);
        return true;
      };
      asio::async_connect(op->sock, r, tried, [op](error_code ec, const tcp::endpoint&) {
        if (ec && op->timed_out) return op->finish_timeout("connect to " + op->last);
        if (ec) return op->finish({ec, "connect to " + op->last + ": " + ec.message()});
        net::close_on_exec(op->sock.native_handle());
        op->finish({});
      });
    });
  }

  std::string target() const override { return (cfg_.tls ? "tls://" : "tcp://") + cfg_.address; }

 private:
  struct attempt {
    attempt(asio::io_context& loop, connect_handler d, const transport_context& c, const tcp_client_config& cfg,
            const detail::tls_client_target& tls)
        : resolver(loop), sock(loop), timer(loop), done(std::move(d)), ctx(c), cfg(cfg), tls(tls) {}
    void finish_timeout(const std::string& what) {
      finish({errc::timeout, what + " timed out after " + std::to_string(timeout.count()) + " ms"});
    }
    void finish(error_info ec) {
      timer.cancel();
      if (!done) return;
      auto d = std::move(done);
      done = nullptr;
      if (ec) return d(std::move(ec), nullptr);
      apply_socket_options(sock, cfg.nodelay, cfg.keep_alive_interval);
      if (!cfg.tls) return d({}, detail::make_tcp_connection(std::move(sock), ctx));
      // The handshake gets what is left of the attempt's time, at most handshake_timeout.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto bound = std::max(std::chrono::milliseconds(1), std::min(left, cfg.handshake_timeout));
      detail::tls_connect(tls, std::move(sock), last, ctx, bound, std::move(d));
    }
    tcp::resolver resolver;
    tcp::socket sock;
    asio::steady_timer timer;
    connect_handler done;
    transport_context ctx;
    tcp_client_config cfg;
    detail::tls_client_target tls;
    std::string last;  // the endpoint being tried
    std::chrono::steady_clock::time_point deadline;
    std::chrono::milliseconds timeout{0};
    bool timed_out = false;
  };
  tcp_client_config cfg_;
  detail::tls_client_target tls_;  // tls only
};

}  // namespace

std::unique_ptr<listener> make_listener(const tcp_server_config& c) {
  validated_address(c.bind_address, true, "tcp_server_config.bind_address");
  if (c.backlog < 1) throw std::invalid_argument("tcp_server_config.backlog must be at least 1");
  if (c.keep_alive_interval.count() < 0)
    throw std::invalid_argument("tcp_server_config.keep_alive_interval must not be negative (0 = off)");
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    throw std::invalid_argument("tcp_server_config.tls_cert_file / tls_key_file: set both for tls, or neither");
  if (c.handshake_timeout.count() <= 0) throw std::invalid_argument("tcp_server_config.handshake_timeout: must be positive");
  if (!c.tls_client_ca_file.empty() && c.tls_cert_file.empty())
    throw std::invalid_argument("tcp_server_config.tls_client_ca_file: needs tls_cert_file / tls_key_file (a TLS listener)");
  if (c.require_client_cert && c.tls_client_ca_file.empty())
    throw std::invalid_argument("tcp_server_config.require_client_cert: needs tls_client_ca_file (the CAs that vouch for clients)");
  return std::make_unique<tcp_listener>(c);
}

std::unique_ptr<connector> make_connector(const tcp_client_config& c) {
  validated_address(c.address, false, "tcp_client_config.address");
  if (c.keep_alive_interval.count() < 0)
    throw std::invalid_argument("tcp_client_config.keep_alive_interval must not be negative (0 = off)");
  if (c.handshake_timeout.count() <= 0) throw std::invalid_argument("tcp_client_config.handshake_timeout: must be positive");
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    throw std::invalid_argument("tcp_client_config.tls_cert_file / tls_key_file: set both for a client certificate, or neither");
  if (!c.tls_cert_file.empty() && !c.tls)
    throw std::invalid_argument("tcp_client_config.tls_cert_file: a client certificate needs tls = true");
  return std::make_unique<tcp_connector>(c);
}

}  // namespace msgtrans

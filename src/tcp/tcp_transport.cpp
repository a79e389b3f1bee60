// TCP listener and connector.
#include "net/close_on_exec.hpp"
#include "net/address.hpp"
#include "net/stream_listener.hpp"
#include "tcp/tcp_connection.hpp"

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

class tcp_listener final : public listener {
 public:
  explicit tcp_listener(tcp_server_config c) : cfg_(std::move(c)) {}

  error_info start(asio::io_context& accept_loop, loop_picker pick, accept_handler on_accept,
                   const transport_context& ctx) override {
    net::stream_listener_options o;
    o.protocol = "tcp";
    o.bind_address = cfg_.bind_address;
    o.reuse_address = cfg_.reuse_address;
    o.reuse_port = cfg_.reuse_port;
    o.backlog = cfg_.backlog;
    ctx_ = ctx;
    return socket_.start(accept_loop, std::move(pick), ctx, o,
                         [this, on_accept = std::move(on_accept)](tcp::socket sock, asio::io_context& loop) {
                           apply_socket_options(sock, cfg_.nodelay, cfg_.keep_alive_interval);
                           asio::post(loop, [this, &on_accept, sock = std::move(sock)]() mutable {
                             on_accept(std::make_unique<detail::tcp_connection>(std::move(sock), ctx_));
                           });
                         });
  }

  void stop() override { socket_.stop(); }
  std::string local_address() const override { return socket_.local_address(); }
  std::string protocol() const override { return "tcp"; }

 private:
  tcp_server_config cfg_;
  transport_context ctx_;
  net::stream_listener socket_;
};

class tcp_connector final : public connector {
 public:
  explicit tcp_connector(tcp_client_config c) : cfg_(std::move(c)) {}

  void connect(asio::io_context& loop, std::chrono::milliseconds timeout, const transport_context& ctx,
               connect_handler done) override {
    std::string why;
    auto addr = net::address::parse_connect(cfg_.address, why);  // checked by make_connector
    auto op = std::make_shared<attempt>(loop, std::move(done), ctx, cfg_);
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

  std::string target() const override { return "tcp://" + cfg_.address; }

 private:
  struct attempt {
    attempt(asio::io_context& loop, connect_handler d, const transport_context& c, const tcp_client_config& cfg)
        : resolver(loop), sock(loop), timer(loop), done(std::move(d)), ctx(c), cfg(cfg) {}
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
      d({}, std::make_unique<detail::tcp_connection>(std::move(sock), ctx));
    }
    tcp::resolver resolver;
    tcp::socket sock;
    asio::steady_timer timer;
    connect_handler done;
    transport_context ctx;
    tcp_client_config cfg;
    std::string last;  // the endpoint being tried
    std::chrono::milliseconds timeout{0};
    bool timed_out = false;
  };
  tcp_client_config cfg_;
};

}  // namespace

std::unique_ptr<listener> make_listener(const tcp_server_config& c) {
  validated_address(c.bind_address, true, "tcp_server_config.bind_address");
  if (c.backlog < 1) throw std::invalid_argument("tcp_server_config.backlog must be at least 1");
  if (c.keep_alive_interval.count() < 0)
    throw std::invalid_argument("tcp_server_config.keep_alive_interval must not be negative (0 = off)");
  return std::make_unique<tcp_listener>(c);
}

std::unique_ptr<connector> make_connector(const tcp_client_config& c) {
  validated_address(c.address, false, "tcp_client_config.address");
  if (c.keep_alive_interval.count() < 0)
    throw std::invalid_argument("tcp_client_config.keep_alive_interval must not be negative (0 = off)");
  return std::make_unique<tcp_connector>(c);
}

}  // namespace msgtrans

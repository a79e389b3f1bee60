// TCP listener and connector.
#include "core/address.hpp"
#include "tcp/tcp_connection.hpp"

#include <msgtrans/error.hpp>
#include <msgtrans/tcp.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <netinet/tcp.h>

namespace msgtrans {

namespace asio = boost::asio;
using boost::system::error_code;
using asio::ip::tcp;

namespace {

using reuse_port_option = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

void apply_socket_options(tcp::socket& s, bool nodelay, const std::optional<std::chrono::seconds>& keepalive) {
  error_code ignored;
  s.set_option(tcp::no_delay(nodelay), ignored);
  s.set_option(asio::socket_base::keep_alive(keepalive.has_value()), ignored);
  if (keepalive) {
    int idle = static_cast<int>(std::max<std::int64_t>(1, keepalive->count()));
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  }
}

class tcp_listener final : public listener {
 public:
  explicit tcp_listener(tcp_server_config c) : cfg_(std::move(c)) {}

  std::error_code start(asio::io_context& accept_loop, loop_picker pick, accept_handler on_accept,
                        const transport_context& ctx, std::string& detail) override {
    detail::host_port hp;
    if (!detail::split_host_port(cfg_.bind_address, hp)) {
      detail = "tcp: bad bind address '" + cfg_.bind_address + "' (expected host:port)";
      return errc::address_error;
    }
    error_code ec;
    tcp::resolver resolver(accept_loop);
    auto results = resolver.resolve(hp.host, std::to_string(hp.port), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      detail = "tcp: cannot resolve '" + hp.host + "': " + ec.message();
      return errc::address_error;
    }
    tcp::endpoint ep = results.begin()->endpoint();
    acceptor_.emplace(accept_loop);
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(cfg_.reuse_address), ec);
    if (!ec && cfg_.reuse_port) acceptor_->set_option(reuse_port_option(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(cfg_.backlog, ec);
    if (ec) {
      detail = "tcp: cannot bind " + cfg_.bind_address + ": " + ec.message();
      acceptor_.reset();
      return errc::bind_failed;
    }
    local_ = detail::to_string(acceptor_->local_endpoint(ec));
    pick_ = std::move(pick);
    on_accept_ = std::move(on_accept);
    ctx_ = ctx;
    retry_.emplace(accept_loop);
    accept_next();
    return {};
  }

  void stop() override {
    stopped_ = true;
    if (!acceptor_) return;
    auto& ex = acceptor_->get_executor();
    (void)ex;
    error_code ignored;
    acceptor_->close(ignored);
    if (retry_) retry_->cancel();
  }

  std::string local_address() const override { return local_; }
  std::string protocol() const override { return "tcp"; }

 private:
  void accept_next() {
    if (stopped_) return;
    asio::io_context& target = pick_();
    acceptor_->async_accept(target, [this, &target](error_code ec, tcp::socket sock) {
      if (stopped_ || ec == asio::error::operation_aborted) return;
      if (ec) {
        // Out of descriptors (EMFILE/ENFILE) or similar: back off instead of spinning;
        // service resumes once descriptors free up.
        if (ec == asio::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system)
          ctx_.report(notice{notice_kind::fd_exhausted, "tcp", "", "accept: " + ec.message() + "; retrying every 50 ms", 0});
        retry_->expires_after(std::chrono::milliseconds(50));
        retry_->async_wait([this](error_code e) {
          if (!e) accept_next();
        });
        return;
      }
      apply_socket_options(sock, cfg_.nodelay, cfg_.keepalive);
      asio::post(target, [this, sock = std::move(sock)]() mutable {
        on_accept_(std::make_unique<detail::tcp_connection>(std::move(sock), ctx_));
      });
      accept_next();
    });
  }

  tcp_server_config cfg_;
  std::optional<tcp::acceptor> acceptor_;
  std::optional<asio::steady_timer> retry_;
  loop_picker pick_;
  accept_handler on_accept_;
  transport_context ctx_;
  std::string local_;
  bool stopped_ = false;
};

class tcp_connector final : public connector {
 public:
  explicit tcp_connector(tcp_client_config c) : cfg_(std::move(c)) {}

  void connect(asio::io_context& loop, std::chrono::milliseconds timeout, const transport_context& ctx,
               connect_handler done) override {
    detail::host_port hp;
    if (!detail::split_host_port(cfg_.address, hp)) {
      asio::post(loop, [done = std::move(done)] { done(errc::address_error, nullptr); });
      return;
    }
    auto op = std::make_shared<attempt>(loop, std::move(done), ctx, cfg_);
    op->timer.expires_after(timeout);
    op->timer.async_wait([op](error_code ec) {
      if (ec) return;
      op->timed_out = true;
      error_code ignored;
      op->resolver.cancel();
      op->sock.close(ignored);
    });
    op->resolver.async_resolve(hp.host, std::to_string(hp.port), [op](error_code ec, tcp::resolver::results_type r) {
      if (ec) return op->finish(op->timed_out ? std::error_code(errc::timeout) : std::error_code(errc::address_error));
      asio::async_connect(op->sock, r, [op](error_code ec, const tcp::endpoint&) {
        if (ec) return op->finish(op->timed_out ? std::error_code(errc::timeout) : std::error_code(ec));
        op->finish({});
      });
    });
  }

  std::string target() const override { return "tcp://" + cfg_.address; }

 private:
  struct attempt {
    attempt(asio::io_context& loop, connect_handler d, const transport_context& c, const tcp_client_config& cfg)
        : resolver(loop), sock(loop), timer(loop), done(std::move(d)), ctx(c), cfg(cfg) {}
    void finish(std::error_code ec) {
      timer.cancel();
      if (!done) return;
      auto d = std::move(done);
      done = nullptr;
      if (ec) return d(ec, nullptr);
      apply_socket_options(sock, cfg.nodelay, cfg.keepalive);
      d({}, std::make_unique<detail::tcp_connection>(std::move(sock), ctx));
    }
    tcp::resolver resolver;
    tcp::socket sock;
    asio::steady_timer timer;
    connect_handler done;
    transport_context ctx;
    tcp_client_config cfg;
    bool timed_out = false;
  };
  tcp_client_config cfg_;
};

}  // namespace

std::unique_ptr<listener> make_listener(const tcp_server_config& c) { return std::make_unique<tcp_listener>(c); }
std::unique_ptr<connector> make_connector(const tcp_client_config& c) { return std::make_unique<tcp_connector>(c); }

}  // namespace msgtrans

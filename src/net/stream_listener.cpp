#include "net/stream_listener.hpp"

#include "net/address.hpp"
#include "net/close_on_exec.hpp"
#include "net/resolve.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <sys/socket.h>

namespace msgtrans::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

struct stream_listener::state : std::enable_shared_from_this<state> {
  state(asio::io_context& loop) : accept_loop(loop), acceptor(loop), retry(loop) {}

  asio::io_context& accept_loop;
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  listener::loop_picker pick_loop;
  socket_handler on_socket;
  transport_context ctx;
  std::string protocol;
  std::atomic<bool> stopped{false};

  void accept_next() {
    if (stopped.load(std::memory_order_acquire)) return;
    asio::io_context& target = pick_loop();
    acceptor.async_accept(target, [self = shared_from_this(), &target](error_code ec, tcp::socket sock) {
      self->on_accepted(ec, std::move(sock), target);
    });
  }

  void on_accepted(error_code ec, tcp::socket sock, asio::io_context& target) {
    if (stopped.load(std::memory_order_acquire) || ec == asio::error::operation_aborted) return;
    if (!ec) close_on_exec(sock.native_handle());
    if (ec) {
      // Out of descriptors (EMFILE/ENFILE) or similar: back off instead of spinning;
      // accepting resumes once descriptors free up.
      if (ec == asio::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system)
        ctx.report(notice{notice_kind::fd_exhausted, protocol, "",
                          "accept: " + ec.message() + "; retrying every " +
                              std::to_string(accept_backoff.count()) + " ms",
                          0});
      retry.expires_after(accept_backoff);
      retry.async_wait([self = shared_from_this()](error_code e) {
        if (!e) self->accept_next();
      });
      return;
    }
    if (ctx.admission) {
      // max_handshakes_per_second_per_ip, before any TLS or WebSocket work: a refused
      // socket is closed here, at once.
      error_code pe;
      const auto peer = sock.remote_endpoint(pe);
      if (!pe && !ctx.admit(peer.data(), protocol)) {
        sock.close(pe);
        return accept_next();
      }
    }
    on_socket(std::move(sock), target);
    accept_next();
  }

  void close() {
    error_code ignored;
    acceptor.close(ignored);
    retry.cancel();
  }
};

error_info stream_listener::start(asio::io_context& accept_loop, listener::loop_picker pick_loop,
                                  const transport_context& ctx, const stream_listener_options& o,
                                  socket_handler on_socket) {
  const std::string& name = o.protocol;
  tcp::endpoint ep;
  if (auto e = resolve_bind<tcp>(accept_loop, o.bind_address, name, ep)) return e;
  error_code ec;

  auto st = std::make_shared<state>(accept_loop);
  auto& acc = st->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) close_on_exec(acc.native_handle());
  if (!ec) acc.set_option(asio::socket_base::reuse_address(o.reuse_address), ec);
  if (!ec && o.reuse_port) acc.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(o.backlog, ec);
  if (!ec) local_ = format_endpoint(acc.local_endpoint(ec));
  if (ec) {
    local_.clear();
    return {errc::bind_failed, name + ": cannot bind " + o.bind_address + ": " + ec.message()};
  }
  st->pick_loop = std::move(pick_loop);
  st->on_socket = std::move(on_socket);
  st->ctx = ctx;
  st->protocol = name;
  st_ = st;
  // The first accept starts from the accept loop too, so pick_loop only runs there.
  asio::post(accept_loop, [st] { st->accept_next(); });
  return {};
}

void stream_listener::stop() {
  if (!st_ || st_->stopped.exchange(true)) return;
  auto st = st_;
  if (st->accept_loop.get_executor().running_in_this_thread())
    st->close();
  else
    asio::post(st->accept_loop, [st] { st->close(); });
}

}  // namespace msgtrans::net

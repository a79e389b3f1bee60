#include "metrics_http.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <thread>

namespace msgtrans::cli {

namespace {

void series(std::string& out, const char* name, const char* type, const char* help, std::uint64_t v) {
  out += std::string("# HELP msgtrans_") + name + " " + help + "\n# TYPE msgtrans_" + name + " " + type +
         "\nmsgtrans_" + name + " " + std::to_string(v) + "\n";
}

// One line per state the bus can be in, and "none" for a server without a cluster.
void cluster_state(std::string& out, const std::string& now) {
  out += "# HELP msgtrans_cluster_state 1 for the cluster bus's current state (none: no cluster).\n"
         "# TYPE msgtrans_cluster_state gauge\n";
  for (const char* st : {"none", "connecting", "connected", "reconnecting", "closed"})
    out += std::string("msgtrans_cluster_state{state=\"") + st + "\"} " + (now == st ? "1" : "0") + "\n";
}

}  // namespace

std::string serve_metrics_text(const server_stats& s) {
  std::string out = to_prometheus(s);
  if (out.find("\nmsgtrans_rooms ") != std::string::npos) return out;  // the library exports them itself
  series(out, "rooms", "gauge", "Rooms with at least one member on this node.", s.rooms);
  series(out, "room_memberships", "gauge", "(session, room) pairs on this node.", s.room_memberships);
  series(out, "room_deliveries_total", "counter", "Packets handed to room members by publish.", s.room_deliveries);
  series(out, "cluster_messages_in_total", "counter", "Envelopes received from other nodes.", s.cluster_messages_in);
  series(out, "cluster_messages_out_total", "counter", "Envelopes published to the cluster bus.",
         s.cluster_messages_out);
  series(out, "cluster_publish_errors_total", "counter",
         "Cross-node publishes the bus refused (broker away): lost cross-node deliveries.", s.cluster_publish_errors);
  series(out, "cluster_malformed_total", "counter", "Envelopes from the bus that failed to decode.",
         s.cluster_malformed);
  series(out, "cluster_reconnects_total", "counter", "Times the cluster bus came back after a loss.",
         s.cluster_reconnects);
  cluster_state(out, s.cluster_state);
  return out;
}

namespace asio = boost::asio;
using asio::ip::tcp;

// Limits of the endpoint (docs/reliability.md): a stranger who can reach the port must
// not be able to hold descriptors or memory with it.
constexpr std::size_t max_head = 8 * 1024;               // request head; past it: 431
constexpr std::size_t max_clients = 64;                  // connections at once; past it: closed
constexpr auto client_timeout = std::chrono::seconds(5); // for the whole exchange
constexpr auto accept_backoff = std::chrono::milliseconds(100);
constexpr auto warn_interval = std::chrono::seconds(10);

struct metrics_endpoint::impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer retry{io};
  std::function<std::string()> body;
  std::function<void(const std::string&)> warn;
  std::string address, error;
  std::size_t clients = 0;
  std::chrono::steady_clock::time_point last_warn{};
  std::uint64_t unwarned = 0;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) return back_off(ec);
      if (clients >= max_clients) {
        boost::system::error_code ignored;
        s.close(ignored);  // over the cap: closed at once
      } else {
        serve(std::make_shared<tcp::socket>(std::move(s)));
      }
      accept();
    });
  }

  // accept failed (out of descriptors, say): wait instead of spinning, warn once per interval.
  void back_off(boost::system::error_code ec) {
    const bool no_fds = ec == asio::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system;
    const auto now = std::chrono::steady_clock::now();
    if (warn && now - last_warn >= warn_interval) {
      std::string more = unwarned ? " (" + std::to_string(unwarned) + " more since the last)" : "";
      warn(std::string(no_fds ? "fd_exhausted" : "accept_failed") + ": metrics: accept: " + ec.message() +
           "; retrying every 100 ms" + more);
      last_warn = now;
      unwarned = 0;
    } else {
      ++unwarned;
    }
    retry.expires_after(accept_backoff);
    retry.async_wait([this](boost::system::error_code e) {
      if (!e) accept();
    });
  }

  struct client {
    explicit client(tcp::socket s) : sock(std::move(s)), timer(sock.get_executor()), buf(max_head) {}
    tcp::socket sock;
    asio::steady_timer timer;
    asio::streambuf buf;  // bounded request head
    std::string out;
  };

  void serve(std::shared_ptr<tcp::socket> s) {
    auto c = std::make_shared<client>(std::move(*s));
    ++clients;
    c->timer.expires_after(client_timeout);
    c->timer.async_wait([c](boost::system::error_code ec) {
      boost::system::error_code ignored;
      if (!ec) c->sock.close(ignored);  // too slow: whatever is pending completes with an error
    });
    asio::async_read_until(c->sock, c->buf, "\r\n\r\n", [this, c](boost::system::error_code ec, std::size_t) {
      if (ec == asio::error::not_found) return respond(c, "431 Request Header Fields Too Large", "text/plain",
                                                        "request head over 8 KiB\n");
      if (ec) return done(c);
      std::string head(asio::buffers_begin(c->buf.data()), asio::buffers_end(c->buf.data()));
      if (head.rfind("GET /metrics ", 0) == 0 || head.rfind("GET /metrics?", 0) == 0)
        return respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body());
      respond(c, "404 Not Found", "text/plain", "only /metrics is served here\n");
    });
  }

  void respond(const std::shared_ptr<client>& c, const std::string& status, const std::string& type,
               const std::string& text) {
    c->out = "HTTP/1.1 " + status + "\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(text.size()) +
             "\r\nConnection: close\r\n\r\n" + text;
    asio::async_write(c->sock, asio::buffer(c->out), [this, c](boost::system::error_code, std::size_t) { done(c); });
  }

  void done(const std::shared_ptr<client>& c) {
    boost::system::error_code ignored;
    c->timer.cancel();
    c->sock.shutdown(tcp::socket::shutdown_both, ignored);
    c->sock.close(ignored);
    --clients;
  }
};

metrics_endpoint::metrics_endpoint(const std::string& address, std::function<std::string()> body,
                                   std::function<void(const std::string&)> warn)
    : impl_(std::make_unique<impl>()) {
  impl_->body = std::move(body);
  impl_->warn = std::move(warn);
  auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    impl_->error = "metrics address must be HOST:PORT";
    return;
  }
  boost::system::error_code ec;
  auto host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto ip = asio::ip::make_address(host, ec);
  unsigned long port = 0;
  try {
    port = std::stoul(address.substr(colon + 1));
  } catch (...) {
    ec = asio::error::invalid_argument;
  }
  if (!ec && port > 65535) ec = asio::error::invalid_argument;
  tcp::endpoint ep(ip, static_cast<unsigned short>(port));
  if (!ec) impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(64, ec);
  if (ec) {
    impl_->error = "cannot serve metrics on " + address + ": " + ec.message();
    return;
  }
  auto local = impl_->acceptor.local_endpoint();
  impl_->address = (local.address().is_v6() ? "[" + local.address().to_string() + "]" : local.address().to_string()) +
                   ":" + std::to_string(local.port());
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

metrics_endpoint::~metrics_endpoint() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

const std::string& metrics_endpoint::local_address() const { return impl_->address; }
const std::string& metrics_endpoint::error() const { return impl_->error; }

}  // namespace msgtrans::cli

#include "metrics_http.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <thread>

namespace msgtrans::cli {

namespace asio = boost::asio;
using asio::ip::tcp;

struct metrics_endpoint::impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::function<std::string()> body;
  std::string address, error;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) serve(std::make_shared<tcp::socket>(std::move(s)));
      accept();
    });
  }

  void serve(std::shared_ptr<tcp::socket> s) {
    auto buf = std::make_shared<asio::streambuf>(8192);  // bounded request head
    asio::async_read_until(*s, *buf, "\r\n\r\n", [this, s, buf](boost::system::error_code ec, std::size_t) {
      if (ec) return;
      std::string head(asio::buffers_begin(buf->data()), asio::buffers_end(buf->data()));
      std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", text;
      if (head.rfind("GET /metrics ", 0) == 0 || head.rfind("GET /metrics?", 0) == 0) {
        text = body();
      } else {
        status = "404 Not Found";
        type = "text/plain";
        text = "only /metrics is served here\n";
      }
      auto out = std::make_shared<std::string>("HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                                               "\r\nContent-Length: " + std::to_string(text.size()) +
                                               "\r\nConnection: close\r\n\r\n" + text);
      asio::async_write(*s, asio::buffer(*out), [s, out](boost::system::error_code, std::size_t) {
        boost::system::error_code ignored;
        s->shutdown(tcp::socket::shutdown_both, ignored);
      });
    });
  }
};

metrics_endpoint::metrics_endpoint(const std::string& address, std::function<std::string()> body)
    : impl_(std::make_unique<impl>()) {
  impl_->body = std::move(body);
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

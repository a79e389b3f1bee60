// A custom msgtrans transport over Unix domain sockets, written against the public
// headers only (msgtrans/transport.hpp and msgtrans/frame_decoder.hpp). It shows what a
// fourth transport needs: a connection, a listener and a connector.
#pragma once

#include <msgtrans/error.hpp>
#include <msgtrans/frame_decoder.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <memory>
#include <vector>

namespace unix_transport {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

/// Packets back to back on a Unix stream socket, framed by their own headers (as TCP).
class unix_connection final : public msgtrans::connection {
 public:
  unix_connection(stream::socket s, msgtrans::decode_limits limits) : st_(std::make_shared<state>(std::move(s), limits)) {}
  ~unix_connection() override {
    st_->owner = nullptr;
    boost::system::error_code ignored;
    st_->sock.close(ignored);
  }
  void start(msgtrans::connection_owner& o) override {
    st_->owner = &o;
    st_->read();
  }
  void write(std::span<const msgtrans::bytes_view> packets) override {
    std::vector<asio::const_buffer> bufs;
    for (auto p : packets) bufs.emplace_back(p.data(), p.size());
    asio::async_write(st_->sock, bufs, [st = st_](boost::system::error_code ec, std::size_t) {
      if (ec) return st->end({msgtrans::close_reason::peer_closed, ec, ec.message()});
      if (st->owner) st->owner->on_write_done();
    });
  }
  void set_reading(bool on) override {
    st_->reading = on;
    if (on) asio::post(st_->sock.get_executor(), [st = st_] { st->read(); });
  }
  void close(msgtrans::close_info info) override {
    boost::system::error_code ignored;
    st_->sock.shutdown(stream::socket::shutdown_send, ignored);
    st_->end(std::move(info));
  }
  msgtrans::endpoint_info info() const override { return {"unix", st_->sock.local_endpoint().path(), "peer"}; }

 private:
  struct state : std::enable_shared_from_this<state> {
    state(stream::socket s, msgtrans::decode_limits l) : sock(std::move(s)), decoder(msgtrans::stream_framing::tcp, l) {}
    void read() {
      if (!reading || armed || !owner) return;
      armed = true;
      auto space = decoder.prepare(4096);
      sock.async_read_some(asio::buffer(space.data(), space.size()),
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                             self->armed = false;
                             if (ec) return self->end({msgtrans::close_reason::peer_closed, {}, "peer closed"});
                             self->decoder.commit(n);
                             auto err = self->decoder.drain([&](msgtrans::bytes_view p) {
                               if (self->owner) self->owner->on_packet(p);
                               return self->reading && self->owner != nullptr;
                             });
                             if (err) return self->end({msgtrans::close_reason::protocol_error, err, err.message()});
                             self->read();
                           });
    }
    void end(msgtrans::close_info info) {
      if (auto* o = std::exchange(owner, nullptr)) {
        boost::system::error_code ignored;
        sock.close(ignored);
        asio::post(sock.get_executor(), [o, info = std::move(info), keep = shared_from_this()] { o->on_closed(info); });
      }
    }
    stream::socket sock;
    msgtrans::frame_decoder decoder;
    msgtrans::connection_owner* owner = nullptr;
    bool reading = true;
    bool armed = false;
  };
  std::shared_ptr<state> st_;
};

struct unix_server_config {
  std::string path;
};
struct unix_client_config {
  std::string path;
};

class unix_listener final : public msgtrans::listener {
 public:
  explicit unix_listener(unix_server_config c) : cfg_(std::move(c)) {}
  msgtrans::error_info start(asio::io_context& loop, loop_picker pick, accept_handler on_accept,
                             const msgtrans::transport_context& ctx) override {
    ::unlink(cfg_.path.c_str());
    boost::system::error_code ec;
    acceptor_ = std::make_unique<stream::acceptor>(loop);
    acceptor_->open(stream(), ec);
    if (!ec) acceptor_->bind(stream::endpoint(cfg_.path), ec);
    if (!ec) acceptor_->listen(128, ec);
    if (ec) {
      return {msgtrans::errc::bind_failed, "unix: cannot bind " + cfg_.path + ": " + ec.message()};
    }
    pick_ = std::move(pick);
    on_accept_ = std::move(on_accept);
    limits_ = ctx.limits;
    accept();
    return {};
  }
  void stop() override {
    boost::system::error_code ignored;
    if (acceptor_) acceptor_->close(ignored);
  }
  std::string local_address() const override { return cfg_.path; }
  std::string protocol() const override { return "unix"; }

 private:
  void accept() {
    auto& target = pick_();
    acceptor_->async_accept(target, [this, &target](boost::system::error_code ec, stream::socket s) {
      if (ec) return;
      asio::post(target, [this, s = std::move(s)]() mutable {
        on_accept_(std::make_unique<unix_connection>(std::move(s), limits_));
      });
      accept();
    });
  }
  unix_server_config cfg_;
  std::unique_ptr<stream::acceptor> acceptor_;
  loop_picker pick_;
  accept_handler on_accept_;
  msgtrans::decode_limits limits_;
};

class unix_connector final : public msgtrans::connector {
 public:
  explicit unix_connector(unix_client_config c) : cfg_(std::move(c)) {}
  void connect(asio::io_context& loop, std::chrono::milliseconds, const msgtrans::transport_context& ctx,
               connect_handler done) override {
    auto s = std::make_shared<stream::socket>(loop);
    s->async_connect(stream::endpoint(cfg_.path), [s, done = std::move(done), l = ctx.limits, path = cfg_.path](boost::system::error_code ec) {
      if (ec) return done({ec, "connect to " + path + ": " + ec.message()}, nullptr);
      done({}, std::make_unique<unix_connection>(std::move(*s), l));
    });
  }
  std::string target() const override { return "unix://" + cfg_.path; }

 private:
  unix_client_config cfg_;
};

// The builders find these by argument-dependent lookup: .listen(unix_server_config{...}).
inline std::unique_ptr<msgtrans::listener> make_listener(const unix_server_config& c) {
  return std::make_unique<unix_listener>(c);
}
inline std::unique_ptr<msgtrans::connector> make_connector(const unix_client_config& c) {
  return std::make_unique<unix_connector>(c);
}

}  // namespace unix_transport

// The WebSocket transport: listener, connector and the Asio side of the handshakes (see
// include/msgtrans/ws.hpp).
//
// The only translation unit of the library that includes Beast and asio::ssl's stream
// (about 25 s to compile). The TLS contexts come from src/net/tls_context, shared with
// tls://. Beast parses the HTTP upgrade request/response; what to answer and what
// to accept is decided by the pure functions of ws_upgrade.hpp, the frames by ws::session
// (ws_session.hpp), driven by the adapter in ws_conn.hpp.
//
// Reading top to bottom: helpers, the server handshake and listener, the client attempt
// and connector, make_listener / make_connector.
#include "net/close_on_exec.hpp"
#include <msgtrans/error.hpp>
#include <msgtrans/ws.hpp>

#include "net/address.hpp"
#include "net/stream_listener.hpp"
#include "net/tls_context.hpp"
#include "ws/ws_conn.hpp"
#include "ws/ws_frame.hpp"
#include "ws/ws_upgrade.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <openssl/ssl.h>

#include <atomic>
#include <stdexcept>

namespace msgtrans {


namespace {

using namespace ws_detail;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using std::chrono::milliseconds;
using tls_stream = ssl::stream<tcp::socket>;

bytes_view leftover_of(const boost::beast::flat_buffer& b) {
  auto d = b.data();
  return {static_cast<const std::byte*>(d.data()), d.size()};
}

// Beast's parsed fields as the pure functions take them (views into the parser).
template <class Fields>
ws::header_fields fields_of(const Fields& f) {
  ws::header_fields out;
  for (const auto& field : f) out.emplace_back(field.name_string(), field.value());
  return out;
}

// ---------------------------------------------------------------------------------------
// Server: handshake and listener
// ---------------------------------------------------------------------------------------

struct listener_shared {
  ws_server_config cfg;
  std::shared_ptr<const conn_settings> settings;
  net::reloadable_tls_context tls;  // wss; replaced by listener::reload_tls
  listener::accept_handler on_accept;
  std::atomic<bool> stopped{false};
  transport_context ctx;  // for notices
};

template <class Stream>
class server_handshake : public std::enable_shared_from_this<server_handshake<Stream>> {
 public:
  server_handshake(Stream stream, std::shared_ptr<listener_shared> sh)
      : stream_(std::move(stream)), sh_(std::move(sh)), timer_(lowest(stream_).get_executor()) {}

  void run() {
    timer_.expires_after(sh_->cfg.handshake_timeout);
    timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (ec || self->done_) return;
      self->report(notice_kind::handshake_timeout,
                   "no WebSocket upgrade within " + std::to_string(self->sh_->cfg.handshake_timeout.count()) + " ms");
      self->abort();
    });
    if constexpr (std::is_same_v<Stream, tls_stream>) {
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](boost::system::error_code ec) {
        if (ec) return self->abort();
        if (auto c = net::verified_peer_certificate(self->stream_.native_handle()))
          self->cert_ = std::make_shared<const peer_certificate>(std::move(*c));
        self->read_request();
      });
    } else {
      read_request();
    }
  }

 private:
  void abort() {
    done_ = true;
    boost::system::error_code ignored;
    timer_.cancel();
    lowest(stream_).close(ignored);
  }

  void read_request() {
    parser_.header_limit(static_cast<std::uint32_t>(sh_->cfg.max_handshake_size));
    parser_.body_limit(0);
    http::async_read(stream_, buf_, parser_, [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
      self->on_request(ec);
    });
  }

  void on_request(boost::system::error_code ec) {
    if (done_) return;
    if (ec == http::error::header_limit) return answer(ws::refuse_header_too_large());
    if (ec == http::error::body_limit) return answer(ws::refuse_body());
    if (ec) {
      // The peer went away, or sent something that is not HTTP.
      if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset)
        return abort();
      return answer(ws::refuse_malformed());
    }
    const auto& req = parser_.get();
    ws::http_request r{req.method_string(), req.version(), req.target(), fields_of(req)};
    auto a = ws::answer_upgrade(r, {sh_->cfg.path, sh_->cfg.allowed_origins});
    if (!a.accepted() || !sh_->ctx.authenticate) return answer(std::move(a));
    authenticate(r, std::move(a));
  }

  // The server authenticates: the hook decides before the 101 (a refusal is 401/403).
  void authenticate(const ws::http_request& r, ws::upgrade_answer accepted) {
    auth_request ar;
    ar.protocol = sh_->settings->protocol;
    boost::system::error_code ec;
    auto peer = lowest(stream_).remote_endpoint(ec);
    if (!ec) ar.peer_address = net::format_endpoint(peer);
    ar.token = ws::credentials_of(r);
    auto [path, query] = ws::split_target(r.target);
    ar.path = std::string(path);
    ar.query = std::string(query);
    for (auto& [k, v] : r.fields) ar.headers.emplace_back(std::string(k), std::string(v));
    if (cert_) ar.certificate = *cert_;
    timer_.cancel();  // from here auth_timeout bounds the wait
    pending_ = std::move(accepted);
    auto ex = lowest(stream_).get_executor();
    sh_->ctx.authenticate(std::move(ar), [self = this->shared_from_this(), ex](auth_outcome o) {
      asio::post(ex, [self, o = std::move(o)]() mutable { self->authenticated(std::move(o)); });
    });
  }

  void authenticated(auth_outcome o) {
    if (done_) return;
    if (!o.accepted) return answer(ws::refuse_auth(o.missing_credentials, o.reason));
    who_ = std::move(o.who);
    answer(std::move(pending_));
  }

  // Writes the 101 and hands the connection on, or writes the HTTP error and closes.
  void answer(ws::upgrade_answer a) {
    const bool accepted = a.accepted();
    if (!accepted) report(notice_kind::upgrade_refused, std::move(a.refusal));
    response_ = std::move(a.response);
    asio::async_write(stream_, asio::buffer(response_),
                      [self = this->shared_from_this(), accepted](boost::system::error_code ec, std::size_t) {
                        if (!accepted || ec || self->done_) return self->abort();
                        self->upgraded();
                      });
  }

  void upgraded() {
    done_ = true;
    timer_.cancel();
    if (sh_->stopped.load()) {
      boost::system::error_code ignored;
      lowest(stream_).close(ignored);
      return;
    }
    auto c = make_connection(std::move(stream_), sh_->settings, tls_, leftover_of(buf_));
    c->who = std::move(who_);
    c->cert = std::move(cert_);
    sh_->on_accept(std::move(c));
  }

  void report(notice_kind kind, std::string detail) {
    boost::system::error_code ec;
    auto peer = lowest(stream_).remote_endpoint(ec);
    sh_->ctx.report(notice{kind, sh_->settings->protocol, ec ? "" : net::format_endpoint(peer), std::move(detail), 0});
  }

  Stream stream_;
  std::shared_ptr<listener_shared> sh_;
  asio::steady_timer timer_;
  boost::beast::flat_buffer buf_;
  http::request_parser<http::empty_body> parser_;
  std::string response_;
  ws::upgrade_answer pending_;          // the 101, while the authentication hook decides
  std::shared_ptr<const identity> who_;  // what it accepted
  std::shared_ptr<const peer_certificate> cert_;  // wss: the client's verified certificate
  bool done_ = false;

 public:
  std::shared_ptr<ssl::context> tls_;  // the context this handshake started with (wss)
};

// An accepted socket, on its own loop: the TLS and WebSocket handshakes come next.
void handshake(const std::shared_ptr<listener_shared>& sh, tcp::socket s) {
  if (auto tls = sh->tls.get()) {
    auto h = std::make_shared<server_handshake<tls_stream>>(tls_stream(std::move(s), *tls), sh);
    h->tls_ = std::move(tls);
    h->run();
  } else
    std::make_shared<server_handshake<plain_stream>>(std::move(s), sh)->run();
}

class ws_listener final : public listener {
 public:
  explicit ws_listener(ws_server_config cfg) : cfg_(std::move(cfg)) {}
  ~ws_listener() override { stop(); }

  error_info start(asio::io_context& accept_loop, loop_picker pick_loop, accept_handler on_accept,
                   const transport_context& ctx) override {
    auto sh = std::make_shared<listener_shared>();
    sh->cfg = cfg_;
    sh->on_accept = std::move(on_accept);
    sh->ctx = ctx;
    std::shared_ptr<ssl::context> tls;
    if (auto e = load_certificate(tls)) return e;
    sh->tls.set(std::move(tls));
    auto st = std::make_shared<conn_settings>();
    st->session.self = ws::role::server;
    st->session.limits = ctx.limits;
    st->session.close_timeout = ctx.close_timeout;
    st->session.keep_alive_interval = cfg_.keep_alive_interval;
    st->session.keep_alive_timeout = cfg_.keep_alive_timeout;
    st->protocol = protocol();
    st->notices = ctx.notices;
    st->budget = ctx.budget;
    sh->settings = std::move(st);
    net::stream_listener_options o;
    o.protocol = protocol();
    o.bind_address = cfg_.bind_address;
    o.reuse_port = cfg_.reuse_port;
    auto e = socket_.start(accept_loop, std::move(pick_loop), ctx, o, [sh](tcp::socket s, asio::io_context& loop) {
      asio::post(loop, [sh, s = std::move(s)]() mutable { handshake(sh, std::move(s)); });
    });
    if (!e) sh_ = std::move(sh);
    return e;
  }

  void stop() override {
    if (sh_) sh_->stopped.store(true);
    socket_.stop();
  }

  // "HOST:PORT/PATH": "ws://" + this is the URL clients use.
  std::string local_address() const override {
    return socket_.local_address().empty() ? "" : socket_.local_address() + cfg_.path;
  }
  std::string protocol() const override { return cfg_.tls_cert_file.empty() ? "ws" : "wss"; }
  // wss: new handshakes use the files as they are now; open connections keep theirs.
  error_info reload_tls() override {
    if (cfg_.tls_cert_file.empty() || !sh_) return {};
    std::shared_ptr<ssl::context> tls;
    if (auto e = load_certificate(tls)) return e;
    sh_->tls.set(std::move(tls));
    return {};
  }

 private:
  error_info load_certificate(std::shared_ptr<ssl::context>& out) const {
    if (cfg_.tls_cert_file.empty()) return {};
    net::tls_server_options o;
    o.cert_file = cfg_.tls_cert_file;
    o.key_file = cfg_.tls_key_file;
    o.client_ca_file = cfg_.tls_client_ca_file;
    o.require_client_cert = cfg_.require_client_cert;
    return net::make_server_tls_context(o, out);
  }

  ws_server_config cfg_;
  std::shared_ptr<listener_shared> sh_;
  net::stream_listener socket_;
};

// ---------------------------------------------------------------------------------------
// Client: handshake and connector
// ---------------------------------------------------------------------------------------

template <class Stream>
class client_attempt : public std::enable_shared_from_this<client_attempt<Stream>> {
 public:
  client_attempt(asio::io_context& loop, Stream stream, std::shared_ptr<const ws::client_target> url,
                 std::shared_ptr<const conn_settings> st, std::shared_ptr<ssl::context> tls, std::string request,
                 std::string key, connector::connect_handler done)
      : stream_(std::move(stream)),
        resolver_(loop),
        timer_(loop),
        url_(std::move(url)),
        st_(std::move(st)),
        tls_(std::move(tls)),
        request_(std::move(request)),
        expected_accept_(ws::accept_key(key)),
        done_(std::move(done)) {}

  void run(milliseconds total, milliseconds connect_timeout, milliseconds handshake_timeout) {
    deadline_ = clock::now() + total;
    handshake_timeout_ = handshake_timeout;
    phase_ = "resolving '" + url_->host + "'";
    arm(connect_timeout);
    resolver_.async_resolve(
        url_->host, url_->port,
        [self = this->shared_from_this()](boost::system::error_code ec, tcp::resolver::results_type results) {
          if (self->finished_) return;
          if (ec) return self->fail({errc::address_error, "cannot resolve '" + self->url_->host + "': " + ec.message()});
          self->connect(std::move(results));
        });
  }

 private:
  void arm(milliseconds phase) {
    timer_.expires_at(std::min(deadline_, clock::now() + phase));
    timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->fail({errc::timeout, self->phase_ + " timed out"});
    });
  }

  void connect(tcp::resolver::results_type results) {
    auto tried = [self = this->shared_from_this()](const boost::system::error_code&, const tcp::endpoint& ep) {
      self->peer_ = net::format_endpoint(ep);
      self->phase_ = "connect to " + self->peer_;
      return true;
    };
    asio::async_connect(lowest(stream_), results, tried,
                        [self = this->shared_from_this()](boost::system::error_code ec, const tcp::endpoint&) {
                          if (self->finished_) return;
                          if (ec) return self->fail({ec, self->phase_ + ": " + ec.message()});
                          net::close_on_exec(lowest(self->stream_).native_handle());
                          self->phase_ = "WebSocket handshake with " + self->peer_;
                          self->arm(self->handshake_timeout_);
                          self->tls_handshake();
                        });
  }

  void tls_handshake() {
    if constexpr (std::is_same_v<Stream, tls_stream>) {
      phase_ = "TLS handshake with " + peer_;
      stream_.async_handshake(ssl::stream_base::client, [self = this->shared_from_this()](boost::system::error_code ec) {
        if (self->finished_) return;
        if (ec) return self->fail({errc::tls_error, self->tls_failure(ec)});
        self->phase_ = "WebSocket handshake with " + self->peer_;
        self->send_request();
      });
    } else {
      send_request();
    }
  }

  void send_request() {
    asio::async_write(stream_, asio::buffer(request_),
                      [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (self->finished_) return;
                        if (ec) return self->fail({ec, self->phase_ + ": " + ec.message()});
                        self->read_response();
                      });
  }

  void read_response() {
    parser_.header_limit(16 * 1024);
    parser_.body_limit(64 * 1024);
    http::async_read_header(stream_, buf_, parser_,
                            [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                              if (self->finished_) return;
                              if (ec) return self->fail({ec, self->phase_ + ": " + ec.message()});
                              self->on_response();
                            });
  }

  void on_response() {
    const auto& res = parser_.get();
    ws::http_response r{static_cast<int>(res.result_int()), fields_of(res)};
    if (r.status != 101) return read_refusal();
    if (auto why = ws::check_response(r, expected_accept_); !why.empty())
      return fail({errc::protocol_error, phase_ + ": " + why});
    finished_ = true;
    timer_.cancel();
    auto conn = make_connection(std::move(stream_), st_, tls_, leftover_of(buf_));
    conn->credentials_sent = sent_credentials;
    auto done = std::move(done_);
    done({}, std::move(conn));
  }

  // The server refused the upgrade: its body usually says why ("origin not allowed").
  void read_refusal() {
    parser_.body_limit(4 * 1024);
    http::async_read(stream_, buf_, parser_, [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (self->finished_) return;
      const auto& res = self->parser_.get();
      std::string why = ec ? std::string() : res.body();
      why = why.substr(0, why.find('\n'));
      if (why.empty()) why = std::string(res.reason());
      // 401, or 403 with WWW-Authenticate: the server's authentication refused us (auth.hpp).
      const int st = static_cast<int>(res.result_int());
      const bool auth = st == 401 || (st == 403 && res.find(http::field::www_authenticate) != res.end());
      self->fail({auth ? errc::unauthenticated : errc::protocol_error, "HTTP " + std::to_string(res.result_int()) + " " + std::string(res.reason()) +
                                            ": " + why});
    });
  }

  std::string tls_failure(const boost::system::error_code& ec) {
    std::string why = phase_ + ": " + ec.message();
    if constexpr (std::is_same_v<Stream, tls_stream>) why += net::verify_failure(stream_.native_handle());
    return why;
  }

  void fail(error_info ec) {
    if (finished_) return;
    finished_ = true;
    boost::system::error_code ignored;
    timer_.cancel();
    resolver_.cancel();
    lowest(stream_).close(ignored);
    auto done = std::move(done_);
    done(std::move(ec), nullptr);
  }

  Stream stream_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  std::shared_ptr<const ws::client_target> url_;
  std::shared_ptr<const conn_settings> st_;
  std::shared_ptr<ssl::context> tls_;
  std::string request_;
  std::string expected_accept_;
  connector::connect_handler done_;
  clock::time_point deadline_;
  milliseconds handshake_timeout_{0};
  boost::beast::flat_buffer buf_;
  http::response_parser<http::string_body> parser_;
  std::string peer_;                      // the endpoint being tried, then connected to
  std::string phase_;  // what a timeout interrupts
  bool finished_ = false;

 public:
  bool sent_credentials = false;  // the request carries `Authorization: Bearer`
};

class ws_connector final : public connector {
 public:
  explicit ws_connector(ws_client_config cfg)
      : cfg_(std::move(cfg)), url_(std::make_shared<ws::client_target>(ws::parse_url(cfg_.url))) {
    ws::check_extra_headers(cfg_.headers);
    if (url_->tls) tls_ = client_tls();
  }

  void connect(asio::io_context& loop, milliseconds timeout, const transport_context& ctx,
               connect_handler done) override {
    auto st = std::make_shared<conn_settings>();
    st->session.self = ws::role::client;
    st->session.limits = ctx.limits;
    st->session.close_timeout = ctx.close_timeout;
    st->protocol = url_->tls ? "wss" : "ws";
    std::string key = ws::make_client_key();
    auto headers = cfg_.headers;
    if (!ctx.credentials.empty()) headers.emplace_back("Authorization", "Bearer " + ctx.credentials);
    std::string req = ws::client_request(*url_, key, headers);
    const bool creds = !ctx.credentials.empty();
    if (url_->tls) {
      tls_stream stream(loop, *tls_);
      const std::string& name = cfg_.tls_server_name.empty() ? url_->host : cfg_.tls_server_name;
      net::prepare_client_ssl(stream.native_handle(), name, !cfg_.tls_insecure_skip_verify);
      auto a = std::make_shared<client_attempt<tls_stream>>(loop, std::move(stream), url_, std::move(st), tls_,
                                                            std::move(req), key, std::move(done));
      a->sent_credentials = creds;
      a->run(timeout, cfg_.connect_timeout, cfg_.handshake_timeout);
    } else {
      auto a = std::make_shared<client_attempt<plain_stream>>(loop, plain_stream(loop), url_, std::move(st), nullptr,
                                                              std::move(req), key, std::move(done));
      a->sent_credentials = creds;
      a->run(timeout, cfg_.connect_timeout, cfg_.handshake_timeout);
    }
  }

  std::string target() const override { return cfg_.url; }

 private:
  std::shared_ptr<ssl::context> client_tls() const {
    net::tls_client_options o;
    o.ca_file = cfg_.tls_ca_file;
    o.insecure = cfg_.tls_insecure_skip_verify;
    o.cert_file = cfg_.tls_cert_file;
    o.key_file = cfg_.tls_key_file;
    return net::make_client_tls_context(o, "ws_client_config");
  }

  ws_client_config cfg_;
  std::shared_ptr<const ws::client_target> url_;
  std::shared_ptr<ssl::context> tls_;
};

}  // namespace

std::unique_ptr<listener> make_listener(const ws_server_config& config) {
  std::string why;
  if (!net::address::parse_bind(config.bind_address, why))
    throw std::invalid_argument("ws_server_config.bind_address: " + why);
  if (config.path.empty() || config.path.front() != '/')
    throw std::invalid_argument("ws_server_config.path: must start with '/' (got \"" + config.path + "\")");
  if (config.tls_cert_file.empty() != config.tls_key_file.empty())
    throw std::invalid_argument("ws_server_config.tls_cert_file / tls_key_file: set both for wss, or neither");
  if (config.handshake_timeout.count() <= 0)
    throw std::invalid_argument("ws_server_config.handshake_timeout: must be positive");
  if (!config.tls_client_ca_file.empty() && config.tls_cert_file.empty())
    throw std::invalid_argument("ws_server_config.tls_client_ca_file: needs tls_cert_file / tls_key_file (a wss listener)");
  if (config.require_client_cert && config.tls_client_ca_file.empty())
    throw std::invalid_argument("ws_server_config.require_client_cert: needs tls_client_ca_file (the CAs that vouch for clients)");
  if (config.keep_alive_interval.count() < 0)
    throw std::invalid_argument("ws_server_config.keep_alive_interval: must not be negative (0 = no pings)");
  if (config.keep_alive_interval.count() > 0 && config.keep_alive_timeout.count() <= 0)
    throw std::invalid_argument("ws_server_config.keep_alive_timeout: must be positive when pings are on");
  return std::make_unique<ws_listener>(config);
}

std::unique_ptr<connector> make_connector(const ws_client_config& config) {
  if (config.connect_timeout.count() <= 0)
    throw std::invalid_argument("ws_client_config.connect_timeout: must be positive");
  if (config.handshake_timeout.count() <= 0)
    throw std::invalid_argument("ws_client_config.handshake_timeout: must be positive");
  if (config.tls_cert_file.empty() != config.tls_key_file.empty())
    throw std::invalid_argument("ws_client_config.tls_cert_file / tls_key_file: set both for a client certificate, or neither");
  if (!config.tls_cert_file.empty() && config.url.rfind("wss://", 0) != 0)
    throw std::invalid_argument("ws_client_config.tls_cert_file: a client certificate needs a wss:// URL");
  return std::make_unique<ws_connector>(config);
}

}  // namespace msgtrans

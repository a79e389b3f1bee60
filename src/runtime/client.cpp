#include "auth/auth_service.hpp"
#include "runtime/event_router.hpp"
#include "runtime/session_options.hpp"

#include <msgtrans/client.hpp>
#include <msgtrans/error.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <condition_variable>
#include <future>
#include <random>
#include <stdexcept>

namespace msgtrans {

namespace asio = boost::asio;

struct client_config {
  std::unique_ptr<connector> target;
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
  reconnect_policy policy;
  session_options opts;
  handlers h;
  std::size_t event_capacity = 0;
  bool sent_events = false;
  std::shared_ptr<runtime> rt;
  std::string credentials;  // none: no authentication
};

namespace detail {

class client_impl final : public event_router, public std::enable_shared_from_this<client_impl> {
 public:
  // The outcome of connect(): the last attempt's code and detail.
  using connect_handler = asio::any_completion_handler<void(error_info)>;

  explicit client_impl(client_config cfg)
      : event_router(std::move(cfg.h), cfg.event_capacity, cfg.sent_events),
        cfg_(std::move(cfg)),
        rt_(cfg_.rt ? cfg_.rt : std::make_shared<runtime>(1)),
        loop_(rt_->next_loop()),
        retry_timer_(loop_) {}

  ~client_impl() = default;

  const session_options& opts() const noexcept { return cfg_.opts; }
  bool connected() const noexcept { return connected_.load(std::memory_order_acquire); }
  bool on_loop_thread() const noexcept override { return rt_->in_loop_thread(); }

  void connect(connect_handler h) {
    asio::post(loop_, [self = shared_from_this(), h = std::move(h)]() mutable {
      self->user_disconnected_ = false;
      if (self->connected()) return complete(std::move(h), {}, self->loop_);
      auto shared = std::make_shared<connect_handler>(std::move(h));
      self->attempt(0, shared);
    });
  }

  void disconnect(std::chrono::milliseconds timeout) {
    std::shared_ptr<session_core> s;
    {
      std::lock_guard lock(mu_);
      user_disconnected_ = true;
      s = session_;
    }
    // A weak reference: this may be the last thing queued before the loop stops, and a
    // strong one would keep the client alive through its own runtime.
    asio::post(loop_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->retry_timer_.cancel();
    });
    if (!s) return;
    s->close(close_info{close_reason::normal, {}, "client disconnected"});
    if (on_loop_thread()) return;  // the loop it would wait for may be this one
    std::unique_lock lock(mu_);
    closed_cv_.wait_for(lock, timeout, [&] { return session_ != s; });
  }

  std::shared_ptr<session_core> current() const {
    std::lock_guard lock(mu_);
    return session_;
  }

  std::error_code send(bytes_view payload, const send_options& o) {
    auto s = current();
    if (!s || !connected()) return errc::not_connected;  // (still authenticating: not yet)
    return s->send(packet_type::one_way, 0, payload, o);
  }

  void request(bytes_view payload, std::chrono::milliseconds timeout, const send_options& o, response_handler h) {
    auto s = current();
    if (!s || !connected()) {
      complete_later(std::move(h), loop_, std::error_code(errc::not_connected), packet{});
      return;
    }
    s->request(payload, timeout, o, std::move(h));
  }

  std::optional<connection_info> info() const {
    auto s = current();
    if (!s) return std::nullopt;
    return s->info();
  }

  client_stats stats() const {
    client_stats st;
    st.connected = connected();
    fill_stats(st);
    return st;
  }

  void shutdown() {
    disconnect(std::chrono::seconds(2));
    close_events();
    if (!cfg_.rt) rt_->stop();  // our own loop: nothing else runs on it
  }

  // ---- session_host ----
  void session_closed(session_core& s, const close_info& info) override {
    // disconnect() (and so ~client) returns once it sees the session gone, and may drop
    // the last reference to this client while this still runs on the loop: hold one until
    // the call is done (the close event used to race with the client's destruction, a use
    // after free that ASan caught in TcpThreads.SendRequestCloseFromEightThreads). The
    // event goes out before a waiting disconnect() is woken.
    auto self = shared_from_this();
    bool reconnect = false;
    {
      std::lock_guard lock(mu_);
      connected_.store(false, std::memory_order_release);
      if (session_.get() == &s) session_.reset();
      reconnect = cfg_.policy.auto_reconnect && !user_disconnected_ && info.reason != close_reason::shutdown &&
                  auth_failed_ != &s;
      if (auth_failed_ == &s) auth_failed_ = nullptr;
    }
    if (s.established()) deliver_closed(s, info);  // never announced, never closed
    closed_cv_.notify_all();
    if (reconnect) attempt(0, nullptr);
  }

 private:
  void report_error(error_event e) { deliver_error(std::move(e)); }

  static void complete(connect_handler h, error_info e, asio::io_context& loop) {
    complete_later(std::move(h), loop, std::move(e));
  }

  std::chrono::milliseconds backoff(int n) {
    double d = static_cast<double>(cfg_.policy.initial_delay.count());
    for (int i = 0; i < n; ++i) d *= cfg_.policy.multiplier;
    d = std::min(d, static_cast<double>(cfg_.policy.max_delay.count()));
    std::uniform_real_distribution<double> spread(1.0 - cfg_.policy.jitter, 1.0 + cfg_.policy.jitter);
    return std::chrono::milliseconds(static_cast<std::int64_t>(d * spread(rng_)));
  }

  // n: attempt number; h: the connect() waiting for the outcome (null for auto-reconnect).
  void attempt(int n, std::shared_ptr<connect_handler> h) {
    transport_context ctx;
    ctx.limits = cfg_.opts.limits();
    ctx.close_timeout = cfg_.opts.close_timeout;
    ctx.credentials = cfg_.credentials;
    cfg_.target->connect(loop_, cfg_.connect_timeout, ctx,
                         [self = shared_from_this(), n, h](error_info e, std::unique_ptr<connection> c) {
                           self->attempted(n, h, std::move(e), std::move(c));
                         });
  }

  void attempted(int n, std::shared_ptr<connect_handler> h, error_info e, std::unique_ptr<connection> c) {
    if (user_disconnected_) {
      if (h && *h) complete(std::move(*h), errc::cancelled, loop_);
      return;  // dropping c closes it
    }
    if (!e) {
      const bool authenticate = !cfg_.credentials.empty() && !c->sent_credentials();
      auto s = std::make_shared<session_core>(*this, loop_, std::move(c), session_id{next_session_++}, cfg_.opts, false);
      if (authenticate) return authenticate_first(std::move(s), h);
      {
        std::lock_guard lock(mu_);
        session_ = s;
        connected_.store(true, std::memory_order_release);
      }
      if (h && *h) complete(std::move(*h), {}, loop_);
      s->start();
      return;
    }
    const int max = std::max(1, cfg_.policy.max_attempts);
    report_error(error_event{e.code, "connect to " + cfg_.target->target() + " failed (attempt " +
                                         std::to_string(n + 1) + " of " + std::to_string(max) + "): " + e.message()});
    if (n + 1 < max && e.code != errc::unauthenticated) {  // the same credentials would fail again
      retry_timer_.expires_after(backoff(n));
      retry_timer_.async_wait([self = shared_from_this(), n, h](boost::system::error_code e) {
        if (e) {
          if (h && *h) complete(std::move(*h), errc::cancelled, self->loop_);
          return;
        }
        self->attempt(n + 1, h);
      });
      return;
    }
    if (h && *h) complete(std::move(*h), std::move(e), loop_);
  }

  // The authentication request goes first (docs/wire-format.md); the session counts as
  // connected, and is announced, only once the server accepted it.
  void authenticate_first(std::shared_ptr<session_core> s, std::shared_ptr<connect_handler> h) {
    {
      std::lock_guard lock(mu_);
      session_ = s;
    }
    s->start(true);
    auto done = [self = shared_from_this(), s, h](std::error_code ec, packet p) {
      std::string why;
      if (!ec) {
        auto a = is_auth_ext(p.ext_header) ? parse_auth_answer(p.payload) : std::nullopt;
        if (!a) ec = errc::protocol_error, why = "the server did not answer the authentication request";
      } else if (ec == errc::unauthenticated) {
        why = "authentication rejected: " + std::string(as_string(p.payload));
      } else {
        why = "authentication: " + ec.message();
      }
      if (ec) {
        self->auth_failed_ = s.get();
        s->close(close_info{close_reason::normal, ec, why});
        self->report_error(error_event{ec, "connect to " + self->cfg_.target->target() + ": " + why});
        if (h && *h) complete(std::move(*h), error_info{ec, why}, self->loop_);
        return;
      }
      self->connected_.store(true, std::memory_order_release);
      s->report_established();
      if (h && *h) complete(std::move(*h), {}, self->loop_);
    };
    s->request(as_bytes(cfg_.credentials), cfg_.connect_timeout,
               send_options{0, as_bytes(auth_ext), 0, compression::none}, std::move(done));
  }

  client_config cfg_;
  const session_core* auth_failed_ = nullptr;  // its close does not reconnect
  std::shared_ptr<runtime> rt_;
  asio::io_context& loop_;
  asio::steady_timer retry_timer_;
  mutable std::mutex mu_;
  std::condition_variable closed_cv_;
  std::shared_ptr<session_core> session_;
  std::atomic<bool> connected_{false};
  bool user_disconnected_ = false;
  std::uint64_t next_session_ = 1;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace detail

// ---- client_builder ----

client_builder::client_builder() : cfg_(std::make_unique<client_config>()) {}
client_builder::~client_builder() = default;
client_builder::client_builder(client_builder&&) noexcept = default;
client_builder& client_builder::operator=(client_builder&&) noexcept = default;

client_builder& client_builder::connect_to(std::unique_ptr<connector> c) {
  if (!c) throw std::invalid_argument("connect_to: connector is null");
  cfg_->target = std::move(c);
  return *this;
}
client_builder& client_builder::credentials(std::string token) {
  cfg_->credentials = std::move(token);
  return *this;
}
client_builder& client_builder::connect_timeout(std::chrono::milliseconds t) {
  if (t.count() <= 0) throw std::invalid_argument("connect_timeout must be positive");
  cfg_->connect_timeout = t;
  return *this;
}
client_builder& client_builder::reconnect(const reconnect_policy& p) {
  if (p.max_attempts < 1) throw std::invalid_argument("reconnect.max_attempts must be at least 1");
  if (p.multiplier < 1.0) throw std::invalid_argument("reconnect.multiplier must be at least 1");
  if (p.jitter < 0.0 || p.jitter > 1.0) throw std::invalid_argument("reconnect.jitter must be within 0..1");
  cfg_->policy = p;
  return *this;
}
client_builder& client_builder::options(const session_options& o) {
  detail::validate(o);
  cfg_->opts = o;
  return *this;
}
client_builder& client_builder::apply(preset p) {
  (void)detail::apply_preset(p, cfg_->opts);
  return *this;
}
client_builder& client_builder::use_runtime(std::shared_ptr<runtime> rt) { cfg_->rt = std::move(rt); return *this; }
client_builder& client_builder::on_connected(std::function<void(const connection_info&)> f) { cfg_->h.on_connected = std::move(f); return *this; }
client_builder& client_builder::on_message(std::function<void(const message&)> f) { cfg_->h.on_message = std::move(f); return *this; }
client_builder& client_builder::on_request(std::function<void(request&)> f) { cfg_->h.on_request = std::move(f); return *this; }
client_builder& client_builder::on_closed(std::function<void(session_id, const close_info&)> f) { cfg_->h.on_closed = std::move(f); return *this; }
client_builder& client_builder::on_error(std::function<void(const error_event&)> f) { cfg_->h.on_error = std::move(f); return *this; }
client_builder& client_builder::on_sent(std::function<void(session_id, std::uint32_t)> f) { cfg_->h.on_sent = std::move(f); return *this; }
client_builder& client_builder::sent_events(bool enabled) {
  cfg_->sent_events = enabled;
  return *this;
}
client_builder& client_builder::events(std::size_t capacity) {
  if (capacity == 0) throw std::invalid_argument("events capacity must be at least 1");
  cfg_->event_capacity = capacity;
  return *this;
}

client client_builder::build() {
  if (!cfg_->target) throw std::invalid_argument("client: no target (call connect_to)");
  auto impl = std::make_shared<detail::client_impl>(std::move(*cfg_));
  cfg_ = std::make_unique<client_config>();
  return client(std::move(impl));
}

// ---- client ----

client::client(std::shared_ptr<detail::client_impl> impl) : impl_(std::move(impl)) {}
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;
client::~client() {
  if (impl_) impl_->shutdown();
}

std::chrono::milliseconds client::default_timeout() const noexcept { return impl_->opts().request_timeout; }
void client::connect_impl(boost::asio::any_completion_handler<void(std::error_code)> h) {
  auto ex = boost::asio::get_associated_executor(h);  // where the caller's handler runs
  impl_->connect(boost::asio::bind_executor(ex, [h = std::move(h)](error_info e) mutable { std::move(h)(e.code); }));
}
error_info client::connect() {
  if (impl_->on_loop_thread()) return errc::wrong_thread;  // would wait for its own loop
  std::promise<error_info> p;
  auto f = p.get_future();
  impl_->connect([&p](error_info e) { p.set_value(std::move(e)); });
  return f.get();
}
void client::disconnect(std::chrono::milliseconds timeout) { impl_->disconnect(timeout); }
bool client::is_connected() const noexcept { return impl_->connected(); }
std::optional<connection_info> client::info() const { return impl_->info(); }
std::error_code client::send(bytes_view payload, const send_options& o) { return impl_->send(payload, o); }
void client::request_impl(bytes_view payload, std::chrono::milliseconds timeout, const send_options& o,
                          boost::asio::any_completion_handler<void(std::error_code, packet)> h) {
  impl_->request(payload, timeout, o, std::move(h));
}
result<packet> client::call(bytes_view payload, std::chrono::milliseconds timeout, const send_options& o) {
  if (impl_->on_loop_thread()) return errc::wrong_thread;  // would wait for its own loop
  std::promise<result<packet>> p;
  auto f = p.get_future();
  request(payload, timeout, [&p](std::error_code ec, packet pk) {
    if (ec) p.set_value(ec);
    else p.set_value(std::move(pk));
  }, o);
  return f.get();
}
client_stats client::stats() const { return impl_->stats(); }
event_stream& client::events() { return impl_->events(); }

}  // namespace msgtrans

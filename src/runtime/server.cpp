#include "auth/auth_service.hpp"
#include "cluster/room_name.hpp"
#include "net/address.hpp"
#include "runtime/cluster_node.hpp"
#include "runtime/event_router.hpp"
#include "runtime/rooms.hpp"
#include "runtime/server_config.hpp"
#include "runtime/session_options.hpp"
#include "runtime/notices.hpp"
#include "runtime/peer_limits.hpp"

#include <msgtrans/error.hpp>
#include <msgtrans/runtime.hpp>
#include <msgtrans/server.hpp>

#include <boost/asio/post.hpp>

#include <condition_variable>
#include <future>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>

namespace msgtrans {

namespace asio = boost::asio;

namespace detail {

// Addresses whose handshake rate, and whose once-a-minute log line, are remembered at
// once (each table holds at most twice this; see expiring_map).
constexpr std::size_t tracked_addresses = 65536;

class server_impl final : public event_router, public notice_sink, public cluster_host, public admission_control {
 public:
  explicit server_impl(server_config cfg)
      : event_router(std::move(cfg.h), cfg.event_capacity, cfg.sent_events),
        cfg_(std::move(cfg)),
        per_ip_(cfg_.max_connections_per_ip),
        budget_(cfg_.inbound_memory_limit),
        rt_(cfg_.threads) {
    if (cfg_.max_handshakes_per_second_per_ip)
      handshakes_ = std::make_unique<handshake_limiter>(cfg_.max_handshakes_per_second_per_ip, tracked_addresses);
    for (auto& e : cfg_.listeners) slots_.push_back(std::make_unique<slot>(std::move(e.l), e.max, e.max_per_ip));
    if (cfg_.auth)
      auth_ = std::make_unique<auth_service>(std::move(cfg_.auth), cfg_.auth_timeout, cfg_.max_pending_auth);
    if (cfg_.bus) {
      cluster_ = std::make_shared<cluster_node>(std::move(cfg_.bus), cfg_.node, *this, rt_.loop(0));
      rooms_.on_interest([w = std::weak_ptr<cluster_node>(cluster_)](std::string_view room, bool in) {
        if (auto c = w.lock()) c->interest(room, in);
      });
    }
  }

  ~server_impl() { stop(std::chrono::seconds(1)); }

  error_info start() {
    std::lock_guard lock(lifecycle_mu_);
    if (started_) return {};
    if (cluster_)
      if (auto e = cluster_->start()) return e;  // before any listener: nothing is bound on failure
    transport_context ctx;
    ctx.limits = cfg_.opts.limits();
    ctx.close_timeout = cfg_.opts.close_timeout;
    ctx.notices = this;
    ctx.budget = &budget_;
    if (auth_)
      ctx.authenticate = [this](auth_request r, std::function<void(auth_outcome)> done) {
        auth_->authenticate(current_loop(), std::move(r), std::move(done));
      };
    if (handshakes_) ctx.admission = this;
    for (std::size_t i = 0; i < rt_.size(); ++i) ctx.loops.push_back(&rt_.loop(i));
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      slot* sl = slots_[i].get();
      error_info e;
      // Listeners live on loop 0; accepted connections are spread over all loops.
      run_on(rt_.loop(0), [&] {
        e = sl->l->start(
            rt_.loop(0), [this]() -> asio::io_context& { return rt_.next_loop(); },
            [this, sl](std::unique_ptr<connection> c) { accept(sl, std::move(c)); }, ctx);
      });
      if (e) {
        for (std::size_t j = 0; j < i; ++j) run_on(rt_.loop(0), [&] { slots_[j]->l->stop(); });
        if (cluster_) cluster_->stop();
        return e;
      }
    }
    started_ = true;
    return {};
  }

  std::vector<std::pair<std::string, std::string>> local_addresses() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& s : slots_) out.emplace_back(s->l->protocol(), s->l->local_address());
    return out;
  }

  std::shared_ptr<session_core> find(session_id id) const {
    std::shared_lock lock(table_mu_);
    auto it = sessions_.find(id);
    // A session still authenticating is nobody's to address yet.
    return it == sessions_.end() || !it->second.core->established() ? nullptr : it->second.core;
  }

  bool remote(session_id id) const noexcept { return cluster_ && !cluster_->is_local(id); }
  std::error_code close_remote(session_id id, std::string_view detail) { return cluster_->close(id, detail); }

  std::error_code send(session_id id, bytes_view payload, const send_options& o) {
    if (remote(id)) {
      auto encoded = encode_once(payload, o);
      if (!encoded) return errc::message_too_large;
      return cluster_->send(id, *encoded, (o.flags & flags::high_priority) != 0);
    }
    auto s = find(id);
    if (!s) return errc::unknown_session;
    return s->send(packet_type::one_way, 0, payload, o);
  }

  void request(session_id id, bytes_view payload, std::chrono::milliseconds timeout, const send_options& o,
               response_handler h) {
    if (remote(id)) return cluster_->request(id, payload, timeout, o, std::move(h));
    auto s = find(id);
    if (!s) {
      complete_later(std::move(h), rt_.loop(0), std::error_code(errc::unknown_session), packet{});
      return;
    }
    s->request(payload, timeout, o, std::move(h));
  }

  // A one-way packet encoded by the sessions' own encoder, once; the same bytes fan out.
  // Null when it cannot be encoded (too large, compression failed).
  std::shared_ptr<const byte_buffer> encode_once(bytes_view payload, const send_options& o) {
    const auto id = static_cast<std::uint32_t>(broadcast_ids_.fetch_add(1, std::memory_order_relaxed) % 0xFFFFFFFFu + 1);
    outgoing_packet p(packet_type::one_way, id, payload, o, cfg_.opts);
    if (p.error()) return nullptr;
    auto encoded = std::make_shared<byte_buffer>(p.size());
    p.encode_into(*encoded);
    return encoded;
  }

  std::size_t broadcast(const std::vector<std::shared_ptr<session_core>>& targets, bytes_view payload,
                        const send_options& o) {
    const auto shared = encode_once(payload, o);
    if (!shared) return 0;
    std::size_t n = 0;
    for (auto& s : targets)
      if (!s->send_shared(shared, (o.flags & flags::high_priority) != 0)) ++n;
    return n;
  }

  // Established sessions only, unless `pending` (those still authenticating too).
  std::vector<std::shared_ptr<session_core>> all_sessions(bool pending = false) const {
    std::shared_lock lock(table_mu_);
    std::vector<std::shared_ptr<session_core>> v;
    v.reserve(sessions_.size());
    for (auto& [id, e] : sessions_)
      if (pending || e.core->established()) v.push_back(e.core);
    return v;
  }

  std::vector<session_id> session_ids() const {
    std::shared_lock lock(table_mu_);
    std::vector<session_id> v;
    for (auto& [id, e] : sessions_)
      if (e.core->established()) v.push_back(id);
    return v;
  }

  error_info reload_tls() {
    error_info first;
    for (auto& sl : slots_)
      if (auto e = sl->l->reload_tls(); e && !first)
        first = error_info{e.code, sl->l->protocol() + " " + sl->l->local_address() + ": " + e.message()};
    return first;
  }

  server_stats stats() const {
    server_stats st;
    {
      std::shared_lock lock(table_mu_);
      st.active = sessions_.size();
      for (auto& [id, e] : sessions_) st.active_by_protocol[e.core->endpoint().protocol]++;
    }
    st.accepted_total = accepted_.load();
    st.rejected_by_limit = rejected_.load();
    st.refused["per_ip"] = refused_per_ip_.load(std::memory_order_relaxed);
    st.refused["handshake_rate"] = refused_handshake_rate_.load(std::memory_order_relaxed);
    for (std::size_t k = 0; k < notice_kinds; ++k)
      if (auto n = notice_counts_.by_kind[k].load(std::memory_order_relaxed))
        st.notices[to_string(static_cast<notice_kind>(k))] = n;
    st.inbound_budget_used = budget_.used();
    st.inbound_budget_limit = budget_.limit();
    st.inbound_budget_waits = budget_.waits();
    fill_stats(st);
    st.rooms = rooms_.room_count();
    st.room_memberships = rooms_.memberships();
    st.room_deliveries = room_deliveries_.load(std::memory_order_relaxed);
    if (cluster_) cluster_->fill_stats(st);
    if (auth_) {
      auto& a = auth_->counters();
      st.auth_accepted = a.accepted.load();
      st.auth_rejected = a.rejected.load();
      st.auth_timeouts = a.timed_out.load();
      st.auth_refused_busy = a.refused_busy.load();
      st.auth_pending = a.pending.load();
    }
    return st;
  }

  void stop(std::chrono::milliseconds timeout) {
    std::unique_lock life(lifecycle_mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_.store(true);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    // 1. stop accepting
    if (started_)
      for (auto& s : slots_) run_on(rt_.loop(0), [&] { s->l->stop(); });
    // 2. let requests already received be answered
    {
      std::unique_lock lock(wait_mu_);
      wait_cv_.wait_until(lock, deadline, [&] { return counters().inbound_requests_open.load() == 0; });
    }
    // 3 + 4. flush every queue, then close with reason shutdown (one close event each)
    for (auto& s : all_sessions(true)) s->close(close_info{close_reason::shutdown, errc::shutting_down, "server stopping"});
    {
      std::unique_lock lock(wait_mu_);
      // Ending a connection (flush, then the transport's close handshake) is bounded by
      // session_options::close_timeout: allow for it past the stop deadline.
      wait_cv_.wait_until(lock, std::max(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)) +
                                    cfg_.opts.close_timeout,
                          [&] {
                            std::shared_lock t(table_mu_);
                            return sessions_.empty();
                          });
    }
    if (cluster_) cluster_->stop();  // pending cross-node requests end with shutting_down
    close_events();
    // 5. return
    rt_.stop();
  }

  // ---- session_host ----
  void session_closed(session_core& s, const close_info& info) override {
    {
      std::unique_lock lock(table_mu_);
      auto it = sessions_.find(s.id());
      if (it != sessions_.end()) {
        slot* from = it->second.from;
        from->active.fetch_sub(1);
        if (auto& k = it->second.peer) {
          per_ip_.remove(*k);
          from->per_ip.remove(*k);
        }
        sessions_.erase(it);
      }
    }
    rooms_.leave_all(s.id());
    if (s.established()) deliver_closed(s, info);  // one never accepted was never announced
    notify();
  }
  void request_answered() noexcept override { notify(); }
  bool authenticates() const noexcept override { return auth_ != nullptr; }
  void authenticate(session_core& s, auth_request r, std::function<void(auth_outcome)> done) override {
    auth_->authenticate(s.loop(), std::move(r), std::move(done));
  }
  inbound_budget* budget() noexcept override { return &budget_; }
  bool on_loop_thread() const noexcept override { return rt_.in_loop_thread(); }

  void session_rate_limited(session_core& s, rate_limit_action a, const std::string& detail) override {
    report_once_per_address(notice{notice_kind::rate_limited, s.endpoint().protocol, s.endpoint().peer_address,
                                   detail + (a == rate_limit_action::close ? "; closed" : "; reading paused"), 0},
                            peer_key_of(s.endpoint().peer_address));
  }

  // ---- admission_control ----
  bool admit_handshake(const ::sockaddr* peer, const std::string& protocol) noexcept override {
    auto k = peer_key_of(peer);
    if (!k || !handshakes_) return true;
    try {
      if (handshakes_->admit(*k, std::chrono::steady_clock::now())) return true;
      refused_handshake_rate_.fetch_add(1, std::memory_order_relaxed);
      if (log_limit_.admit(*k, std::chrono::steady_clock::now()))
        report(notice{notice_kind::peer_limit, protocol, net::format(peer),
                      "max_handshakes_per_second_per_ip (" + std::to_string(cfg_.max_handshakes_per_second_per_ip) +
                          ") reached",
                      0});
      else
        notice_counts_.count(notice_kind::peer_limit);
      return false;
    } catch (...) {
      return true;  // out of memory for the table: admit rather than take the accept loop down
    }
  }

  // ---- notice_sink ----
  void report(notice n) noexcept override {
    notice_counts_.count(n.kind);
    if (!cfg_.on_notice) return;
    try {
      if (auto r = notice_limit_.admit(std::move(n), std::chrono::steady_clock::now())) cfg_.on_notice(*r);
    } catch (...) {
      // A notice must never take a connection or the accept loop down with it.
    }
  }

 private:
  struct slot {
    slot(std::unique_ptr<listener> lis, std::size_t m, std::size_t per_ip_max)
        : l(std::move(lis)), max(m), per_ip(per_ip_max) {}
    std::unique_ptr<listener> l;
    std::size_t max = 0;
    std::atomic<std::size_t> active{0};
    connection_counts per_ip;  // under table_mu_
  };
  struct entry {
    std::shared_ptr<session_core> core;
    slot* from;
    std::optional<peer_key> peer;  // counted per address (a limit per address is set)
  };

  // Counts `n`, and passes it on (rate-limited per kind) only if its address had no
  // notice within the last minute.
  void report_once_per_address(notice n, const std::optional<peer_key>& k) {
    if (!k || log_limit_.admit(*k, std::chrono::steady_clock::now())) return report(std::move(n));
    notice_counts_.count(n.kind);
  }
  // max_connections_per_ip, server-wide and of the listener; under table_mu_. What the
  // refusal names (counted here; reported by the caller, outside the lock), or nothing.
  std::optional<std::string> over_per_ip(slot* sl, const peer_key& k) {
    const bool server_wide = per_ip_.full(k);
    if (!server_wide && !sl->per_ip.full(k)) return std::nullopt;
    refused_per_ip_.fetch_add(1, std::memory_order_relaxed);
    return server_wide ? "max_connections_per_ip (" + std::to_string(per_ip_.max()) + ") reached"
                       : "this listener's max_connections_per_ip (" + std::to_string(sl->per_ip.max()) + ") reached";
  }

  void notify() {
    if (!stopping_.load(std::memory_order_relaxed)) return;
    std::lock_guard lock(wait_mu_);
    wait_cv_.notify_all();
  }

  // Runs f on `loop` and waits for it (not from that loop).
  template <class F>
  void run_on(asio::io_context& loop, F&& f) {
    if (loop.get_executor().running_in_this_thread()) return f();
    std::promise<void> done;
    asio::post(loop, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  asio::io_context& current_loop() {
    for (std::size_t i = 0; i < rt_.size(); ++i)
      if (rt_.loop(i).get_executor().running_in_this_thread()) return rt_.loop(i);
    return rt_.loop(0);
  }

  void accept(slot* sl, std::unique_ptr<connection> c) {
    if (stopping_.load()) return;  // dropping the connection closes it
    {
      std::unique_lock lock(table_mu_);
      if (sessions_.size() >= cfg_.max_connections || (sl->max && sl->active.load() >= sl->max)) {
        const bool server_wide = sessions_.size() >= cfg_.max_connections;
        lock.unlock();
        rejected_.fetch_add(1);
        auto ep = c->info();
        report(notice{notice_kind::connection_limit, ep.protocol, ep.peer_address,
                      server_wide ? "max_connections (" + std::to_string(cfg_.max_connections) + ") reached"
                                  : "this listener's max_connections (" + std::to_string(sl->max) + ") reached"});
        return;  // closed at once by the destructor, and counted
      }
      std::optional<peer_key> peer;
      if (per_ip_.on() || sl->per_ip.on()) {
        auto ep = c->info();
        if ((peer = peer_key_of(ep.peer_address))) {
          if (auto why = over_per_ip(sl, *peer)) {
            lock.unlock();
            report_once_per_address(notice{notice_kind::peer_limit, ep.protocol, ep.peer_address, *why, 0}, peer);
            return;  // closed at once by the destructor, and counted
          }
          per_ip_.add(*peer);
          sl->per_ip.add(*peer);
        }
      }
      sl->active.fetch_add(1);
      accepted_.fetch_add(1);
      const session_id id = cluster_ ? cluster_->make_session_id(next_id_++) : session_id{next_id_++};
      auto core = std::make_shared<session_core>(*this, current_loop(), std::move(c), id, cfg_.opts, true);
      sessions_.emplace(id, entry{core, sl, peer});
      lock.unlock();
      core->start();
    }
  }

  server_config cfg_;
  room_registry rooms_;
  std::atomic<std::uint64_t> room_deliveries_{0};
  // Before the runtime: connections destroyed with its loops still give budget back and
  // may report.
  notice_counters notice_counts_;
  notice_limiter notice_limit_{std::chrono::seconds(10)};
  per_address_limiter log_limit_{std::chrono::minutes(1), tracked_addresses};
  std::unique_ptr<handshake_limiter> handshakes_;  // max_handshakes_per_second_per_ip set
  connection_counts per_ip_;                       // under table_mu_
  std::atomic<std::uint64_t> refused_per_ip_{0}, refused_handshake_rate_{0};
  inbound_budget budget_;
  runtime rt_;
  std::vector<std::unique_ptr<slot>> slots_;
  mutable std::shared_mutex table_mu_;
  std::unordered_map<session_id, entry> sessions_;
  std::uint64_t next_id_ = 1;
  std::atomic<std::uint64_t> accepted_{0}, rejected_{0}, broadcast_ids_{0};
  std::mutex lifecycle_mu_;
  bool started_ = false, stopped_ = false;
  std::atomic<bool> stopping_{false};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::shared_ptr<cluster_node> cluster_;  // after the runtime: destroyed before its loops
  std::unique_ptr<auth_service> auth_;     // after the runtime: answers find no loop gone

 public:
  // ---- rooms ----
  std::error_code join(session_id id, std::string_view room) {
    check_room_name(room);
    auto s = find(id);
    if (!s) return errc::unknown_session;
    rooms_.join(s, room);
    return {};
  }
  std::error_code leave(session_id id, std::string_view room) {
    check_room_name(room);
    if (!find(id)) return errc::unknown_session;
    rooms_.leave(id, room);
    return {};
  }
  void leave_all(session_id id) { rooms_.leave_all(id); }
  std::vector<std::string> rooms_of(session_id id) const { return rooms_.rooms_of(id); }
  std::size_t room_size(std::string_view room, room_scope scope) const {
    check_room_name(room);
    const std::size_t local = rooms_.size(room);
    if (scope == room_scope::local || !cluster_) return local;
    return local + cluster_->remote_room_size(room);
  }
  publish_result publish(std::string_view room, bytes_view payload, const send_options& o, session_id except) {
    check_room_name(room);
    publish_result r;
    auto encoded = encode_once(payload, o);
    if (!encoded) {
      r.cluster = errc::message_too_large;
      return r;
    }
    r.local = fan_out(room, except, encoded, (o.flags & flags::high_priority) != 0);
    if (cluster_) r.cluster = cluster_->publish_room(room, except, *encoded);
    return r;
  }

  // ---- cluster_host ----
  std::shared_ptr<session_core> find_local(session_id s) const override { return find(s); }
  void deliver_to_room(std::string_view room, session_id except, bytes_view encoded) override {
    fan_out(room, except, std::make_shared<const byte_buffer>(to_buffer(encoded)), false);
  }
  void for_each_local_room(const std::function<void(std::string_view, std::size_t)>& f) const override {
    rooms_.for_each_room(f);
  }

 private:
  std::size_t fan_out(std::string_view room, session_id except, const std::shared_ptr<const byte_buffer>& encoded,
                      bool high) {
    const std::size_t n = rooms_.fan_out(room, except, [&](session_core& s) { return !s.send_shared(encoded, high); });
    room_deliveries_.fetch_add(n, std::memory_order_relaxed);
    return n;
  }
};

}  // namespace detail

// ---- server_builder (the setters: server_builder.cpp) ----

server server_builder::build() {
  if (cfg_->listeners.empty()) throw std::invalid_argument("server: no listener (call listen)");
  auto impl = std::make_shared<detail::server_impl>(std::move(*cfg_));
  cfg_ = std::make_unique<server_config>();
  return server(std::move(impl));
}

// ---- server ----

server::server(std::shared_ptr<detail::server_impl> impl) : impl_(std::move(impl)) {}
server::server(server&&) noexcept = default;
server& server::operator=(server&&) noexcept = default;
server::~server() {
  if (impl_) impl_->stop(std::chrono::seconds(5));
}

error_info server::start() { return impl_->start(); }
std::vector<std::pair<std::string, std::string>> server::local_addresses() const { return impl_->local_addresses(); }
std::error_code server::send(session_id s, bytes_view payload, const send_options& o) { return impl_->send(s, payload, o); }
void server::request_impl(session_id s, bytes_view payload, std::chrono::milliseconds timeout, const send_options& o,
                          boost::asio::any_completion_handler<void(std::error_code, packet)> h) {
  impl_->request(s, payload, timeout, o, std::move(h));
}
std::size_t server::broadcast(bytes_view payload, const send_options& o) {
  return impl_->broadcast(impl_->all_sessions(), payload, o);
}
std::size_t server::broadcast(std::span<const session_id> targets, bytes_view payload, const send_options& o) {
  std::vector<std::shared_ptr<detail::session_core>> v;
  for (auto id : targets)
    if (auto s = impl_->find(id)) v.push_back(std::move(s));
  return impl_->broadcast(v, payload, o);
}
std::error_code server::close(session_id s, std::string detail) {
  if (impl_->remote(s)) return impl_->close_remote(s, detail);
  auto core = impl_->find(s);
  if (!core) return errc::unknown_session;
  core->close(close_info{close_reason::normal, {}, detail.empty() ? "closed by the server" : std::move(detail)});
  return {};
}
std::error_code server::join(session_id s, std::string_view room) { return impl_->join(s, room); }
std::error_code server::leave(session_id s, std::string_view room) { return impl_->leave(s, room); }
void server::leave_all(session_id s) { impl_->leave_all(s); }
std::vector<std::string> server::rooms_of(session_id s) const { return impl_->rooms_of(s); }
std::size_t server::room_size(std::string_view room, room_scope scope) const { return impl_->room_size(room, scope); }
publish_result server::publish(std::string_view room, bytes_view payload, const send_options& o, session_id except) {
  return impl_->publish(room, payload, o, except);
}
std::vector<session_id> server::sessions() const { return impl_->session_ids(); }
std::optional<connection_info> server::info(session_id s) const {
  auto core = impl_->find(s);
  if (!core) return std::nullopt;
  return core->info();
}
std::shared_ptr<const identity> server::identity(session_id s) const {
  auto core = impl_->find(s);
  return core ? core->identity() : nullptr;
}
error_info server::reload_tls() { return impl_->reload_tls(); }
server_stats server::stats() const { return impl_->stats(); }
event_stream& server::events() { return impl_->events(); }
std::error_code server::stop(std::chrono::milliseconds timeout) {
  // It waits for the loops to close the sessions: from one of them it would wait for itself.
  if (impl_->on_loop_thread()) return errc::wrong_thread;
  impl_->stop(timeout);
  return {};
}

}  // namespace msgtrans

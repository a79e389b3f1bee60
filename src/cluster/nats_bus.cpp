// cluster_bus on NATS core, through Debian's libnats (cnats 3.4).
//
// Threads. cnats calls us back on its own threads: connection events (disconnected,
// reconnected, closed) on its one asynchronous-callback thread, messages on its global
// delivery pool (natsOptions_UseGlobalMessageDelivery). We use the pool, not a thread
// per subscription, because the runtime subscribes one subject per room with local
// members: thousands of rooms must not mean thousands of threads. cnats keeps the order
// per subscription on the pool and hands one subscription to one pool thread, so one
// subject never has two deliveries at once (the contract). The pool size is a process
// setting (nats_SetMessageDeliveryPoolSize) that a library must not change; its default
// is one thread.
//
// Outages. The reconnect buffer is one byte, so cnats queues nothing while it is away
// (a publish fails with NATS_INSUFFICIENT_BUFFER), and publish() checks our own state
// first: errc::not_connected from the moment the disconnected callback has run until
// the reconnected one. What was written to the socket just before the server died is
// lost (NATS core is at-most-once). cnats re-sends every SUB itself on reconnect.
//
// Stopping. Message callbacks pass through a gate (the mutex, `stopping_`, the
// subscription map and an in-flight count): stop() closes the gate and waits for the
// deliveries inside it, so no on_message runs after stop() returns. cnats may still run
// a subscription's callback (which then only touches `core`) until that subscription's
// on-complete callback, and the closed callback after natsConnection_Close; stop() waits
// for both before `core` is freed. If cnats were ever to miss one within 10 s, `core` is
// leaked rather than freed under a running callback. Unsubscribed natsSubscriptions are
// destroyed late, for a cnats 3.4.1 race (see bury()).
#include <msgtrans/cluster.hpp>

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace msgtrans {

std::string_view to_string(bus_state s) noexcept {
  switch (s) {
    case bus_state::connecting: return "connecting";
    case bus_state::connected: return "connected";
    case bus_state::reconnecting: return "reconnecting";
    case bus_state::closed: return "closed";
  }
  return "unknown";
}

namespace {

constexpr auto drain_bound = std::chrono::seconds(10);

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

void validate(const nats_cluster_config& c) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("nats_cluster_config." + what); };
  if (c.servers.empty()) bad("servers is empty");
  for (const auto& s : c.servers) {
    const bool scheme = starts_with(s, "nats://") || starts_with(s, "tls://");
    if (!scheme || s.size() == s.find("//") + 2)
      bad("servers: \"" + s + "\" is not a nats://host:port or tls://host:port URL");
  }
  if (c.user.empty() != c.password.empty())
    bad(c.user.empty() ? "user is empty but password is set (both or neither)"
                       : "password is empty but user is set (both or neither)");
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    bad(c.tls_cert_file.empty() ? "tls_cert_file is empty but tls_key_file is set (both or neither)"
                                : "tls_key_file is empty but tls_cert_file is set (both or neither)");
  if (c.cluster_name.empty()) bad("cluster_name is empty");
  if (c.connect_timeout.count() <= 0) bad("connect_timeout must be positive");
  if (c.reconnect_wait.count() <= 0) bad("reconnect_wait must be positive");
  if (c.presence_interval.count() <= 0) bad("presence_interval must be positive");
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Everything cnats's callbacks may touch; outlives the bus object when it must.
struct core {
  nats_cluster_config cfg;
  cluster_bus::message_handler on_message;
  cluster_bus::state_handler on_state;
  natsConnection* nc = nullptr;  // written by start() and stop() only, under nc_mu
  std::shared_mutex nc_mu;       // publish() shares it; stop() takes it to clear nc
  std::atomic<bus_state> state{bus_state::connecting};

  std::mutex mu;  // subs, stopping, in_flight, live_subs, closed_seen, url
  std::condition_variable cv;
  std::map<std::string, natsSubscription*, std::less<>> subs;
  bool stopping = false;
  int in_flight = 0;   // on_message calls running now
  int live_subs = 0;   // subscriptions whose on-complete callback has not run
  bool closed_seen = false;
  std::string url;     // the server connected to last
  // Unsubscribed, not yet destroyed (see bury()).
  std::deque<std::pair<std::chrono::steady_clock::time_point, natsSubscription*>> graveyard;

  std::mutex state_mu;  // serialises on_state calls

  // Sets the state and reports it; with `only_from`, only if the state is that one.
  void notify_state(bus_state s, const std::string& detail, std::optional<bus_state> only_from = {}) {
    std::lock_guard lock(state_mu);
    if (only_from && state.load() != *only_from) return;
    state.store(s);
    try {
      if (on_state) on_state(s, detail);
    } catch (...) {  // must not unwind into cnats
    }
  }
};

// cnats 3.4.1's read loop takes a subscription from its table and uses it after
// releasing the table's lock without a reference (nats.c issue #637, fixed in 3.6), so
// a natsSubscription_Destroy racing with an inbound message for it can free it under
// the read loop. We keep our reference for `grace` after natsSubscription_Unsubscribe
// (which takes it out of the table at once): the read loop's window is a few
// instructions and one allocation. stop() destroys the rest after natsConnection_Close,
// which joins the read loop.
constexpr auto grace = std::chrono::seconds(5);

// Caller holds c.mu.
void bury(core& c, natsSubscription* sub) {
  c.graveyard.emplace_back(std::chrono::steady_clock::now(), sub);
}

// Destroys the subscriptions unsubscribed more than `grace` ago. Caller holds c.mu.
void sweep(core& c) {
  const auto now = std::chrono::steady_clock::now();
  while (!c.graveyard.empty() && now - c.graveyard.front().first > grace) {
    natsSubscription_Destroy(c.graveyard.front().second);
    c.graveyard.pop_front();
  }
}

thread_local const core* delivering = nullptr;  // set while on_message runs

std::string connected_url(natsConnection* nc) {
  char buf[512] = {};
  if (natsConnection_GetConnectedUrl(nc, buf, sizeof buf) != NATS_OK) return {};
  return buf;
}

void on_msg(natsConnection*, natsSubscription* sub, natsMsg* msg, void* closure) {
  auto* c = static_cast<core*>(closure);
  std::string_view subject = natsMsg_GetSubject(msg);
  {
    std::lock_guard lock(c->mu);
    auto it = c->subs.find(subject);
    if (c->stopping || it == c->subs.end() || it->second != sub) {
      natsMsg_Destroy(msg);
      return;
    }
    ++c->in_flight;
  }
  const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(msg));
  delivering = c;
  try {
    c->on_message(subject, bytes_view(data, static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
  } catch (...) {  // a handler's exception must not unwind into C
  }
  delivering = nullptr;
  natsMsg_Destroy(msg);
  std::lock_guard lock(c->mu);
  if (--c->in_flight == 0) c->cv.notify_all();
}

void on_sub_complete(void* closure) {
  auto* c = static_cast<core*>(closure);
  std::lock_guard lock(c->mu);
  if (--c->live_subs == 0) c->cv.notify_all();
}

void on_disconnected(natsConnection*, void* closure) {
  auto* c = static_cast<core*>(closure);
  std::string url;
  {
    std::lock_guard lock(c->mu);
    if (c->stopping) return;
    url = c->url;
  }
  c->notify_state(bus_state::reconnecting, "nats: lost " + url + "; reconnecting to " + join(c->cfg.servers));
}

void on_reconnected(natsConnection* nc, void* closure) {
  auto* c = static_cast<core*>(closure);
  std::string url = connected_url(nc);
  {
    std::lock_guard lock(c->mu);
    if (c->stopping) return;
    c->url = url;
  }
  // cnats wrote our SUBs again before this callback, but the server may not have read them
  // yet: a PING/PONG round trip makes "connected" mean that another node's publish from
  // now on reaches our subscriptions (bounded, on cnats's callback thread).
  (void)natsConnection_FlushTimeout(nc, 1000);
  c->notify_state(bus_state::connected, "nats: reconnected to " + url);
}

void on_closed(natsConnection* nc, void* closure) {
  auto* c = static_cast<core*>(closure);
  bool stopping = false;
  {
    std::lock_guard lock(c->mu);
    stopping = c->stopping;
  }
  std::string detail = "nats: connection closed";
  if (!stopping) {
    const char* err = nullptr;
    if (natsConnection_GetLastError(nc, &err) != NATS_OK && err != nullptr && *err) detail += std::string(": ") + err;
  }
  c->notify_state(bus_state::closed, detail);
  std::lock_guard lock(c->mu);
  c->closed_seen = true;
  c->cv.notify_all();
}

// The status text, plus cnats's last error of this thread when it says more
// ("Authorization Violation"), without its "(conn.c:1905): " source position.
std::string status_text(natsStatus s) {
  std::string text = natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  std::string_view more = last != nullptr ? last : "";
  if (!more.empty() && more.front() == '(') {
    auto end = more.find("): ");
    if (end != std::string_view::npos) more.remove_prefix(end + 3);
  }
  if (!more.empty() && more != text) text += " (" + std::string(more) + ")";
  return text;
}

// Builds the cnats options from a validated config; on failure, the detail names the
// option (and the file, for the TLS ones).
error_info make_options(core& c, natsOptions** out) {
  natsOptions* o = nullptr;
  natsStatus s = natsOptions_Create(&o);
  if (s != NATS_OK) return {errc::invalid_argument, "nats: natsOptions_Create: " + status_text(s)};
  const auto& cfg = c.cfg;
  std::vector<const char*> urls;
  for (const auto& u : cfg.servers) urls.push_back(u.c_str());
  bool secure = cfg.tls;
  for (const auto& u : cfg.servers) secure = secure || starts_with(u, "tls://");
  const std::string name = cfg.node_name.empty() ? "msgtrans" : cfg.node_name;
  std::string failed;
  auto set = [&](natsStatus r, std::string what = "connection options") {
    if (s == NATS_OK && r != NATS_OK) {
      s = r;
      failed = std::move(what);
    }
  };
  set(natsOptions_SetServers(o, urls.data(), static_cast<int>(urls.size())), "servers");
  set(natsOptions_SetNoRandomize(o, true));
  set(natsOptions_SetName(o, name.c_str()), "node_name");
  set(natsOptions_SetTimeout(o, cfg.connect_timeout.count()));
  set(natsOptions_SetNoEcho(o, true));
  // Write each publish at once. Without it libnats 3.4's flusher thread waits 1 ms for
  // more data before every flush, which added 0.35-0.85 ms to every cross-node delivery
  // (bench/room_fanout.cpp, 1 member per node); the cost is one write per publish, not
  // per member.
  set(natsOptions_SetSendAsap(o, true));
  set(natsOptions_SetAllowReconnect(o, true));
  set(natsOptions_SetMaxReconnect(o, -1));
  set(natsOptions_SetReconnectWait(o, cfg.reconnect_wait.count()));
  set(natsOptions_SetReconnectBufSize(o, 1));  // 0 would mean cnats's 8 MB default
  set(natsOptions_UseGlobalMessageDelivery(o, true));
  if (!cfg.user.empty()) set(natsOptions_SetUserInfo(o, cfg.user.c_str(), cfg.password.c_str()), "user");
  if (!cfg.token.empty()) set(natsOptions_SetToken(o, cfg.token.c_str()), "token");
  if (secure) {
    set(natsOptions_SetSecure(o, true), "tls");
    if (!cfg.tls_ca_file.empty())
      set(natsOptions_LoadCATrustedCertificates(o, cfg.tls_ca_file.c_str()), "tls_ca_file \"" + cfg.tls_ca_file + "\"");
    if (!cfg.tls_cert_file.empty())
      set(natsOptions_LoadCertificatesChain(o, cfg.tls_cert_file.c_str(), cfg.tls_key_file.c_str()),
          "tls_cert_file \"" + cfg.tls_cert_file + "\" / tls_key_file \"" + cfg.tls_key_file + "\"");
    if (cfg.tls_insecure_skip_verify) set(natsOptions_SkipServerVerification(o, true), "tls_insecure_skip_verify");
  }
  set(natsOptions_SetDisconnectedCB(o, on_disconnected, &c));
  set(natsOptions_SetReconnectedCB(o, on_reconnected, &c));
  set(natsOptions_SetClosedCB(o, on_closed, &c));
  if (s != NATS_OK) {
    natsOptions_Destroy(o);
    return {s == NATS_SSL_ERROR || secure ? errc::tls_error : errc::invalid_argument,
            "nats: " + failed + ": " + status_text(s)};
  }
  *out = o;
  return {};
}

class nats_bus final : public cluster_bus {
 public:
  explicit nats_bus(const nats_cluster_config& cfg) : c_(new core) { c_->cfg = cfg; }
  ~nats_bus() override {
    stop();
    if (!leak_) delete c_;  // else a cnats callback may still run on it: leak, never free under it
  }
  nats_bus(const nats_bus&) = delete;
  nats_bus& operator=(const nats_bus&) = delete;

  error_info start(message_handler on_message, state_handler on_state) override;
  std::error_code publish(std::string_view subject, bytes_view data) override;
  std::error_code subscribe(std::string_view subject) override;
  void unsubscribe(std::string_view subject) override;
  bus_state state() const noexcept override { return c_->state.load(); }
  void stop() override;

 private:
  core* c_;
  std::mutex life_mu_;  // start vs stop
  bool started_ = false, stopped_ = false, leak_ = false;
};

error_info nats_bus::start(message_handler on_message, state_handler on_state) {
  std::lock_guard life(life_mu_);
  if (started_ || stopped_) return {errc::invalid_argument, "nats bus: start() called twice or after stop()"};
  started_ = true;
  c_->on_message = std::move(on_message);
  c_->on_state = std::move(on_state);
  natsOptions* opts = nullptr;
  if (auto e = make_options(*c_, &opts)) {
    c_->state.store(bus_state::closed);
    return e;
  }
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    c_->state.store(bus_state::closed);
    return {s == NATS_SSL_ERROR ? errc::tls_error : errc::not_connected,
            "nats: could not connect to " + join(c_->cfg.servers) + " within " +
                std::to_string(c_->cfg.connect_timeout.count()) + " ms each: " + status_text(s)};
  }
  std::string url = connected_url(nc);
  {
    std::scoped_lock lock(c_->mu, c_->nc_mu);
    c_->nc = nc;
    c_->url = url;
  }
  // Unless cnats reported a disconnect in between (then its callbacks carry on).
  c_->notify_state(bus_state::connected, "nats: connected to " + url, bus_state::connecting);
  return {};
}

std::error_code nats_bus::publish(std::string_view subject, bytes_view data) {
  std::shared_lock lock(c_->nc_mu);
  if (c_->nc == nullptr || c_->state.load() != bus_state::connected) return errc::not_connected;
  const std::string subj(subject);
  natsStatus s = natsConnection_Publish(c_->nc, subj.c_str(), data.data(), static_cast<int>(data.size()));
  if (s == NATS_OK) return {};
  if (s == NATS_INVALID_ARG || s == NATS_INVALID_SUBJECT) return errc::invalid_argument;
  if (s == NATS_MAX_PAYLOAD) return errc::message_too_large;
  return errc::not_connected;  // reconnecting (buffer full), closed, or a broken socket
}

std::error_code nats_bus::subscribe(std::string_view subject) {
  std::lock_guard lock(c_->mu);
  if (c_->stopping || c_->nc == nullptr) return errc::not_connected;
  if (c_->subs.contains(subject)) return {};
  sweep(*c_);
  const std::string subj(subject);
  natsSubscription* sub = nullptr;
  natsStatus s = natsConnection_Subscribe(&sub, c_->nc, subj.c_str(), on_msg, c_);
  if (s != NATS_OK) return s == NATS_INVALID_SUBJECT ? errc::invalid_argument : errc::not_connected;
  if (natsSubscription_SetOnCompleteCB(sub, on_sub_complete, c_) != NATS_OK) {
    natsSubscription_Unsubscribe(sub);
    bury(*c_, sub);
    return errc::not_connected;
  }
  ++c_->live_subs;
  c_->subs.emplace(subj, sub);
  return {};
}

void nats_bus::unsubscribe(std::string_view subject) {
  std::lock_guard lock(c_->mu);
  auto it = c_->subs.find(subject);
  if (it == c_->subs.end()) return;
  natsSubscription* sub = it->second;
  c_->subs.erase(it);  // from here on, on_msg drops this subscription's messages
  natsSubscription_Unsubscribe(sub);
  bury(*c_, sub);
  sweep(*c_);
}

void nats_bus::stop() {
  std::lock_guard life(life_mu_);
  if (stopped_) return;
  stopped_ = true;
  std::vector<natsSubscription*> subs;
  bool ok = true;
  const bool in_handler = delivering == c_;
  {
    std::unique_lock lock(c_->mu);
    c_->stopping = true;
    for (auto& [subject, sub] : c_->subs) subs.push_back(sub);
    c_->subs.clear();
    // A handler calling stop() cannot wait for itself: the others are waited for.
    const int self = in_handler ? 1 : 0;
    ok = c_->cv.wait_for(lock, drain_bound, [&] { return c_->in_flight <= self; });
  }
  for (auto* sub : subs) natsSubscription_Unsubscribe(sub);
  if (c_->nc == nullptr) {  // never started, or start() failed
    c_->state.store(bus_state::closed);
    return;
  }
  natsConnection* nc = nullptr;
  {
    std::unique_lock lock(c_->nc_mu);  // no publish() inside natsConnection_Publish now
    nc = std::exchange(c_->nc, nullptr);
  }
  natsConnection_Close(nc);
  {
    // The pool thread running a handler that called stop() cannot complete its own
    // subscription: then only the closed callback is waited for.
    std::unique_lock lock(c_->mu);
    ok = c_->cv.wait_for(lock, drain_bound,
                         [&] { return c_->closed_seen && (in_handler || c_->live_subs == 0); }) && ok;
  }
  for (auto* sub : subs) natsSubscription_Destroy(sub);  // the read loop is joined now
  {
    std::lock_guard lock(c_->mu);
    for (auto& [when, sub] : c_->graveyard) natsSubscription_Destroy(sub);
    c_->graveyard.clear();
  }
  natsConnection_Destroy(nc);
  c_->state.store(bus_state::closed);
  leak_ = !ok || in_handler;
}

}  // namespace

std::unique_ptr<cluster_bus> make_nats_bus(const nats_cluster_config& c) {
  validate(c);
  return std::make_unique<nats_bus>(c);
}

}  // namespace msgtrans

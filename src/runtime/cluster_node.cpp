#include "runtime/cluster_node.hpp"

#include "cluster/envelope.hpp"
#include "cluster/room_name.hpp"

#include <boost/asio/post.hpp>

#include <random>
#include <unistd.h>

namespace msgtrans::detail {

namespace asio = boost::asio;

namespace {

// Presence bodies stay well under NATS's default 1 MiB payload limit.
constexpr std::size_t presence_chunk = 60000;

std::string hex(std::uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof b, "%06x", static_cast<unsigned>(v));
  return b;
}

std::uint16_t wire_error(std::error_code ec) noexcept {
  if (!ec) return 0;
  if (ec.category() == category()) return static_cast<std::uint16_t>(ec.value());
  return static_cast<std::uint16_t>(errc::connection_closed);
}

}  // namespace

std::uint32_t node_id_of(std::string_view name) noexcept {
  std::uint32_t h = 2166136261u;
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  const std::uint32_t id = (h >> 24) ^ (h & 0xFFFFFFu);
  return id == 0 ? 1 : id;
}

std::string default_node_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "node");
  std::random_device rd;
  return std::string(host) + "-" + std::to_string(getpid()) + "-" + hex(rd() & 0xFFFFFFu);
}

cluster_node::cluster_node(std::unique_ptr<cluster_bus> bus, cluster_node_options o, cluster_host& host,
                           asio::io_context& loop)
    : bus_(std::move(bus)), opts_(std::move(o)), host_(host), loop_(loop) {
  if (opts_.node_name.empty()) opts_.node_name = default_node_name();
  id_ = node_id_of(opts_.node_name);
  prefix_ = "msgtrans." + subject_token(opts_.cluster_name);
  own_subject_ = node_subject(id_);
  presence_subject_ = prefix_ + ".p";
}

cluster_node::~cluster_node() { stop(); }

std::string cluster_node::room_subject(std::string_view room) const { return prefix_ + ".r." + subject_token(room); }
std::string cluster_node::node_subject(std::uint32_t node) const { return prefix_ + ".n." + hex(node); }

error_info cluster_node::start() {
  std::weak_ptr<cluster_node> weak = weak_from_this();
  auto e = bus_->start([this](std::string_view subject, bytes_view data) { on_bus_message(subject, data); },
                       [this](bus_state s, std::string_view detail) { on_state(s, detail); });
  if (e) return e;
  if (auto ec = bus_->subscribe(own_subject_)) return error_info{ec, "cluster: cannot subscribe to " + own_subject_};
  if (auto ec = bus_->subscribe(presence_subject_)) return error_info{ec, "cluster: cannot subscribe to " + presence_subject_};
  started_ = true;
  presence_timer_ = std::make_shared<asio::steady_timer>(loop_);
  asio::post(loop_, [weak] {
    if (auto self = weak.lock()) self->publish_presence();
  });
  return {};
}

void cluster_node::stop() {
  if (stopped_.exchange(true)) return;
  if (presence_timer_) asio::post(loop_, [t = presence_timer_] { t->cancel(); });
  bus_->stop();  // no delivery runs after this
  std::unordered_map<std::uint64_t, pending_request> pending;
  {
    std::lock_guard lock(pending_mu_);
    pending.swap(pending_);
  }
  for (auto& [id, p] : pending) {
    asio::post(loop_, [t = p.timer] { t->cancel(); });
    complete_later(std::move(p.handler), loop_, std::error_code(errc::shutting_down), packet{});
  }
}

void cluster_node::interest(std::string_view room, bool interested) {
  if (interested) {
    (void)bus_->subscribe(room_subject(room));  // a failure shows in the bus state
  } else {
    bus_->unsubscribe(room_subject(room));
    std::lock_guard lock(presence_mu_);
    emptied_.emplace(room);
  }
}

std::error_code cluster_node::publish(const std::string& subject, const envelope& e) {
  if (stopped_.load()) return errc::shutting_down;
  const auto bytes = encode(e);
  if (auto ec = bus_->publish(subject, bytes)) {
    publish_errors_.fetch_add(1, std::memory_order_relaxed);
    return ec;
  }
  out_.fetch_add(1, std::memory_order_relaxed);
  return {};
}

std::error_code cluster_node::publish_room(std::string_view room, session_id except, bytes_view encoded) {
  envelope e;
  e.kind = envelope_kind::room;
  e.origin = id_;
  e.session = except.value;
  e.ext = as_bytes(room);
  e.body = encoded;
  return publish(room_subject(room), e);
}

std::error_code cluster_node::send(session_id target, bytes_view encoded, bool high_priority) {
  envelope e;
  e.kind = envelope_kind::send;
  e.origin = id_;
  e.session = target.value;
  e.flags = high_priority ? 1 : 0;
  e.body = encoded;
  return publish(node_subject(static_cast<std::uint32_t>(target.value >> 40)), e);
}

std::error_code cluster_node::close(session_id target, std::string_view detail) {
  envelope e;
  e.kind = envelope_kind::close;
  e.origin = id_;
  e.session = target.value;
  e.body = as_bytes(detail);
  return publish(node_subject(static_cast<std::uint32_t>(target.value >> 40)), e);
}

// Everything about one outgoing request happens on loop_: its timer, the pending entry,
// the publish, the completion (by response, timeout or stop).
void cluster_node::request(session_id target, bytes_view payload, std::chrono::milliseconds timeout,
                           const send_options& o, response_handler h) {
  asio::post(loop_, [self = shared_from_this(), target, timeout, h = std::move(h), data = to_buffer(payload),
                     ext = to_buffer(o.ext_header), biz = o.biz_type, flags = o.flags]() mutable {
    if (self->stopped_.load()) {
      complete_later(std::move(h), self->loop_, std::error_code(errc::shutting_down), packet{});
      return;
    }
    std::uint64_t corr;
    auto timer = std::make_shared<asio::steady_timer>(self->loop_, timeout);
    {
      std::lock_guard lock(self->pending_mu_);
      corr = self->next_correlation_++;
      self->pending_.emplace(corr, pending_request{std::move(h), timer});
    }
    timer->async_wait([weak = std::weak_ptr<cluster_node>(self), corr](boost::system::error_code ec) {
      if (ec) return;
      if (auto s = weak.lock()) s->complete(corr, errc::timeout, packet{});
    });
    envelope e;
    e.kind = envelope_kind::request;
    e.origin = self->id_;
    e.session = target.value;
    e.correlation = corr;
    e.timeout_ms = static_cast<std::uint32_t>(std::min<std::int64_t>(timeout.count(), 0xFFFFFFFF));
    e.biz_type = biz;
    e.flags = flags;
    e.ext = ext;
    e.body = data;
    if (auto ec = self->publish(self->node_subject(static_cast<std::uint32_t>(target.value >> 40)), e))
      self->complete(corr, ec, packet{});
  });
}

void cluster_node::complete(std::uint64_t correlation, std::error_code ec, packet p) {
  // Extracted, not move-assigned: Boost 1.81's any_completion_handler move assignment
  // recurses without end (it copies from an lvalue through its converting constructor).
  decltype(pending_)::node_type n;
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(correlation);
    if (it == pending_.end()) return;  // answered, timed out or stopped already
    n = pending_.extract(it);
  }
  n.mapped().timer->cancel();
  complete_later(std::move(n.mapped().handler), loop_, ec, std::move(p));
}

void cluster_node::on_state(bus_state s, std::string_view) {
  if (s == bus_state::reconnecting) was_lost_ = true;
  if (s == bus_state::connected && was_lost_.exchange(false)) reconnects_.fetch_add(1, std::memory_order_relaxed);
}

// Runs on the bus's thread: room and send deliveries are handed over at once (the
// sessions' own queues are thread-safe); anything that answers goes through loop_.
void cluster_node::on_bus_message(std::string_view, bytes_view data) {
  auto e = decode_envelope(data);
  if (!e) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (e->origin == id_) return;  // our own publish: never delivered twice
  in_.fetch_add(1, std::memory_order_relaxed);
  switch (e->kind) {
    case envelope_kind::room: {
      const auto room = as_string(e->ext);
      if (!room_name_error(room).empty()) {
        malformed_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      host_.deliver_to_room(room, session_id{e->session}, e->body);
      return;
    }
    case envelope_kind::send:
      if (auto s = host_.find_local(session_id{e->session}))
        (void)s->send_shared(std::make_shared<const byte_buffer>(to_buffer(e->body)), (e->flags & 1) != 0);
      return;
    case envelope_kind::close:
      if (auto s = host_.find_local(session_id{e->session})) {
        auto detail = std::string(as_string(e->body));
        s->close(close_info{close_reason::normal, {}, detail.empty() ? "closed by the server" : detail});
      }
      return;
    case envelope_kind::request:
      asio::post(loop_, [weak = weak_from_this(), origin = e->origin, target = e->session, corr = e->correlation,
                         t = e->timeout_ms, biz = e->biz_type, flags = e->flags, ext = to_buffer(e->ext),
                         body = to_buffer(e->body)]() mutable {
        if (auto s = weak.lock()) s->on_request(origin, target, corr, t, biz, flags, std::move(ext), std::move(body));
      });
      return;
    case envelope_kind::response: {
      packet p;
      p.type = packet_type::response;
      p.biz_type = e->biz_type;
      p.flags = e->flags;
      p.ext_header = to_buffer(e->ext);
      p.payload = to_buffer(e->body);
      std::error_code ec;
      if (e->error) ec = static_cast<errc>(e->error);
      asio::post(loop_, [weak = weak_from_this(), corr = e->correlation, ec, p = std::move(p)]() mutable {
        if (auto s = weak.lock()) s->complete(corr, ec, std::move(p));
      });
      return;
    }
    case envelope_kind::presence:
      on_presence(*e);
      return;
  }
}

void cluster_node::on_request(std::uint32_t origin, std::uint64_t target, std::uint64_t corr, std::uint32_t timeout_ms,
                              std::uint8_t biz, std::uint16_t flags, byte_buffer ext, byte_buffer payload) {
  auto reply = [weak = weak_from_this(), origin, corr](std::error_code ec, const packet& p) {
    auto self = weak.lock();
    if (!self) return;
    envelope e;
    e.kind = envelope_kind::response;
    e.origin = self->id_;
    e.correlation = corr;
    e.error = wire_error(ec);
    e.biz_type = p.biz_type;
    e.flags = p.flags;
    e.ext = p.ext_header;
    e.body = p.payload;
    (void)self->publish(self->node_subject(origin), e);
  };
  auto s = host_.find_local(session_id{target});
  if (!s) return reply(errc::unknown_session, packet{});
  send_options o;
  o.biz_type = biz;
  o.flags = flags;
  o.ext_header = ext;
  s->request(payload, std::chrono::milliseconds(timeout_ms), o,
             [reply](std::error_code ec, packet p) { reply(ec, p); });
}

void cluster_node::on_presence(const envelope& e) {
  std::lock_guard lock(presence_mu_);
  auto& entry = presence_[e.origin];
  entry.seen = std::chrono::steady_clock::now();
  const bool ok = for_each_presence(e.body, [&](std::string_view room, std::uint32_t n) {
    if (n == 0) {
      if (auto it = entry.rooms.find(room); it != entry.rooms.end()) entry.rooms.erase(it);
    } else {
      entry.rooms.insert_or_assign(std::string(room), n);
    }
  });
  if (!ok) malformed_.fetch_add(1, std::memory_order_relaxed);
}

void cluster_node::publish_presence() {
  if (stopped_.load()) return;
  std::vector<byte_buffer> bodies(1);
  auto add = [&](std::string_view room, std::uint32_t n) {
    if (bodies.back().size() > presence_chunk) bodies.emplace_back();
    append_presence(bodies.back(), room, n);
  };
  host_.for_each_local_room([&](std::string_view room, std::size_t n) { add(room, static_cast<std::uint32_t>(n)); });
  std::set<std::string, std::less<>> emptied;
  {
    std::lock_guard lock(presence_mu_);
    emptied.swap(emptied_);
  }
  // A room that emptied and filled again since the last report was reported above.
  for (auto& room : emptied) add(room, 0);
  for (auto& body : bodies) {
    envelope e;
    e.kind = envelope_kind::presence;
    e.origin = id_;
    e.body = body;
    (void)publish(presence_subject_, e);  // a failure is counted; the next round repeats it
  }
  presence_timer_->expires_after(opts_.presence_interval);
  presence_timer_->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto s = weak.lock()) s->publish_presence();
  });
}

std::size_t cluster_node::remote_room_size(std::string_view room) const {
  const auto fresh = std::chrono::steady_clock::now() - 3 * opts_.presence_interval;
  std::lock_guard lock(presence_mu_);
  std::size_t n = 0;
  for (auto& [node, entry] : presence_) {
    if (entry.seen < fresh) continue;
    if (auto it = entry.rooms.find(room); it != entry.rooms.end()) n += it->second;
  }
  return n;
}

void cluster_node::fill_stats(server_stats& st) const {
  st.cluster_state = std::string(to_string(bus_->state()));
  st.cluster_messages_out = out_.load(std::memory_order_relaxed);
  st.cluster_messages_in = in_.load(std::memory_order_relaxed);
  st.cluster_publish_errors = publish_errors_.load(std::memory_order_relaxed);
  st.cluster_malformed = malformed_.load(std::memory_order_relaxed);
  st.cluster_reconnects = reconnects_.load(std::memory_order_relaxed);
}

}  // namespace msgtrans::detail

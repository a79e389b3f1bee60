#include "runtime/session_core.hpp"

#include "auth/auth_service.hpp"
#include "core/scratch_region.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <limits>

namespace msgtrans::detail {

namespace asio = boost::asio;

namespace {
// Null for the many connections without a client certificate: 16 bytes per session.
std::shared_ptr<const peer_certificate> shared_certificate(const connection& c) {
  auto cert = c.peer_certificate_info();
  return cert ? std::make_shared<const peer_certificate>(std::move(*cert)) : nullptr;
}
}  // namespace

session_core::session_core(session_host& host, asio::io_context& loop, std::unique_ptr<connection> conn, session_id id,
                           const session_options& opts, bool server_side)
    : host_(host),
      loop_(loop),
      conn_(std::move(conn)),
      endpoint_(conn_->info()),
      certificate_(shared_certificate(*conn_)),
      id_(id),
      opts_(opts),
      established_at_(std::chrono::system_clock::now()),
      report_sent_(host.wants_sent()),
      out_(opts.write_high_water),
      timer_(loop),
      deadlines_(opts, server_side) {
  if (opts.backpressure == backpressure_mode::wait) room_ = std::make_unique<room_wait>();
  if (opts.max_messages_per_second || opts.max_bytes_per_second) {
    rate_ = std::make_unique<rate_state>();
    if (opts.max_messages_per_second)
      rate_->message_cost = std::max<std::int64_t>(1, 1'000'000'000 / static_cast<std::int64_t>(opts.max_messages_per_second));
    rate_->byte_rate = opts.max_bytes_per_second;
    rate_->burst = std::chrono::duration_cast<std::chrono::nanoseconds>(opts.rate_burst).count();
  }
}

session_core::~session_core() = default;

connection_info session_core::info() const {
  connection_info i;
  i.session = id_;
  i.endpoint = endpoint_;
  i.established_at = established_at_;
  i.packets_in = packets_in_.load(std::memory_order_relaxed);
  i.packets_out = packets_out_.load(std::memory_order_relaxed);
  i.bytes_in = bytes_in_.load(std::memory_order_relaxed);
  i.bytes_out = bytes_out_.load(std::memory_order_relaxed);
  i.write_batches = batches_out_.load(std::memory_order_relaxed);
  i.identity = identity();
  if (certificate_) i.certificate = *certificate_;
  return i;
}

void session_core::start(bool defer_established) {
  started_ = true;
  deadlines_.start(clock::now());
  if (report_sent_) {
    sent_ = std::make_unique<sent_state>();
    sent_->by_ack = conn_->report_acks();
  }
  if (host_.authenticates() && !(identity_ = conn_->authenticated_identity())) {
    auth_ = std::make_unique<auth_wait>();  // on_packet takes the first packet as credentials
    defer_established = true;
  }
  if (!defer_established) report_established();
  if (state_.load() == state::open) conn_->start(*this);
  arm_timer();
}

void session_core::report_established() {
  established_.store(true, std::memory_order_release);
  host_.session_established(*this);
}

// ---- the send path: admit (any thread), then enqueue (the loop) ----

std::error_code session_core::refuse(std::size_t n) {
  bool first = false;
  auto ec = out_.admit(n, &first);
  if (!ec) return {};  // the queue drained meanwhile
  host_.counters().queue_full.fetch_add(1, std::memory_order_relaxed);
  // Stop taking input from a peer whose answers cannot be written.
  if (on_loop()) update_reading();
  else if (first) asio::post(loop_, [self = shared_from_this()] { self->update_reading(); });
  return ec;
}

std::error_code session_core::wait_until_room(std::size_t n) {
  // A loop thread cannot wait: the loop it waits for may be its own.
  if (on_loop() || host_.on_loop_thread()) return errc::wrong_thread;
  // Wait for the queue to drain below the mark (bounded by request_timeout).
  room_waiters_.fetch_add(1);
  std::unique_lock lock(room_->mu);
  room_->cv.wait_for(lock, opts_.request_timeout, [&] {
    return !out_.would_refuse(n) || state_.load(std::memory_order_acquire) != state::open;
  });
  room_waiters_.fetch_sub(1);
  if (state_.load(std::memory_order_acquire) != state::open) return errc::connection_closed;
  return {};
}

std::error_code session_core::send(packet_type type, std::uint32_t response_id, bytes_view payload,
                                   const send_options& o) {
  if (state_.load(std::memory_order_acquire) != state::open) return errc::connection_closed;
  if (o.ext_header.size() > 0xFFFF) return errc::invalid_argument;
  const std::size_t n = outgoing_packet::plain_size(payload, o);
  if (auto ec = wait_for_room(n)) return ec;
  if (on_loop()) return enqueue(type, response_id, payload, o, false);

  // From another thread: admit, copy, then hand over to the loop.
  if (auto ec = admit(n)) return ec;
  out_.posted_add(n);
  asio::post(loop_, [self = shared_from_this(), type, response_id, n, data = to_buffer(payload),
                     ext = to_buffer(o.ext_header), biz = o.biz_type, flags = o.flags, comp = o.compression] {
    self->out_.posted_sub(n);
    // Admitted already: queue it even if the mark moved meanwhile, so a send that
    // returned success is never dropped.
    (void)self->enqueue(type, response_id, data, send_options{biz, ext, flags, comp}, true);
  });
  return {};
}

std::error_code session_core::send_shared(const std::shared_ptr<const byte_buffer>& encoded, bool high) {
  if (state_.load(std::memory_order_acquire) != state::open) return errc::connection_closed;
  if (on_loop()) return enqueue_shared(encoded, high, false);
  if (auto ec = admit(encoded->size())) return ec;
  out_.posted_add(encoded->size());
  asio::post(loop_, [self = shared_from_this(), encoded, high] {
    self->out_.posted_sub(encoded->size());
    (void)self->enqueue_shared(encoded, high, true);
  });
  return {};
}

void session_core::request(bytes_view payload, std::chrono::milliseconds timeout, const send_options& o,
                           response_handler h) {
  std::error_code ec;
  if (state_.load(std::memory_order_acquire) != state::open) ec = errc::connection_closed;
  else if (o.ext_header.size() > 0xFFFF) ec = errc::invalid_argument;
  else if (on_loop()) {
    new_request r{timeout, h};
    ec = enqueue(packet_type::request, 0, payload, o, false, &r);
  } else {
    const std::size_t n = outgoing_packet::plain_size(payload, o);
    if (!(ec = admit(n))) {
      out_.posted_add(n);
      asio::post(loop_, [self = shared_from_this(), n, timeout, h = std::move(h), data = to_buffer(payload),
                         ext = to_buffer(o.ext_header), biz = o.biz_type, flags = o.flags,
                         comp = o.compression]() mutable {
        self->out_.posted_sub(n);
        new_request r{timeout, h};
        auto e = self->enqueue(packet_type::request, 0, data, send_options{biz, ext, flags, comp}, true, &r);
        if (e) complete_later(std::move(h), self->loop_, e, packet{});
      });
      return;
    }
  }
  if (ec) complete_later(std::move(h), loop_, ec, packet{});
}

std::error_code session_core::enqueue(packet_type type, std::uint32_t id, bytes_view payload, const send_options& o,
                                      bool admitted, new_request* r) {
  if (state_.load(std::memory_order_relaxed) != state::open) return errc::connection_closed;
  outgoing_packet p(type, id, payload, o, opts_);
  if (auto ec = p.error()) return ec;
  if (!admitted)
    if (auto ec = admit(p.size())) return ec;
  if (type != packet_type::response) p.set_message_id(id = ids_.next());
  if (r) register_request(id, *r);
  out_.push(p);
  queued();
  return {};
}

std::error_code session_core::enqueue_shared(const std::shared_ptr<const byte_buffer>& encoded, bool high,
                                             bool admitted) {
  if (state_.load(std::memory_order_relaxed) != state::open) return errc::connection_closed;
  if (!admitted)
    if (auto ec = admit(encoded->size())) return ec;
  out_.push_shared(encoded, high);
  queued();
  return {};
}

void session_core::register_request(std::uint32_t id, new_request& r) {
  const auto now = clock::now();
  const auto deadline = now + r.timeout;
  if (!requests_) requests_ = std::make_unique<request_table<response_handler>>();  // first request
  requests_->add(id, now, deadline, std::move(r.done));
  host_.counters().requests_in_flight.fetch_add(1, std::memory_order_relaxed);
  if (deadline < timer_at_) arm_timer();
}

void session_core::queued() {
  deadlines_.sent(clock::now());
  schedule_flush();
  // Queuing can only start a pause (the queue reached the mark, or a send was refused);
  // ending one is on_write_done's.
  if (out_.may_pause()) update_reading();
}

void session_core::schedule_flush() {
  if (flush_posted_ || writing_) return;
  flush_posted_ = true;
  asio::post(loop_, [self = shared_from_this()] { self->flush(); });
}

void session_core::flush() {
  flush_posted_ = false;
  if (writing_ || state_.load(std::memory_order_relaxed) == state::closed) return;
  if (!out_.has_pending()) {
    if (state_.load(std::memory_order_relaxed) == state::closing) conn_->close(pending_close());
    return;
  }
  writing_ = true;
  conn_->write(out_.take_batch());
}

void session_core::on_write_done() {
  writing_ = false;
  if (report_sent_) collect_sent();
  const auto done = out_.batch_done();
  bytes_out_.store(bytes_out_.load(std::memory_order_relaxed) + done.bytes, std::memory_order_relaxed);
  packets_out_.store(packets_out_.load(std::memory_order_relaxed) + done.packets, std::memory_order_relaxed);
  batches_out_.store(batches_out_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  auto& c = host_.counters();
  c.bytes_out.fetch_add(done.bytes, std::memory_order_relaxed);
  c.packets_out.fetch_add(done.packets, std::memory_order_relaxed);
  update_reading();
  // Pairs with the waiter's increment (Dekker): either it sees the new queue size, or
  // we see it waiting.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (room_waiters_.load(std::memory_order_relaxed) > 0) {  // only in backpressure_mode::wait
    std::lock_guard lock(room_->mu);
    room_->cv.notify_all();
  }
  if (report_sent_ && !sent_->ids.empty()) deliver_sent();
  if (out_.has_pending()) {
    flush();
  } else if (state_.load(std::memory_order_relaxed) == state::closing && !writing_) {
    conn_->close(pending_close());
  }
}

void session_core::update_reading() {
  const bool paused_by_queue = out_.update_pause();
  const bool want = !paused_by_queue && !paused_by_events_ && !paused_by_rate_ && !(auth_ && auth_->asked);
  if (want != reading_ && state_.load(std::memory_order_relaxed) == state::open && started_) {
    reading_ = want;
    conn_->set_reading(want);
  }
}

void session_core::set_event_backpressure(bool paused) {
  auto run = [self = shared_from_this(), paused] {
    self->paused_by_events_ = paused;
    self->update_reading();
  };
  if (on_loop()) run();
  else asio::post(loop_, std::move(run));
}

void session_core::inbound_request_done() noexcept {
  host_.counters().inbound_requests_open.fetch_sub(1, std::memory_order_acq_rel);
  host_.request_answered();
}

void session_core::close(close_info info) {
  auto run = [self = shared_from_this(), info = std::move(info)]() mutable {
    session_core& s = *self;
    if (s.state_.load() != state::open) return;
    s.state_.store(state::closing, std::memory_order_release);
    s.pending_close_ = std::make_unique<close_info>(std::move(info));
    // A peer that does not read must not hold the close up forever.
    s.deadlines_.closing(clock::now());
    s.arm_timer();
    if (!s.writing_ && !s.flush_posted_) s.flush();
  };
  if (on_loop()) run();
  else asio::post(loop_, std::move(run));
}

// ---- sent events ----

// The message ids of the batch just written (its views are valid until batch_done).
void session_core::collect_sent() {
  for (const bytes_view& p : out_.batch()) {
    auto h = decode_header(p, decode_limits{std::numeric_limits<std::size_t>::max(), 0xFFFF});
    if (!h) continue;  // encoded here: cannot happen
    const bool report = !(h->type == packet_type::one_way && opts_.heartbeat_biz_type &&
                          h->biz_type == *opts_.heartbeat_biz_type);  // keep-alive only
    if (sent_->by_ack && sent_->acked_ahead > 0) --sent_->acked_ahead;  // its ack came before this write_done
    else if (sent_->by_ack) {
      sent_->unacked.emplace_back(h->message_id, report);
      continue;
    }
    if (report) sent_->ids.push_back(h->message_id);
  }
}

void session_core::deliver_sent() {
  // A handler may close the connection: nothing is reported after on_closed.
  auto& ids = sent_->ids;
  for (std::size_t i = 0; i < ids.size() && state_.load(std::memory_order_relaxed) != state::closed; ++i)
    host_.session_sent(*this, ids[i]);
  ids.clear();
}

void session_core::on_acked(std::size_t packets) {
  if (!sent_ || !sent_->by_ack || state_.load(std::memory_order_relaxed) == state::closed) return;
  auto& s = *sent_;
  for (; packets > 0 && !s.unacked.empty(); --packets) {
    auto [id, report] = s.unacked.front();
    s.unacked.pop_front();
    if (report) s.ids.push_back(id);
  }
  s.acked_ahead += packets;
  deliver_sent();
}

// ---- receiving ----

void session_core::protocol_violation(std::error_code ec, std::string detail) {
  if (state_.load() == state::closed) return;
  state_.store(state::closing, std::memory_order_release);
  // A peer that breaks the protocol is not owed a flush.
  conn_->close(close_info{close_reason::protocol_error, ec, std::move(detail)});
}

void session_core::on_packet(bytes_view bytes) {
  if (state_.load(std::memory_order_relaxed) == state::closed) return;
  if (auth_) [[unlikely]]
    return on_auth_packet(bytes);
  auto v = decode_view(bytes, opts_.limits());
  if (!v) return protocol_violation(v.error(), "packet rejected: " + v.error().message());
  const auto now = clock::now();
  deadlines_.received(now);
  if (rate_ && !within_rate(now, bytes.size())) [[unlikely]]
    return;
  packets_in_.store(packets_in_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  bytes_in_.store(bytes_in_.load(std::memory_order_relaxed) + bytes.size(), std::memory_order_relaxed);
  auto& c = host_.counters();
  c.packets_in.fetch_add(1, std::memory_order_relaxed);
  c.bytes_in.fetch_add(bytes.size(), std::memory_order_relaxed);
  if (v->header.compression == compression::none) return dispatch(*v, v->payload);
  on_compressed(*v);
}

void session_core::on_compressed(const packet_view& v) {
  // Decompress into the loop's scratch region (a nested call on this thread, e.g. from a
  // handler, gets a buffer of its own); its large pages go back to the OS afterwards, so
  // an idle connection holds nothing of it. The bytes count against the inbound budget
  // while the handler runs.
  auto& region = thread_scratch();
  byte_buffer own;
  std::span<std::byte> space;
  if (!region.busy()) space = region.acquire(opts_.max_message_size);
  const bool in_region = !space.empty();
  result<std::size_t> n = std::size_t{0};
  if (in_region) n = decompress_into(v.header.compression, v.payload, space);
  else if (auto ec = decompress(v.header.compression, v.payload, opts_.max_message_size, own)) n = ec;
  else n = own.size();
  struct release_guard {
    scratch_region* r;
    inbound_budget* b;
    std::size_t used;
    ~release_guard() {
      if (r) r->done(used);
      if (b) b->release(used);
    }
  } guard{in_region ? &region : nullptr, nullptr, n ? *n : space.size()};  // a failed one may have filled it
  if (!n) return protocol_violation(n.error(), "payload rejected: " + n.error().message());
  if (auto* b = host_.budget()) {
    b->force_acquire(*n);
    guard.b = b;
  }
  dispatch(v, in_region ? bytes_view{space.data(), *n} : bytes_view{own});
}

void session_core::dispatch(const packet_view& v, bytes_view payload) {
  switch (v.header.type) {
    case packet_type::response:
      return dispatch_response(v, payload);
    case packet_type::request: {
      message m{id_, v.header, v.ext_header, payload, identity_.get()};
      host_.counters().inbound_requests_open.fetch_add(1, std::memory_order_acq_rel);
      msgtrans::request r(m, responder(shared_from_this(), v.header.message_id, v.header.biz_type,
                                       deadlines_.last_received()));
      host_.session_request(*this, r);
      return;
    }
    case packet_type::one_way: {
      if (opts_.heartbeat_biz_type && v.header.biz_type == *opts_.heartbeat_biz_type) return;  // keep-alive only
      message m{id_, v.header, v.ext_header, payload, identity_.get()};
      host_.session_message(*this, m);
      return;
    }
  }
}

void session_core::dispatch_response(const packet_view& v, bytes_view payload) {
  if (!requests_) return;  // never sent a request: nothing awaits a response
  auto e = requests_->take(v.header.message_id);
  if (!e) return;  // late (timed out) or unknown: the requester was already told
  auto& c = host_.counters();
  c.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
  c.request_latency.record(deadlines_.last_received() - e->started);
  packet p;
  p.type = packet_type::response;
  p.biz_type = v.header.biz_type;
  p.message_id = v.header.message_id;
  p.flags = v.header.flags;
  p.compression = v.header.compression;
  p.ext_header = to_buffer(v.ext_header);
  p.payload = to_buffer(payload);
  // A server that authenticates answers a request sent before authentication with a
  // rejection (auth_service.hpp): the requester hears unauthenticated, the reason in the payload.
  std::error_code ec;
  if (!v.ext_header.empty() && is_auth_ext(v.ext_header)) [[unlikely]]
    if (auto a = parse_auth_answer(payload); a && !a->first) {
      ec = errc::unauthenticated;
      p.payload = to_buffer(as_bytes(a->second));
    }
  auto ex = asio::get_associated_executor(e->done);
  asio::dispatch(ex, [h = std::move(e->done), p = std::move(p), ec]() mutable { std::move(h)(ec, std::move(p)); });
}

void session_core::on_closed(close_info info) {
  if (state_.exchange(state::closed) == state::closed) return;
  auto self = shared_from_this();  // the host drops its reference in session_closed
  timer_.cancel();
  if (room_) {
    std::lock_guard lock(room_->mu);
    room_->cv.notify_all();
  }
  if (info.reason == close_reason::protocol_error)
    host_.counters().protocol_errors.fetch_add(1, std::memory_order_relaxed);
  fail_all_requests(errc::connection_closed);
  host_.session_closed(*this, info);
  // The transport is in its own callback: let it unwind before it is destroyed.
  asio::post(loop_, [self = shared_from_this()] { self->conn_.reset(); });
}

void session_core::fail_all_requests(std::error_code ec) {
  auto& c = host_.counters();
  if (!requests_) return;
  requests_->clear([&](std::uint32_t, auto& e) {
    c.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
    complete_later(std::move(e.done), loop_, std::error_code(ec), packet{});
  });
}

// ---- the one timer, armed from the deadline calculator ----

void session_core::arm_timer() {
  if (state_.load(std::memory_order_relaxed) == state::closed) return;
  const auto next = deadlines_.next(requests_ ? requests_->next_deadline() : std::nullopt);
  if (next == timer_at_) return;
  timer_at_ = next;
  if (next == clock::time_point::max()) {
    timer_.cancel();
    return;
  }
  timer_.expires_at(next);
  // Pending for as long as the connection idles: a block of its own size (op_allocator).
  timer_.async_wait(asio::bind_allocator(op_allocator<void>{}, [self = shared_from_this(),
                                                                 next](boost::system::error_code ec) {
    if (ec || self->timer_at_ != next) return;  // re-armed or cancelled
    self->timer_at_ = clock::time_point::max();
    self->on_timer();
  }));
}

void session_core::on_timer() {
  const auto now = clock::now();
  const auto s = state_.load(std::memory_order_relaxed);
  if (s == state::closed) return;
  const auto due = deadlines_.due(now, requests_ ? requests_->next_deadline() : std::nullopt);
  if (s == state::closing) {
    if (due.close_flush) return conn_->close(pending_close());
    return arm_timer();
  }
  if (due.requests) expire_requests(now);
  if (due.resume) resume_after_rate(now);
  if (due.first_packet) return close_for(close_reason::handshake_timeout, "no packet within first_packet_timeout");
  if (due.idle) return close_for(close_reason::idle_timeout, "nothing received within idle_timeout");
  if (due.heartbeat) {
    send_options o;
    o.biz_type = *opts_.heartbeat_biz_type;
    (void)enqueue(packet_type::one_way, 0, {}, o, false);
    deadlines_.sent(now);  // even if refused: the queue is busy, the link is not idle
  }
  arm_timer();
}

void session_core::expire_requests(clock::time_point now) {
  auto& c = host_.counters();
  requests_->expire(now, [&](std::uint32_t, auto& e) {
    c.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
    c.request_timeouts.fetch_add(1, std::memory_order_relaxed);
    complete_later(std::move(e.done), loop_, std::error_code(errc::timeout), packet{});
  });
}

// ---- rate limits ----

namespace {
std::int64_t ns_of(session_core::clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
}  // namespace

bool session_core::within_rate(clock::time_point now, std::size_t n) {
  rate_state& r = *rate_;
  const std::int64_t t = ns_of(now);
  const std::int64_t mc = r.message_cost;
  // n <= 2^33 (over max_message_size, capped by the header's u32), so n * 1e9 fits.
  const std::int64_t bc =
      r.byte_rate ? static_cast<std::int64_t>(std::min<std::uint64_t>(n, std::uint64_t{1} << 33) * 1'000'000'000u / r.byte_rate)
                  : 0;
  if (opts_.rate_limit == rate_limit_action::close) {
    const bool msgs_ok = !mc || r.messages.fits(t, mc, r.burst);
    if (!msgs_ok || (bc && !r.bytes.fits(t, bc, r.burst))) {
      if (state_.load(std::memory_order_relaxed) == state::open)
        rate_exceeded(!msgs_ok ? "over max_messages_per_second (" + std::to_string(opts_.max_messages_per_second) + ")"
                               : "over max_bytes_per_second (" + std::to_string(opts_.max_bytes_per_second) + ")");
      return false;
    }
  }
  if (mc) r.messages.charge(t, mc);
  if (bc) r.bytes.charge(t, bc);
  if (opts_.rate_limit == rate_limit_action::pause && !paused_by_rate_ &&
      (r.messages.over(t, r.burst) > 0 || r.bytes.over(t, r.burst) > 0)) {
    // Delivered (nothing is lost); reading stops until half the burst has refilled.
    paused_by_rate_ = true;
    host_.counters().rate_limited_pauses.fetch_add(1, std::memory_order_relaxed);
    host_.session_rate_limited(*this, rate_limit_action::pause,
                               r.messages.over(t, r.burst) > 0 ? "over max_messages_per_second" : "over max_bytes_per_second");
    resume_after_rate(now);
  }
  return true;
}

void session_core::rate_exceeded(std::string detail) {
  host_.counters().rate_limited_closes.fetch_add(1, std::memory_order_relaxed);
  host_.session_rate_limited(*this, rate_limit_action::close, detail);
  if (state_.load(std::memory_order_relaxed) != state::open) return;  // the handler closed it
  state_.store(state::closing, std::memory_order_release);
  // A peer that floods is not owed a flush.
  conn_->close(close_info{close_reason::rate_limited, errc::limit_reached, std::move(detail)});
}

// Paused for a rate: resume once half the burst is back, else wait until then. Packets
// the transport had read already keep arriving meanwhile, and push the end further out.
void session_core::resume_after_rate(clock::time_point now) {
  if (!paused_by_rate_) return;
  const rate_state& r = *rate_;
  const std::int64_t t = ns_of(now), half = r.burst / 2;
  const std::int64_t owed = std::max(r.messages.over(t, half), r.bytes.over(t, half));
  if (owed > 0) {
    deadlines_.pause_until(now + std::chrono::nanoseconds(owed));
  } else {
    deadlines_.pause_until(session_deadlines::never);
    paused_by_rate_ = false;
  }
  update_reading();
  arm_timer();
}

void session_core::close_for(close_reason why, const char* detail) {
  state_.store(state::closing);
  conn_->close(close_info{why, errc::timeout, detail});
}

}  // namespace msgtrans::detail

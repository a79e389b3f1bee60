#include "runtime/session_core.hpp"

#include "core/scratch_region.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <cmath>

namespace msgtrans {

// ---- responder (public type, implemented on top of session_core) ----

responder& responder::operator=(responder&& o) noexcept {
  if (this != &o) {
    if (session_ && !done_) session_->inbound_request_done();
    session_ = std::move(o.session_);
    id_ = o.id_;
    biz_type_ = o.biz_type_;
    received_ = o.received_;
    done_ = o.done_;
    o.done_ = true;
  }
  return *this;
}

responder::~responder() {
  if (session_ && !done_) session_->inbound_request_done();
}

std::error_code responder::respond(bytes_view payload, const send_options& opts) {
  if (!session_) return errc::not_a_request;
  if (done_) return errc::already_responded;
  done_ = true;
  session_->inbound_request_done();
  auto ec = session_->send(packet_type::response, id_, payload, opts);
  if (!ec) session_->record_response_time(std::chrono::steady_clock::now() - received_);
  return ec;
}

namespace detail {

namespace asio = boost::asio;

// ---- counters ----

void atomic_histogram::record(std::chrono::nanoseconds d) noexcept {
  // Log-linear: 4 buckets per power of two of microseconds.
  const double us = std::max(1.0, static_cast<double>(d.count()) / 1000.0);
  std::size_t i = static_cast<std::size_t>(std::floor(std::log2(us) * 4.0));
  if (i >= counts.size()) i = counts.size() - 1;
  counts[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count())), std::memory_order_relaxed);
}

latency_histogram atomic_histogram::snapshot() const noexcept {
  latency_histogram h;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    h.counts[i] = counts[i].load(std::memory_order_relaxed);
    h.total += h.counts[i];
  }
  h.sum_us = static_cast<double>(sum_ns.load(std::memory_order_relaxed)) / 1000.0;
  return h;
}

// ---- compression scratch (per loop thread, not per session) ----

namespace {
constexpr std::size_t keep_scratch = scratch_region::keep;

// Outgoing: compressed bytes live here until encoded into the write queue.
byte_buffer& out_scratch() {
  thread_local byte_buffer b;
  return b;
}
// The outgoing body: `payload` itself, or compressed into this thread's scratch. The
// scratch is released when this goes out of scope (a large buffer is not kept).
struct outgoing_body {
  outgoing_body(compression c, bytes_view payload) : body(payload), compressed(c != compression::none) {
    if (!compressed) return;
    out_scratch().clear();
    ec = compress(c, payload, out_scratch());
    body = out_scratch();
  }
  ~outgoing_body() {
    if (!compressed) return;
    auto& b = out_scratch();
    if (b.capacity() > keep_scratch) byte_buffer().swap(b);
    else b.clear();
  }
  outgoing_body(const outgoing_body&) = delete;
  outgoing_body& operator=(const outgoing_body&) = delete;

  bytes_view body;
  std::error_code ec;
  bool compressed;
};
}  // namespace

// ---- session_core ----

session_core::session_core(session_host& host, asio::io_context& loop, std::unique_ptr<connection> conn, session_id id,
                           const session_options& opts, bool server_side)
    : host_(host),
      loop_(loop),
      conn_(std::move(conn)),
      endpoint_(conn_->info()),
      id_(id),
      opts_(opts),
      limits_(opts.limits()),
      server_side_(server_side),
      established_at_(std::chrono::system_clock::now()),
      timer_(loop) {
  if (opts.backpressure == backpressure_mode::wait) room_ = std::make_unique<room_wait>();
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
  return i;
}

void session_core::start() {
  started_ = true;
  established_mono_ = last_rx_ = last_tx_ = clock::now();
  host_.session_established(*this);
  if (state_.load() == state::open) conn_->start(*this);
  arm_timer();
}

// ---- sending ----

std::error_code session_core::check_room(std::size_t n) const noexcept {
  const std::size_t queued = queued_bytes_.load(std::memory_order_relaxed) + posted_bytes_.load(std::memory_order_relaxed);
  // One packet larger than the mark still goes out on an empty queue.
  if (queued > 0 && queued + n > opts_.write_high_water) return errc::queue_full;
  return {};
}

std::error_code session_core::send(packet_type type, std::uint32_t response_id, bytes_view payload,
                                   const send_options& o) {
  if (state_.load(std::memory_order_acquire) != state::open) return errc::connection_closed;
  if (o.ext_header.size() > 0xFFFF) return errc::invalid_argument;
  if (on_loop()) return enqueue(type, response_id, payload, o);

  // From another thread: copy, then hand over to the loop.
  const std::size_t n = header_size + o.ext_header.size() + payload.size();
  if (check_room(n) && opts_.backpressure == backpressure_mode::wait) {
    // Wait for the queue to drain below the mark (bounded by request_timeout).
    room_waiters_.fetch_add(1);
    std::unique_lock lock(room_->mu);
    room_->cv.wait_for(lock, opts_.request_timeout, [&] {
      return !check_room(n) || state_.load(std::memory_order_acquire) != state::open;
    });
    room_waiters_.fetch_sub(1);
    if (state_.load(std::memory_order_acquire) != state::open) return errc::connection_closed;
  }
  if (auto ec = check_room(n)) {
    host_.counters().queue_full.fetch_add(1, std::memory_order_relaxed);
    return ec;
  }
  posted_bytes_.fetch_add(n, std::memory_order_relaxed);
  asio::post(loop_, [self = shared_from_this(), type, response_id, n, data = to_buffer(payload),
                     ext = to_buffer(o.ext_header), biz = o.biz_type, flags = o.flags, comp = o.compression] {
    self->posted_bytes_.fetch_sub(n, std::memory_order_relaxed);
    send_options opts{biz, ext, flags, comp};
    // Admitted by send() already: queue it even if the mark moved meanwhile, so a send
    // that returned success is never dropped.
    (void)self->enqueue(type, response_id, data, opts, /*admitted=*/true);
  });
  return {};
}

std::error_code session_core::enqueue(packet_type type, std::uint32_t id, bytes_view payload, const send_options& o,
                                      bool admitted) {
  if (state_.load(std::memory_order_relaxed) != state::open) return errc::connection_closed;
  compression c = o.compression.value_or(
      opts_.auto_compress != compression::none && payload.size() >= opts_.auto_compress_min ? opts_.auto_compress
                                                                                             : compression::none);
  outgoing_body compressed(c, payload);
  if (compressed.ec) return compressed.ec;
  const bytes_view body = compressed.body;
  const std::size_t n = header_size + o.ext_header.size() + body.size();
  if (n > opts_.max_message_size) return errc::message_too_large;
  if (!admitted && queue().queued_bytes() > 0 && queue().queued_bytes() + n > opts_.write_high_water) {
    host_.counters().queue_full.fetch_add(1, std::memory_order_relaxed);
    // Stop taking input from a peer whose answers cannot be written.
    paused_by_queue_ = true;
    update_reading();
    return errc::queue_full;
  }
  if (type != packet_type::response) id = ids_.next();
  packet_view v;
  v.header.compression = c;
  v.header.type = type;
  v.header.biz_type = o.biz_type;
  v.header.message_id = id;
  v.header.flags = o.flags;
  v.ext_header = o.ext_header;
  v.payload = body;
  auto out = queue().append(n, (o.flags & flags::high_priority) != 0);
  (void)encode_to(v, out);
  queued_bytes_.store(queue().queued_bytes(), std::memory_order_relaxed);
  last_tx_ = clock::now();
  schedule_flush();
  update_reading();
  return {};
}

std::error_code session_core::send_shared(const std::shared_ptr<const byte_buffer>& encoded, bool high) {
  if (state_.load(std::memory_order_acquire) != state::open) return errc::connection_closed;
  if (auto ec = check_room(encoded->size())) {
    host_.counters().queue_full.fetch_add(1, std::memory_order_relaxed);
    return ec;
  }
  auto run = [self = shared_from_this(), encoded, high] {
    if (self->state_.load(std::memory_order_relaxed) != state::open) return;
    self->queue().append_shared(encoded, high);
    self->queued_bytes_.store(self->queue().queued_bytes(), std::memory_order_relaxed);
    self->schedule_flush();
    self->update_reading();
  };
  if (on_loop()) {
    run();
  } else {
    posted_bytes_.fetch_add(encoded->size(), std::memory_order_relaxed);
    asio::post(loop_, [this, run = std::move(run), n = encoded->size()]() mutable {
      posted_bytes_.fetch_sub(n, std::memory_order_relaxed);
      run();
    });
  }
  return {};
}

void session_core::request(bytes_view payload, std::chrono::milliseconds timeout, const send_options& o,
                           response_handler h) {
  auto fail = [this](response_handler& handler, std::error_code ec) {
    complete_later(std::move(handler), loop_, ec, packet{});
  };
  if (state_.load(std::memory_order_acquire) != state::open) return fail(h, errc::connection_closed);
  auto run = [self = shared_from_this(), timeout, h = std::move(h), data = to_buffer(payload),
              ext = to_buffer(o.ext_header), biz = o.biz_type, flags = o.flags, comp = o.compression]() mutable {
    session_core& s = *self;
    if (s.state_.load(std::memory_order_relaxed) != state::open) {
      complete_later(std::move(h), s.loop_, std::error_code(errc::connection_closed), packet{});
      return;
    }
    send_options opts{biz, ext, flags, comp};
    const std::uint32_t id = s.ids_.next();
    // enqueue() allocates ids itself for requests; reuse the one we registered.
    compression c = opts.compression.value_or(
        s.opts_.auto_compress != compression::none && data.size() >= s.opts_.auto_compress_min ? s.opts_.auto_compress
                                                                                                : compression::none);
    outgoing_body compressed(c, data);
    if (compressed.ec) {
      complete_later(std::move(h), s.loop_, std::error_code(compressed.ec), packet{});
      return;
    }
    const bytes_view body = compressed.body;
    const std::size_t n = header_size + ext.size() + body.size();
    std::error_code ec;
    if (n > s.opts_.max_message_size) ec = errc::message_too_large;
    else if (s.queue().queued_bytes() > 0 && s.queue().queued_bytes() + n > s.opts_.write_high_water) {
      ec = errc::queue_full;
      s.host_.counters().queue_full.fetch_add(1, std::memory_order_relaxed);
    }
    if (ec) {
      complete_later(std::move(h), s.loop_, std::error_code(ec), packet{});
      return;
    }
    const auto now = clock::now();
    const auto deadline = now + timeout;
    if (!s.requests_) s.requests_ = std::make_unique<request_table<response_handler>>();  // first request
    s.requests_->add(id, now, deadline, std::move(h));
    s.host_.counters().requests_in_flight.fetch_add(1, std::memory_order_relaxed);
    packet_view v;
    v.header.compression = c;
    v.header.type = packet_type::request;
    v.header.biz_type = biz;
    v.header.message_id = id;
    v.header.flags = flags;
    v.ext_header = ext;
    v.payload = body;
    (void)encode_to(v, s.queue().append(n, (flags & flags::high_priority) != 0));
    s.queued_bytes_.store(s.queue().queued_bytes(), std::memory_order_relaxed);
    s.last_tx_ = now;
    s.schedule_flush();
    s.update_reading();
    if (deadline < s.timer_at_) s.arm_timer();
  };
  if (on_loop()) run();
  else asio::post(loop_, std::move(run));
}

void session_core::schedule_flush() {
  if (flush_posted_ || writing_) return;
  flush_posted_ = true;
  asio::post(loop_, [self = shared_from_this()] { self->flush(); });
}

void session_core::flush() {
  flush_posted_ = false;
  if (writing_ || state_.load(std::memory_order_relaxed) == state::closed) return;
  if (!queue_ || !queue_->has_pending()) {
    if (state_.load(std::memory_order_relaxed) == state::closing) conn_->close(pending_close());
    return;
  }
  writing_ = true;
  conn_->write(queue().take_batch());
}

void session_core::on_write_done() {
  writing_ = false;
  const std::size_t packets = queue().batch_count();
  const std::size_t bytes = queue().batch_done();
  queued_bytes_.store(queue().queued_bytes(), std::memory_order_relaxed);
  bytes_out_.store(bytes_out_.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
  packets_out_.store(packets_out_.load(std::memory_order_relaxed) + packets, std::memory_order_relaxed);
  batches_out_.store(batches_out_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  auto& c = host_.counters();
  c.bytes_out.fetch_add(bytes, std::memory_order_relaxed);
  c.packets_out.fetch_add(packets, std::memory_order_relaxed);
  update_reading();
  // Pairs with the waiter's increment (Dekker): either it sees the new queue size, or
  // we see it waiting.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (room_waiters_.load(std::memory_order_relaxed) > 0) {  // only in backpressure_mode::wait
    std::lock_guard lock(room_->mu);
    room_->cv.notify_all();
  }
  if (queue().has_pending()) {
    flush();
  } else if (state_.load(std::memory_order_relaxed) == state::closing) {
    conn_->close(pending_close());
  }
}

void session_core::update_reading() {
  const std::size_t q = queue_ ? queue_->queued_bytes() : 0;
  if (!paused_by_queue_ && q >= opts_.write_high_water) paused_by_queue_ = true;
  else if (paused_by_queue_ && q <= opts_.write_high_water / 2) paused_by_queue_ = false;
  const bool want = !paused_by_queue_ && !paused_by_events_;
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
  inbound_open_.fetch_sub(1, std::memory_order_relaxed);
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
    s.close_deadline_ = clock::now() + std::chrono::seconds(5);
    s.arm_timer();
    if (!s.writing_ && !s.flush_posted_) s.flush();
  };
  if (on_loop()) run();
  else asio::post(loop_, std::move(run));
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
  auto v = decode_view(bytes, limits_);
  if (!v) return protocol_violation(v.error(), "packet rejected: " + v.error().message());
  got_packet_ = true;
  last_rx_ = clock::now();
  packets_in_.store(packets_in_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  bytes_in_.store(bytes_in_.load(std::memory_order_relaxed) + bytes.size(), std::memory_order_relaxed);
  auto& c = host_.counters();
  c.packets_in.fetch_add(1, std::memory_order_relaxed);
  c.bytes_in.fetch_add(bytes.size(), std::memory_order_relaxed);

  if (v->header.compression == compression::none) return dispatch(*v, v->payload);

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
  if (in_region) n = decompress_into(v->header.compression, v->payload, space);
  else if (auto ec = decompress(v->header.compression, v->payload, opts_.max_message_size, own)) n = ec;
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
  dispatch(*v, in_region ? bytes_view{space.data(), *n} : bytes_view{own});
}

void session_core::dispatch(const packet_view& v, bytes_view payload) {
  auto& c = host_.counters();
  switch (v.header.type) {
    case packet_type::response: {
      if (!requests_) return;  // never sent a request: nothing awaits a response
      auto e = requests_->take(v.header.message_id);
      if (!e) return;  // late (timed out) or unknown: the requester was already told
      c.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
      c.request_latency.record(last_rx_ - e->started);
      packet p;
      p.type = packet_type::response;
      p.biz_type = v.header.biz_type;
      p.message_id = v.header.message_id;
      p.flags = v.header.flags;
      p.compression = v.header.compression;
      p.ext_header = to_buffer(v.ext_header);
      p.payload = to_buffer(payload);
      auto ex = asio::get_associated_executor(e->done);
      asio::dispatch(ex, [h = std::move(e->done), p = std::move(p)]() mutable { std::move(h)(std::error_code{}, std::move(p)); });
      return;
    }
    case packet_type::request: {
      message m{id_, v.header, v.ext_header, payload};
      inbound_open_.fetch_add(1, std::memory_order_relaxed);
      c.inbound_requests_open.fetch_add(1, std::memory_order_acq_rel);
      msgtrans::request r(m, responder(shared_from_this(), v.header.message_id, v.header.biz_type, last_rx_));
      host_.session_request(*this, r);
      return;
    }
    case packet_type::one_way: {
      if (opts_.heartbeat_biz_type && v.header.biz_type == *opts_.heartbeat_biz_type) return;  // keep-alive only
      message m{id_, v.header, v.ext_header, payload};
      host_.session_message(*this, m);
      return;
    }
  }
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

// ---- timers: requests, idle, first packet, heartbeat ----

void session_core::arm_timer() {
  if (state_.load(std::memory_order_relaxed) == state::closed) return;
  auto next = close_deadline_;
  if (auto d = requests_ ? requests_->next_deadline() : std::nullopt) next = std::min(next, *d);
  if (opts_.idle_timeout.count() > 0) next = std::min(next, last_rx_ + opts_.idle_timeout);
  if (server_side_ && !got_packet_ && opts_.first_packet_timeout.count() > 0)
    next = std::min(next, established_mono_ + opts_.first_packet_timeout);
  if (opts_.heartbeat_biz_type) next = std::min(next, last_tx_ + opts_.heartbeat_interval);
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
  if (state_.load(std::memory_order_relaxed) == state::closing) {
    if (now >= close_deadline_) conn_->close(pending_close());
    else arm_timer();
    return;
  }
  if (state_.load(std::memory_order_relaxed) != state::open) return;
  auto& c = host_.counters();
  if (requests_) requests_->expire(now, [&](std::uint32_t, auto& e) {
    c.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
    c.request_timeouts.fetch_add(1, std::memory_order_relaxed);
    complete_later(std::move(e.done), loop_, std::error_code(errc::timeout), packet{});
  });
  if (server_side_ && !got_packet_ && opts_.first_packet_timeout.count() > 0 &&
      now >= established_mono_ + opts_.first_packet_timeout) {
    state_.store(state::closing);
    conn_->close(close_info{close_reason::handshake_timeout, errc::timeout, "no packet within first_packet_timeout"});
    return;
  }
  if (opts_.idle_timeout.count() > 0 && now >= last_rx_ + opts_.idle_timeout) {
    state_.store(state::closing);
    conn_->close(close_info{close_reason::idle_timeout, errc::timeout, "nothing received within idle_timeout"});
    return;
  }
  if (opts_.heartbeat_biz_type && now >= last_tx_ + opts_.heartbeat_interval) {
    send_options o;
    o.biz_type = *opts_.heartbeat_biz_type;
    (void)enqueue(packet_type::one_way, 0, {}, o);
    last_tx_ = now;
  }
  arm_timer();
}

}  // namespace detail
}  // namespace msgtrans

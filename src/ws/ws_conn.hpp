/// @file ws_conn.hpp
/// The Asio adapter of one WebSocket connection (plain TCP or TLS stream): it reads into
/// a buffer, feeds ws::session, writes what the session builds, and arms one timer at the
/// session's next deadline. Included by ws_transport.cpp only (the one translation unit
/// with Beast and asio::ssl), which instantiates it for both streams.
///
/// I/O tricks kept here: a plain connection with nothing buffered waits for readability
/// holding no read buffer and reads into its loop's buffer; a busy one grows its buffer
/// up to 256 KiB; corked packets leave in one gather write (server) or one masked buffer
/// (client). A partial frame past 64 KiB takes its declared size from the inbound budget
/// first (reading waits when it is full); fragments are counted in it.
#pragma once

#include "core/op_allocator.hpp"
#include "net/address.hpp"
#include "net/partial_budget.hpp"
#include "net/read_buffer.hpp"
#include "ws/ws_session.hpp"

#include <msgtrans/transport.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace msgtrans::ws_detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
using plain_stream = tcp::socket;

/// The TCP socket under a stream (itself, or an ssl::stream's next layer).
template <class Stream>
auto& lowest(Stream& s) {
  if constexpr (std::is_same_v<std::remove_const_t<Stream>, plain_stream>) return s;
  else return s.next_layer();
}

/// What every connection of one listener or connector shares.
struct conn_settings {
  ws::session_config session;
  std::string protocol;              // "ws" / "wss"
  notice_sink* notices = nullptr;    // a server's listener reports here (may be null)
  inbound_budget* budget = nullptr;  // the server-wide inbound budget (may be null)
};

// An idle connection keeps this little; reads that fill the buffer double it (busy
// connections read up to max_read_buffer at once), and it shrinks back when idle.
inline constexpr std::size_t initial_read_buffer = 512;
inline constexpr std::size_t max_read_buffer = 256 * 1024;

template <class Stream>
class ws_conn : public std::enable_shared_from_this<ws_conn<Stream>> {
  static constexpr bool plain = std::is_same_v<Stream, plain_stream>;

 public:
  ws_conn(Stream stream, std::shared_ptr<const conn_settings> st, std::shared_ptr<void> keep, bytes_view leftover)
      : stream_(std::move(stream)), st_(std::move(st)), keep_(std::move(keep)), s_(st_->session, clock::now()) {
    boost::system::error_code ec;
    lowest(stream_).set_option(tcp::no_delay(true), ec);
    // Plain streams read synchronously after a readiness wait: never block there.
    if constexpr (plain) lowest(stream_).non_blocking(true, ec);
    rbuf_.assign(leftover.begin(), leftover.end());  // usually nothing
    rend_ = leftover.size();
  }

  void start(connection_owner& owner) {
    owner_ = &owner;
    arm_timer();
    // Bytes that came with the handshake are delivered from the loop, not from start().
    asio::post(lowest(stream_).get_executor(), [self = this->shared_from_this()] { self->resume(); });
  }

  void write(std::span<const bytes_view> packets) {
    if (closed_ || !s_.is_open()) return;  // on_closed follows; the packets are dropped
    pending_.assign(packets.begin(), packets.end());
    data_pending_ = true;
    flush();
  }

  void set_reading(bool enabled) {
    if (reading_enabled_ == enabled) return;
    reading_enabled_ = enabled;
    if (enabled && !closed_)
      asio::post(lowest(stream_).get_executor(), [self = this->shared_from_this()] { self->resume(); });
  }

  void close(close_info info) {
    if (closed_ || !s_.is_open()) return;
    s_.close(std::move(info), clock::now());
    sync();
    do_read();  // wait for the peer's close frame, even if reading was paused
  }

  // The handle was destroyed: forget the owner, stop everything.
  void abandon() {
    owner_ = nullptr;
    if (!closed_) finish();
  }

  endpoint_info info() const {
    endpoint_info i;
    i.protocol = st_->protocol;
    boost::system::error_code ec;
    auto local = lowest(stream_).local_endpoint(ec);
    if (!ec) i.local_address = net::format_endpoint(local);
    auto peer = lowest(stream_).remote_endpoint(ec);
    if (!ec) i.peer_address = net::format_endpoint(peer);
    return i;
  }

 private:
  // --- after every session step: write what it built, end, or re-arm ------------------

  void sync() {
    if (closed_) return;
    if (s_.finished()) return finish();
    if (!s_.is_open()) data_pending_ = false;
    flush();
    arm_timer();
  }

  void report(notice_kind kind, std::string detail) {
    if (st_->notices) st_->notices->report(notice{kind, st_->protocol, info().peer_address, std::move(detail), 0});
  }

  // --- reading -------------------------------------------------------------------------

  void resume() {
    process();
    do_read();
  }

  bool may_read() const { return !closed_ && (s_.is_closing() || (s_.is_open() && reading_enabled_)); }

  void do_read() {
    // Never from inside process(): it may still move the buffered bytes.
    if (read_in_progress_ || processing_ || !may_read() || budget_waiting_) return;
    if (s_.is_open() && !budget_allows()) return;
    if constexpr (plain) {
      if (rbeg_ == rend_ && !last_read_filled_) {
        // Idle (not streaming): drop the buffer and wait for readability.
        byte_buffer().swap(rbuf_);
        rbeg_ = rend_ = 0;
        read_in_progress_ = true;
        lowest(stream_).async_wait(tcp::socket::wait_read,
                                   asio::bind_allocator(detail::op_allocator<void>{},
                                                        [self = this->shared_from_this()](boost::system::error_code ec) {
                                                          self->on_readable(ec);
                                                        }));
        return;
      }
    }
    prepare_read();
    read_in_progress_ = true;
    stream_.async_read_some(asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_),
                            [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
                              self->on_read(ec, n);
                            });
  }

  // A partial frame past the allowance holds its declared size of the budget before more
  // of it is read. Fragments already received are counted (force_acquire), not waited
  // for: a fragmented message's total is not known in advance (docs/reliability.md).
  bool budget_allows() {
    auto& loop = static_cast<asio::io_context&>(lowest(stream_).get_executor().context());
    auto report_full = [this](std::string detail) { report(notice_kind::budget_full, std::move(detail)); };
    auto make_resume = [this] {
      return [weak = this->weak_from_this()] {
        if (auto self = weak.lock()) {
          self->budget_waiting_ = false;
          self->do_read();
        }
      };
    };
    if (budget_.admit(st_->budget, need_, loop, "frame", report_full, make_resume)) return true;
    budget_waiting_ = true;
    return false;
  }

  void release_budget() { budget_.release(st_->budget); }

  // Counts the fragments held in the budget (called after they changed).
  void count_fragments() {
    if (!st_->budget || closed_) return;
    const std::size_t now = s_.fragment_bytes();
    if (now > frag_held_) st_->budget->force_acquire(now - frag_held_);
    else if (now < frag_held_) st_->budget->release(frag_held_ - now);
    frag_held_ = now;
  }

  // Makes room for at least need_ bytes from rbeg_ (the frame being assembled).
  void prepare_read() {
    const std::size_t buffered = rend_ - rbeg_;
    std::size_t target = std::max(need_, buffered + 1);
    if (last_read_filled_) target = std::max(target, std::min(rbuf_.size() * 2, max_read_buffer));
    if (rbeg_ > 0 && (rbuf_.size() - rbeg_ < target || rend_ == rbuf_.size())) {
      std::memmove(rbuf_.data(), rbuf_.data() + rbeg_, buffered);
      rbeg_ = 0;
      rend_ = buffered;
    }
    if (rbuf_.size() < target) {
      const std::size_t cap = st_->session.limits.max_message_size + ws::max_header_size;
      rbuf_.resize(std::max(target, std::max(initial_read_buffer, std::min(rbuf_.size() * 2, cap))));
    }
  }

  // Plain streams: readable after an idle wait. Reads into the loop's buffer
  // (net::loop_read_buffer), handles the frames there, and keeps only the unprocessed rest.
  void on_readable(boost::system::error_code ec) {
    if (ec || closed_) return on_read(ec, 0);
    bool borrowed = false;
    {
      auto lease = net::loop_read_buffer::borrow();
      if (lease) {
        borrowed = true;
        rbuf_.swap(lease.buffer());  // rbuf_ was empty
        const std::size_t n = lowest(stream_).read_some(asio::buffer(rbuf_.data(), rbuf_.size()), ec);
        if (!ec) {
          read_in_progress_ = false;
          last_read_filled_ = n == rbuf_.size();
          rbeg_ = 0;
          rend_ = n;
          process();
        }
        byte_buffer rest(rbuf_.begin() + static_cast<std::ptrdiff_t>(rbeg_),
                         rbuf_.begin() + static_cast<std::ptrdiff_t>(rend_));
        rbuf_.swap(lease.buffer());  // the loop gets its buffer back
        rbuf_.swap(rest);
        rbeg_ = 0;
        rend_ = rbuf_.size();
      }
    }
    if (!borrowed) last_read_filled_ = true;  // re-entered: do_read takes the buffered path
    if (!borrowed || ec == asio::error::would_block || ec == asio::error::try_again) {
      read_in_progress_ = false;
      return do_read();
    }
    if (ec) return on_read(ec, 0);
    do_read();
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    read_in_progress_ = false;
    if (closed_) return;
    if (ec) {
      if (s_.on_eof(std::error_code(ec), ec == asio::error::eof, {rbuf_.data() + rbeg_, rend_ - rbeg_}))
        report(notice_kind::truncated_packet, s_.outcome().detail);
      return finish();
    }
    last_read_filled_ = rend_ + n == rbuf_.size();
    rend_ += n;
    process();
    do_read();
  }

  // Hands every complete frame buffered to the session, as long as delivery is allowed.
  void process() {
    processing_ = true;
    const auto now = clock::now();
    while (may_read() && !s_.finished()) {
      auto r = s_.receive({rbuf_.data() + rbeg_, rend_ - rbeg_}, now);
      if (r.consumed == 0) {
        need_ = r.need;
        break;
      }
      need_ = 0;
      rbeg_ += r.consumed;
      if (r.ping_flood) report(notice_kind::ping_flood, s_.outcome().detail);
      count_fragments();
      if (!r.has_message) continue;
      if (owner_) owner_->on_packet(r.message);
      s_.message_done();
      count_fragments();
    }
    processing_ = false;
    compact_if_idle();
    sync();
  }

  // Rewinds an empty buffer, unless a read is filling it (set_reading can resume
  // processing while a read is still pending).
  void compact_if_idle() {
    if (rbeg_ != rend_ || read_in_progress_) return;
    rbeg_ = rend_ = 0;
    // A big message grew the buffer; an idle connection should not keep it.
    if (rbuf_.size() > 64 * 1024 && need_ <= initial_read_buffer && !last_read_filled_) {
      byte_buffer fresh(initial_read_buffer);
      rbuf_.swap(fresh);
    }
  }

  void finish() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    lowest(stream_).shutdown(tcp::socket::shutdown_both, ignored);
    lowest(stream_).close(ignored);
    if (timer_) timer_->cancel();
    if (frag_held_ && st_->budget) st_->budget->release(std::exchange(frag_held_, 0));  // fragments die with it
    release_budget();
    auto keep_alive = this->shared_from_this();  // the owner may drop its handle in on_closed
    if (auto* o = std::exchange(owner_, nullptr)) o->on_closed(s_.take_outcome());
  }

  // --- writing -------------------------------------------------------------------------

  void flush() {
    if (write_in_progress_ || closed_) return;
    if (!data_pending_ && !s_.has_output()) return;
    s_.build_batch(pending_, std::exchange(data_pending_, false), plain, batch_);
    bufs_.clear();
    for (auto seg : batch_.segments) bufs_.emplace_back(seg.data(), seg.size());
    write_in_progress_ = true;
    asio::async_write(stream_, bufs_, [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
      self->on_written(ec);
    });
  }

  void on_written(boost::system::error_code ec) {
    write_in_progress_ = false;
    if (closed_) return;
    batch_.shrink();
    if (ec) {
      s_.on_write_failed(std::error_code(ec));
      return finish();
    }
    s_.on_written();
    if (batch_.has_data && s_.is_open() && owner_) owner_->on_write_done();
    sync();
  }

  // --- the one timer -------------------------------------------------------------------

  // Ping, pong and close-handshake deadlines: one timer at the session's next one, made
  // when first needed. Bound to the loop's own executor type (not any_io_executor):
  // smaller timer, smaller op.
  using loop_timer = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, asio::io_context::executor_type>;

  void arm_timer() {
    const ws::time_point at = s_.next_deadline();
    if (at == armed_ || at == ws::no_deadline || closed_) return;
    armed_ = at;
    if (!timer_) {
      auto& loop = asio::query(lowest(stream_).get_executor(), asio::execution::context);
      timer_ = std::make_unique<loop_timer>(static_cast<asio::io_context&>(loop));
    }
    timer_->expires_at(at);
    timer_->async_wait(asio::bind_allocator(detail::op_allocator<void>{},
                                            [self = this->shared_from_this()](boost::system::error_code ec) {
                                              if (!ec) self->on_timer();
                                            }));
  }

  void on_timer() {
    if (closed_) return;
    armed_ = ws::no_deadline;
    s_.on_timer(clock::now());
    sync();
    do_read();  // a close begun here waits for the peer's answer, even if reading was paused
  }

  Stream stream_;
  std::shared_ptr<const conn_settings> st_;
  std::shared_ptr<void> keep_;  // the TLS context: outlives the TLS stream
  ws::session s_;
  std::unique_ptr<loop_timer> timer_;
  ws::time_point armed_ = ws::no_deadline;
  connection_owner* owner_ = nullptr;
  bool closed_ = false;

  // read side
  byte_buffer rbuf_;
  bool last_read_filled_ = false;  // the last read filled the buffer: grow it
  std::size_t rbeg_ = 0, rend_ = 0, need_ = 0;
  bool read_in_progress_ = false;
  bool processing_ = false;
  bool reading_enabled_ = true;
  bool budget_waiting_ = false;  // reading paused until the budget gives bytes back
  std::size_t frag_held_ = 0;    // bytes of fragments counted in the inbound budget
  net::partial_budget budget_;   // held for the partial frame

  // write side
  std::vector<bytes_view> pending_;
  bool data_pending_ = false;
  bool write_in_progress_ = false;
  ws::write_batch batch_;
  std::vector<asio::const_buffer> bufs_;
};

template <class Stream>
class ws_connection final : public connection {
 public:
  explicit ws_connection(std::shared_ptr<ws_conn<Stream>> c) : c_(std::move(c)) {}
  ~ws_connection() override { c_->abandon(); }
  void start(connection_owner& owner) override { c_->start(owner); }
  void write(std::span<const bytes_view> packets) override { c_->write(packets); }
  void set_reading(bool enabled) override { c_->set_reading(enabled); }
  void close(close_info info) override { c_->close(std::move(info)); }
  endpoint_info info() const override { return c_->info(); }
  std::shared_ptr<const identity> authenticated_identity() const override { return who; }
  bool sent_credentials() const override { return credentials_sent; }
  std::optional<peer_certificate> peer_certificate_info() const override {
    return cert ? std::optional<peer_certificate>(*cert) : std::nullopt;
  }

  std::shared_ptr<const identity> who;  ///< server: what the upgrade's authentication accepted
  std::shared_ptr<const peer_certificate> cert;  ///< server, wss: the client's verified certificate
  bool credentials_sent = false;        ///< client: the upgrade carried a bearer token

 private:
  std::shared_ptr<ws_conn<Stream>> c_;
};

template <class Stream>
std::unique_ptr<ws_connection<Stream>> make_connection(Stream stream, std::shared_ptr<const conn_settings> st,
                                            std::shared_ptr<void> keep, bytes_view leftover) {
  return std::make_unique<ws_connection<Stream>>(
      std::make_shared<ws_conn<Stream>>(std::move(stream), std::move(st), std::move(keep), leftover));
}

}  // namespace msgtrans::ws_detail

// The QUIC connection: its timer, and closing (application close, the closing and
// draining periods, termination).
#include "quic/quic_conn.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <string>

namespace msgtrans::quic_detail {
namespace asio = boost::asio;

namespace {
constexpr std::size_t max_udp_payload = 1452;  // what ngtcp2 0.12 sends at most by default
constexpr std::size_t close_resends = 16;       // CONNECTION_CLOSE replays in the closing period
constexpr ngtcp2_tstamp immediate_expiry_ns = 50 * 1000;
}  // namespace

// ---------------------------------------------------------------------------------------
// Timer

// Asio's reactor reprograms a timerfd whenever the earliest timer moves, which costs a
// system call; ngtcp2's expiry moves on nearly every packet (ACK delay, loss detection,
// pacing). So the Asio timer is moved only when the expiry comes earlier; when it fires
// early, ngtcp2 has nothing to do and it is re-armed. Expiries due within a few
// microseconds (pacing) run from a posted handler instead of the timer.
void quic_conn::arm_timer() {
  if (phase_ > phase::flushing) return;
  const ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(conn_);
  if (expiry == UINT64_MAX) return;  // a pending early wake-up is harmless
  if (expiry <= now_ts() + immediate_expiry_ns) {
    if (!expiry_posted_) {
      expiry_posted_ = true;
      asio::post(loop_, [self = shared_from_this()] {
        self->expiry_posted_ = false;
        if (self->phase_ <= phase::flushing) self->on_timer();
      });
    }
    return;
  }
  if (timer_armed_ && armed_expiry_ <= expiry) return;
  armed_expiry_ = expiry;
  timer_armed_ = true;
  timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(expiry)));
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return;
    self->timer_armed_ = false;
    self->on_timer();
  });
}

void quic_conn::on_timer() {
  if (phase_ == phase::closing || phase_ == phase::draining) {
    terminate();
    return;
  }
  if (phase_ == phase::done) return;
  int rv = ngtcp2_conn_handle_expiry(conn_, now_ts());
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    notify_closed({close_reason::idle_timeout, errc::timeout, "no traffic within the idle timeout", 0});
    terminate();
    return;
  }
  if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    if (cfg_.notices)
      cfg_.notices->report(notice{notice_kind::handshake_timeout, "quic", info_.peer_address,
                                  "the QUIC handshake did not complete in time", 0});
    notify_closed({close_reason::handshake_timeout, errc::timeout, "the QUIC handshake did not complete in time", 0});
    terminate();
    return;
  }
  if (rv != 0) {
    handle_lib_error(rv);
    return;
  }
  flush();
}
// ---------------------------------------------------------------------------------------
// Closing

std::uint64_t quic_conn::app_code(const close_info& info) {
  switch (info.reason) {
    case close_reason::normal: return quic_app_error::no_error;
    case close_reason::protocol_error: return quic_app_error::protocol_error;
    case close_reason::shutdown: return quic_app_error::shutdown;
    case close_reason::limit_reached: return quic_app_error::limit_reached;
    case close_reason::rate_limited: return quic_app_error::rate_limited;
    case close_reason::idle_timeout: return quic_app_error::idle;
    default: return quic_app_error::internal;
  }
}

void quic_conn::close(close_info info) {
  if (phase_ >= phase::flushing) return;  // twice is harmless
  if (in_lib_ > 0) {  // from on_packet: done, gracefully, right after the ngtcp2 call
    if (!pending_app_close_) pending_app_close_ = std::move(info);
    return;
  }
  if (phase_ == phase::established && !sendq_.all_acked()) {
    // Finish the write in progress first, bounded in time.
    closed_info_ = std::move(info);
    phase_ = phase::flushing;
    close_timer_.expires_after(cfg_.close_timeout);
    close_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && self->phase_ == phase::flushing) self->close_now(*self->closed_info_);
    });
    schedule_flush();
    return;
  }
  close_now(std::move(info));
}

void quic_conn::close_now(close_info info) {
  if (phase_ > phase::flushing) return;
  close_timer_.cancel();
  ngtcp2_connection_close_error ccerr;
  const std::uint64_t code = info.transport_code > 0 && info.reason == close_reason::protocol_error
                                 ? static_cast<std::uint64_t>(info.transport_code)
                                 : app_code(info);
  const std::string reason = info.detail.substr(0, 512);  // ccerr points into it; info is moved below
  ngtcp2_connection_close_error_set_application_error(&ccerr, code,
                                                      reinterpret_cast<const std::uint8_t*>(reason.data()),
                                                      reason.size());
  if (info.transport_code == 0) info.transport_code = static_cast<int>(code);
  send_connection_close(ccerr, std::move(info));
}

void quic_conn::send_connection_close(const ngtcp2_connection_close_error& ccerr, close_info info) {
  if (phase_ > phase::flushing) return;
  auto keep = shared_from_this();
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  close_pkt_.resize(std::max(max_udp_payload, ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_)));
  auto n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, close_pkt_.data(), close_pkt_.size(), &ccerr,
                                              now_ts());
  notify_closed(std::move(info));
  if (n <= 0) {  // nothing can be sent in this state: just forget the connection
    terminate();
    return;
  }
  close_pkt_.resize(static_cast<std::size_t>(n));
  std::size_t len = close_pkt_.size();
  host_->send_close(ps.path.remote, close_pkt_.data(), len);
  phase_ = phase::closing;
  close_resend_budget_ = close_resends;
  timer_armed_ = false;
  // The closing period: three PTOs (RFC 9000 10.2).
  timer_.expires_after(std::chrono::nanoseconds(3 * ngtcp2_conn_get_pto(conn_)));
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->terminate();
  });
}

void quic_conn::enter_draining(close_info info) {
  auto keep = shared_from_this();
  notify_closed(std::move(info));
  phase_ = phase::draining;
  close_timer_.cancel();
  timer_armed_ = false;
  timer_.expires_after(std::chrono::nanoseconds(3 * ngtcp2_conn_get_pto(conn_)));
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->terminate();
  });
}

void quic_conn::abort(close_info why) {
  if (phase_ == phase::done) return;
  auto keep = shared_from_this();
  notify_closed(std::move(why));
  terminate();
}

void quic_conn::terminate() {
  if (phase_ == phase::done) return;
  phase_ = phase::done;
  timer_.cancel();
  close_timer_.cancel();
  host_->on_terminated(*this);
}

void quic_conn::notify_closed(close_info info) {
  if (!closed_info_) closed_info_ = info;
  if (closed_notified_) return;
  if (phase_ == phase::handshake) {  // never delivered: the host reports it (client connect)
    closed_notified_ = true;
    host_->on_failed(*this, info);
    return;
  }
  if (!started_) return;  // reported by start()
  closed_notified_ = true;
  asio::post(loop_, [self = shared_from_this(), info = std::move(info)]() mutable {
    if (auto* o = self->owner_) {
      self->owner_ = nullptr;
      o->on_closed(std::move(info));
    }
  });
}

void quic_conn::detach() {
  owner_ = nullptr;
  if (phase_ <= phase::flushing)
    close({close_reason::normal, {}, "connection released by the application", 0});
}

}  // namespace msgtrans::quic_detail

// When a session's one timer must fire, and what is due then. Sans-I/O: it is told the
// times of the session's activity and asked with a time; it never reads a clock.
//
// Deadlines: the first packet of a server connection (first_packet_timeout), the last
// packet received (idle_timeout), the last packet sent (heartbeat_interval, when a
// heartbeat biz_type is set), the earliest request deadline (the request table's), the end
// of a pause for a rate limit, and while closing only the bound on the final flush
// (close_timeout). 0 turns each off.
#pragma once

#include <msgtrans/options.hpp>

#include <algorithm>
#include <chrono>
#include <optional>

namespace msgtrans::detail {

class session_deadlines {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;
  static constexpr time_point never = time_point::max();

  /// What is due at a given time.
  struct due_set {
    bool close_flush = false;   ///< closing, and the flush took longer than close_timeout
    bool first_packet = false;  ///< a server connection sent nothing within first_packet_timeout
    bool idle = false;          ///< nothing received within idle_timeout
    bool heartbeat = false;     ///< nothing sent within heartbeat_interval
    bool requests = false;      ///< a request deadline passed
    bool resume = false;        ///< a pause for a rate limit may end
  };

  /// `o` must outlive this (a session's options are its host's).
  session_deadlines(const session_options& o, bool server_side) noexcept : o_(&o), server_side_(server_side) {}

  /// The session is established at `now`.
  void start(time_point now) noexcept { established_ = last_rx_ = last_tx_ = now; }
  /// A packet arrived.
  void received(time_point now) noexcept {
    last_rx_ = now;
    got_packet_ = true;
  }
  /// A packet was queued to be sent.
  void sent(time_point now) noexcept { last_tx_ = now; }
  /// close() started flushing at `now`.
  void closing(time_point now) noexcept {
    closing_ = true;
    close_at_ = o_->close_timeout.count() > 0 ? now + o_->close_timeout : never;
  }
  time_point last_received() const noexcept { return last_rx_; }
  /// Reading is paused for a rate limit until `t` (never: not paused).
  void pause_until(time_point t) noexcept { paused_until_ = t; }

  /// The next time anything is due (`never` if nothing is), given the request table's
  /// earliest deadline.
  time_point next(std::optional<time_point> request_deadline) const noexcept {
    if (closing_) return close_at_;
    time_point t = request_deadline.value_or(never);
    if (first_packet_on()) t = std::min(t, established_ + o_->first_packet_timeout);
    if (o_->idle_timeout.count() > 0) t = std::min(t, last_rx_ + o_->idle_timeout);
    if (heartbeat_on()) t = std::min(t, last_tx_ + o_->heartbeat_interval);
    return std::min(t, paused_until_);
  }

  /// What is due at `now`. While closing, only the flush bound is.
  due_set due(time_point now, std::optional<time_point> request_deadline) const noexcept {
    due_set d;
    if (closing_) {
      d.close_flush = now >= close_at_;
      return d;
    }
    d.requests = request_deadline && now >= *request_deadline;
    d.first_packet = first_packet_on() && now >= established_ + o_->first_packet_timeout;
    d.idle = o_->idle_timeout.count() > 0 && now >= last_rx_ + o_->idle_timeout;
    d.heartbeat = heartbeat_on() && now >= last_tx_ + o_->heartbeat_interval;
    d.resume = now >= paused_until_;
    return d;
  }

 private:
  bool first_packet_on() const noexcept {
    return server_side_ && !got_packet_ && o_->first_packet_timeout.count() > 0;
  }
  bool heartbeat_on() const noexcept { return o_->heartbeat_biz_type && o_->heartbeat_interval.count() > 0; }

  const session_options* o_;  // a pointer, not copies: a session is kept small
  time_point established_{}, last_rx_{}, last_tx_{};
  time_point close_at_ = never;
  time_point paused_until_ = never;
  bool server_side_;
  bool got_packet_ = false;
  bool closing_ = false;
};

}  // namespace msgtrans::detail

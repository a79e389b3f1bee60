// What a server and a client share as session hosts: each event goes to its handler when
// one is set, otherwise to the event stream when it is enabled, otherwise it is counted as
// unhandled. Also the counters and their snapshot.
#pragma once

#include "runtime/event_queue.hpp"
#include "runtime/owned_packet.hpp"
#include "runtime/session_core.hpp"

#include <msgtrans/server.hpp>

namespace msgtrans::detail {

class event_router : public session_host {
 public:
  event_stream& events() noexcept { return stream_; }
  host_counters& counters() noexcept override { return counters_; }

  void session_established(session_core& s) override {
    if (h_.on_connected) h_.on_connected(s.info());
    else if (capacity_) events_->push(connected_event{s.id(), s.info()}, s.shared_from_this());
  }
  void session_message(session_core& s, const message& m) override {
    if (h_.on_message) h_.on_message(m);
    else if (capacity_) events_->push(message_event{s.id(), to_owned(m)}, s.shared_from_this());
    else counters_.unhandled.fetch_add(1, std::memory_order_relaxed);
  }
  bool wants_sent() const noexcept override { return h_.on_sent || (capacity_ && sent_to_stream_); }
  void session_sent(session_core& s, std::uint32_t message_id) override {
    if (h_.on_sent) h_.on_sent(s.id(), message_id);
    else if (capacity_ && sent_to_stream_) events_->push(sent_event{s.id(), message_id}, s.shared_from_this());
  }
  void session_request(session_core& s, msgtrans::request& r) override {
    if (h_.on_request) h_.on_request(r);
    else if (capacity_) events_->push(request_event{s.id(), to_owned(r), r.take_responder()}, s.shared_from_this());
    else counters_.unhandled.fetch_add(1, std::memory_order_relaxed);
  }

 protected:
  event_router(handlers h, std::size_t event_capacity, bool sent_to_stream)
      : h_(std::move(h)),
        capacity_(event_capacity),
        sent_to_stream_(sent_to_stream),
        events_(std::make_shared<event_queue>(std::max<std::size_t>(1, event_capacity))),
        stream_(events_) {}
  ~event_router() = default;

  void deliver_closed(session_core& s, const close_info& info) {
    if (h_.on_closed) h_.on_closed(s.id(), info);
    else if (capacity_) events_->push(closed_event{s.id(), info}, nullptr);
  }
  void deliver_error(error_event e) {
    if (h_.on_error) h_.on_error(e);
    else if (capacity_) events_->push(std::move(e), nullptr);
  }
  void close_events() { events_->close(); }

  /// The counters every host keeps, into `st` (server_stats or client_stats).
  template <class Stats>
  void fill_stats(Stats& st) const {
    st.packets_in = counters_.packets_in.load();
    st.packets_out = counters_.packets_out.load();
    st.bytes_in = counters_.bytes_in.load();
    st.bytes_out = counters_.bytes_out.load();
    st.requests_in_flight = counters_.requests_in_flight.load();
    st.request_timeouts = counters_.request_timeouts.load();
    st.queue_full_rejections = counters_.queue_full.load();
    st.protocol_errors = counters_.protocol_errors.load();
    st.unhandled = counters_.unhandled.load();
    if constexpr (requires { st.rate_limited_closes; }) {
      st.rate_limited_closes = counters_.rate_limited_closes.load();
      st.rate_limited_pauses = counters_.rate_limited_pauses.load();
    }
    st.request_latency = counters_.request_latency.snapshot();
    st.response_latency = counters_.response_latency.snapshot();
    st.request_latency_mean_us = st.request_latency.mean_us();
    st.response_latency_mean_us = st.response_latency.mean_us();
    st.resident_memory_bytes = resident_memory_bytes();
  }

 private:
  handlers h_;
  std::size_t capacity_;
  bool sent_to_stream_;
  std::shared_ptr<event_queue> events_;
  event_stream stream_;
  host_counters counters_;
};

}  // namespace msgtrans::detail

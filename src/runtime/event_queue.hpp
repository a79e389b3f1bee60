// The bounded event stream behind msgtrans::event_stream. Producers are connection
// loops; one consumer. When it holds `capacity` events the producing sessions are asked
// to stop reading; they resume once the consumer has taken it below half.
#pragma once

#include <msgtrans/events.hpp>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace msgtrans::detail {

class session_core;

class event_queue {
 public:
  using handler = boost::asio::any_completion_handler<void(std::error_code, event)>;

  explicit event_queue(std::size_t capacity) : capacity_(capacity) {}

  /// Adds an event (never drops). `from` is paused when the queue is full.
  void push(event e, const std::shared_ptr<session_core>& from);
  /// No more events will come: a waiting consumer gets shutting_down once empty.
  void close();

  void next(handler h);
  std::optional<event> wait_for(std::chrono::milliseconds timeout);
  std::optional<event> try_next();
  std::size_t size() const;

 private:
  std::optional<event> pop_locked(std::unique_lock<std::mutex>& lock);

  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<event> events_;
  std::optional<handler> waiter_;
  std::vector<std::weak_ptr<session_core>> paused_;
  bool closed_ = false;
};

}  // namespace msgtrans::detail

#include "runtime/event_queue.hpp"

#include "runtime/session_core.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <thread>

namespace msgtrans {
namespace detail {

namespace asio = boost::asio;

namespace {
void deliver(event_queue::handler h, std::error_code ec, event e) {
  // Callers release their lock first; the consumer runs on its own executor.
  auto ex = asio::get_associated_executor(h);
  asio::dispatch(ex, [h = std::move(h), ec, e = std::move(e)]() mutable { std::move(h)(ec, std::move(e)); });
}
}  // namespace

void event_queue::push(event e, const std::shared_ptr<session_core>& from) {
  std::unique_lock lock(mu_);
  if (waiter_) {
    auto h = std::move(*waiter_);
    waiter_.reset();
    lock.unlock();
    deliver(std::move(h), {}, std::move(e));
    return;
  }
  events_.push_back(std::move(e));
  const bool full = events_.size() >= capacity_;
  if (full && from) paused_.push_back(from);
  lock.unlock();
  cv_.notify_one();
  if (full && from) from->set_event_backpressure(true);
}

void event_queue::close() {
  std::unique_lock lock(mu_);
  closed_ = true;
  if (waiter_ && events_.empty()) {
    auto h = std::move(*waiter_);
    waiter_.reset();
    lock.unlock();
    deliver(std::move(h), errc::shutting_down, event{});
    return;
  }
  lock.unlock();
  cv_.notify_all();
}

std::optional<event> event_queue::pop_locked(std::unique_lock<std::mutex>& lock) {
  if (events_.empty()) return std::nullopt;
  event e = std::move(events_.front());
  events_.pop_front();
  if (!paused_.empty() && events_.size() <= capacity_ / 2) {
    auto resume = std::move(paused_);
    paused_.clear();
    lock.unlock();
    for (auto& w : resume)
      if (auto s = w.lock()) s->set_event_backpressure(false);
    lock.lock();
  }
  return e;
}

void event_queue::next(handler h) {
  std::unique_lock lock(mu_);
  if (auto e = pop_locked(lock)) {
    lock.unlock();
    deliver(std::move(h), {}, std::move(*e));
    return;
  }
  if (closed_) {
    lock.unlock();
    deliver(std::move(h), errc::shutting_down, event{});
    return;
  }
  waiter_ = std::move(h);
}

std::optional<event> event_queue::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty() || closed_; });
  return pop_locked(lock);
}

std::optional<event> event_queue::try_next() {
  std::unique_lock lock(mu_);
  return pop_locked(lock);
}

std::size_t event_queue::size() const {
  std::lock_guard lock(mu_);
  return events_.size();
}

}  // namespace detail

// ---- event_stream (public facade) ----

std::optional<event> event_stream::wait_for(std::chrono::milliseconds timeout) { return q_->wait_for(timeout); }
std::optional<event> event_stream::try_next() { return q_->try_next(); }
std::size_t event_stream::size() const { return q_->size(); }
void event_stream::next_impl(boost::asio::any_completion_handler<void(std::error_code, event)> h) {
  q_->next(std::move(h));
}

}  // namespace msgtrans

#include <msgtrans/runtime.hpp>

namespace msgtrans {

runtime::runtime(std::size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < threads; ++i) {
    loops_.push_back(std::make_unique<boost::asio::io_context>(1));
    guards_.push_back(boost::asio::make_work_guard(*loops_.back()));
  }
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([ctx = loops_[i].get()] { ctx->run(); });
}

runtime::~runtime() { stop(); }

boost::asio::io_context& runtime::next_loop() noexcept {
  return *loops_[next_.fetch_add(1, std::memory_order_relaxed) % loops_.size()];
}

bool runtime::in_loop_thread() const noexcept {
  for (auto& l : loops_)
    if (l->get_executor().running_in_this_thread()) return true;
  return false;
}

void runtime::stop() {
  guards_.clear();
  for (auto& l : loops_) l->stop();
  for (auto& t : threads_)
    if (t.joinable()) {
      if (t.get_id() == std::this_thread::get_id()) t.detach();
      else t.join();
    }
  threads_.clear();
}

}  // namespace msgtrans

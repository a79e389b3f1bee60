/// @file runtime.hpp
/// A pool of event loops (one boost::asio::io_context per thread). A server owns one;
/// many clients may share one, so a thousand clients need not mean a thousand threads.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

namespace msgtrans {

class runtime {
 public:
  /// Starts `threads` loops (0 = std::thread::hardware_concurrency()).
  explicit runtime(std::size_t threads = 0);
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// The loops, round robin.
  boost::asio::io_context& next_loop() noexcept;
  boost::asio::io_context& loop(std::size_t i) noexcept { return *loops_[i]; }
  std::size_t size() const noexcept { return loops_.size(); }
  /// True on one of this runtime's loop threads.
  bool in_loop_thread() const noexcept;
  /// Stops the loops and joins the threads (also done by the destructor).
  void stop();

 private:
  std::vector<std::unique_ptr<boost::asio::io_context>> loops_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace msgtrans

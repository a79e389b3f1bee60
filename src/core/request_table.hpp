// Requests this side sent and still waits for, with their deadlines. Sans-I/O: the
// caller supplies `now`. Matching is by message_id within one connection.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace msgtrans::detail {

template <class Completion, class Clock = std::chrono::steady_clock>
class request_table {
 public:
  using time_point = typename Clock::time_point;

  struct entry {
    time_point started;
    time_point deadline;
    Completion done;
  };

  /// Registers `id`. Returns false if it is already pending (never replaced).
  bool add(std::uint32_t id, time_point now, time_point deadline, Completion done) {
    auto [it, inserted] = pending_.try_emplace(id, entry{now, deadline, std::move(done)});
    if (!inserted) return false;
    heap_.push_back({deadline, id});
    std::push_heap(heap_.begin(), heap_.end(), later);
    return true;
  }

  /// Removes and returns the entry for `id`, if pending.
  std::optional<entry> take(std::uint32_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return std::nullopt;
    entry e = std::move(it->second);
    pending_.erase(it);
    maybe_compact();
    return e;
  }

  /// Removes every entry whose deadline is at or before `now`, calling f(id, entry).
  template <class F>
  std::size_t expire(time_point now, F&& f) {
    std::size_t n = 0;
    while (!heap_.empty() && heap_.front().first <= now) {
      auto [deadline, id] = heap_.front();
      std::pop_heap(heap_.begin(), heap_.end(), later);
      heap_.pop_back();
      auto it = pending_.find(id);
      if (it == pending_.end() || it->second.deadline != deadline) continue;  // answered already
      entry e = std::move(it->second);
      pending_.erase(it);
      f(id, e);
      ++n;
    }
    return n;
  }

  /// Removes every entry, calling f(id, entry) (connection lost).
  template <class F>
  void clear(F&& f) {
    auto all = std::move(pending_);
    pending_.clear();
    heap_.clear();
    for (auto& [id, e] : all) f(id, e);
  }

  /// The earliest deadline still pending.
  std::optional<time_point> next_deadline() {
    while (!heap_.empty()) {
      auto [deadline, id] = heap_.front();
      auto it = pending_.find(id);
      if (it != pending_.end() && it->second.deadline == deadline) return deadline;
      std::pop_heap(heap_.begin(), heap_.end(), later);
      heap_.pop_back();
    }
    return std::nullopt;
  }

  std::size_t size() const noexcept { return pending_.size(); }
  bool empty() const noexcept { return pending_.empty(); }
  /// Deadline-heap entries, answered ones included (bounded: see maybe_compact).
  std::size_t heap_size() const noexcept { return heap_.size(); }

 private:
  static bool later(const std::pair<time_point, std::uint32_t>& a, const std::pair<time_point, std::uint32_t>& b) {
    return a.first > b.first;
  }
  // Answered requests leave stale heap entries; rebuild when they dominate.
  void maybe_compact() {
    if (heap_.size() <= 2 * pending_.size() + 64) return;
    heap_.clear();
    for (auto& [id, e] : pending_) heap_.push_back({e.deadline, id});
    std::make_heap(heap_.begin(), heap_.end(), later);
  }

  std::unordered_map<std::uint32_t, entry> pending_;
  std::vector<std::pair<time_point, std::uint32_t>> heap_;
};

}  // namespace msgtrans::detail

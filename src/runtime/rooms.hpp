// The rooms of one node: which local sessions are in which room. Thread-safe; the
// fan-out copies a room's members into a per-thread list under a shared lock and sends
// outside it, so a steady publisher allocates nothing per member.
#pragma once

#include "runtime/session_core.hpp"

#include <msgtrans/session.hpp>

#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace msgtrans::detail {

class room_registry {
 public:
  /// Called under the registry's lock when a room gets its first local member
  /// (`true`) or loses its last (`false`): the cluster subscribes or unsubscribes there,
  /// so the two can never cross. Must not call back into the registry.
  using interest_handler = std::function<void(std::string_view room, bool interested)>;
  void on_interest(interest_handler h) { interest_ = std::move(h); }

  /// False when the session already was in the room.
  bool join(const std::shared_ptr<session_core>& s, std::string_view room);
  /// False when it was not in the room.
  bool leave(session_id s, std::string_view room);
  void leave_all(session_id s);
  std::vector<std::string> rooms_of(session_id s) const;
  std::size_t size(std::string_view room) const;
  std::size_t room_count() const;
  std::size_t memberships() const;
  /// Calls f(room, members) for every room with members (under the shared lock).
  void for_each_room(const std::function<void(std::string_view, std::size_t)>& f) const;

  /// Calls f(session) for each member of `room` but `except`, outside the lock; returns
  /// how many calls returned true.
  template <class F>
  std::size_t fan_out(std::string_view room, session_id except, F&& f) const {
    thread_local std::vector<std::shared_ptr<session_core>> members;
    members.clear();
    {
      std::shared_lock lock(mu_);
      auto it = rooms_.find(room);
      if (it == rooms_.end()) return 0;
      for (auto& m : it->second)
        if (m->id() != except) members.push_back(m);
    }
    std::size_t n = 0;
    for (auto& m : members) n += f(*m) ? 1 : 0;
    members.clear();  // no session outlives the call through this list
    return n;
  }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using member_list = std::vector<std::shared_ptr<session_core>>;
  bool erase_member(session_id s, std::string_view room);  // with mu_ held

  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, member_list, string_hash, std::equal_to<>> rooms_;
  std::unordered_map<session_id, std::vector<std::string>> of_;
  std::size_t memberships_ = 0;
  interest_handler interest_;
};

}  // namespace msgtrans::detail

#include "runtime/rooms.hpp"

#include <algorithm>
#include <mutex>

namespace msgtrans::detail {

bool room_registry::join(const std::shared_ptr<session_core>& s, std::string_view room) {
  std::unique_lock lock(mu_);
  auto& mine = of_[s->id()];
  if (std::find(mine.begin(), mine.end(), room) != mine.end()) return false;
  mine.emplace_back(room);
  auto it = rooms_.find(room);
  if (it == rooms_.end()) {
    it = rooms_.emplace(std::string(room), member_list{}).first;
    if (interest_) interest_(room, true);
  }
  it->second.push_back(s);
  ++memberships_;
  return true;
}

bool room_registry::erase_member(session_id s, std::string_view room) {
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return false;
  auto& v = it->second;
  auto m = std::find_if(v.begin(), v.end(), [&](auto& p) { return p->id() == s; });
  if (m == v.end()) return false;
  *m = std::move(v.back());  // order within a room does not matter
  v.pop_back();
  --memberships_;
  if (v.empty()) {
    if (interest_) interest_(room, false);
    rooms_.erase(it);
  }
  return true;
}

bool room_registry::leave(session_id s, std::string_view room) {
  std::unique_lock lock(mu_);
  auto of = of_.find(s);
  if (of == of_.end()) return false;
  auto r = std::find(of->second.begin(), of->second.end(), room);
  if (r == of->second.end()) return false;
  erase_member(s, room);
  of->second.erase(r);
  if (of->second.empty()) of_.erase(of);
  return true;
}

void room_registry::leave_all(session_id s) {
  std::unique_lock lock(mu_);
  auto of = of_.find(s);
  if (of == of_.end()) return;
  for (auto& room : of->second) erase_member(s, room);
  of_.erase(of);
}

std::vector<std::string> room_registry::rooms_of(session_id s) const {
  std::shared_lock lock(mu_);
  auto of = of_.find(s);
  if (of == of_.end()) return {};
  auto v = of->second;
  std::sort(v.begin(), v.end());
  return v;
}

std::size_t room_registry::size(std::string_view room) const {
  std::shared_lock lock(mu_);
  auto it = rooms_.find(room);
  return it == rooms_.end() ? 0 : it->second.size();
}

std::size_t room_registry::room_count() const {
  std::shared_lock lock(mu_);
  return rooms_.size();
}

std::size_t room_registry::memberships() const {
  std::shared_lock lock(mu_);
  return memberships_;
}

void room_registry::for_each_room(const std::function<void(std::string_view, std::size_t)>& f) const {
  std::shared_lock lock(mu_);
  for (auto& [room, members] : rooms_) f(room, members.size());
}

}  // namespace msgtrans::detail

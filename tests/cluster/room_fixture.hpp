// Rooms tests: nodes (servers) with TCP members (clients on one shared runtime), and
// what each member received, in order.
#pragma once

#include "support/test_support.hpp"

#include <msgtrans/msgtrans.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace msgtrans::test {

/// A member: a client, its session id on its node, and what it received.
struct member {
  client c;
  session_id id;
  std::size_t node = 0;
};

class room_env {
 public:
  /// Attaches node `i` to the cluster under test (nothing: rooms stay in the process).
  using attach_fn = std::function<void(server_builder&, std::size_t node)>;

  explicit room_env(attach_fn attach = {}) : attach_(std::move(attach)) {}
  ~room_env() {
    members_.clear();
    nodes_.clear();
  }

  waiter w;

  /// Starts a node; its index.
  std::size_t add_node(std::function<void(server_builder&)> tweak = {}) {
    const std::size_t i = nodes_.size();
    auto n = std::make_unique<node>();
    server_builder b;
    b.listen(tcp_server_config{"127.0.0.1:0"}).threads(2);
    node* raw = n.get();
    b.on_connected([this, raw](const connection_info& ci) { w.update([&] { raw->connected.push_back(ci.session); }); });
    b.on_closed([this, raw](session_id s, const close_info&) { w.update([&] { raw->closed.push_back(s); }); });
    if (attach_) attach_(b, i);
    if (tweak) tweak(b);
    n->s = std::make_unique<server>(b.build());
    if (auto e = n->s->start()) throw std::runtime_error("node start: " + e.message());
    nodes_.push_back(std::move(n));
    return i;
  }
  server& srv(std::size_t i) { return *nodes_[i]->s; }

  /// Connects a member to node `i`; its index. `tweak` may add handlers.
  std::size_t add_member(std::size_t i, std::function<void(client_builder&)> tweak = {}) {
    const std::size_t k = members_.size();
    w.update([&] { got_.emplace_back(); });
    client_builder b;
    b.connect_to(tcp_client_config{address_of(srv(i))}).use_runtime(rt_);
    b.on_message([this, k](const message& m) { w.update([&] { got_[k].emplace_back(m.text()); }); });
    if (tweak) tweak(b);
    auto c = b.build();
    const std::size_t before = count_on(i);
    if (auto e = c.connect()) throw std::runtime_error("member connect: " + e.message());
    if (!w.wait([&] { return nodes_[i]->connected.size() > before; }))
      throw std::runtime_error("member never reached on_connected");
    session_id id;
    {
      std::lock_guard lock(w.mutex());
      id = nodes_[i]->connected.back();
    }
    members_.push_back(std::make_unique<member>(member{std::move(c), id, i}));
    return k;
  }
  member& m(std::size_t k) { return *members_[k]; }
  std::size_t members() const { return members_.size(); }

  /// What member k received so far (a copy).
  std::vector<std::string> got(std::size_t k) {
    std::lock_guard lock(w.mutex());
    return got_[k];
  }
  /// Waits until member k's last message is `text`.
  bool wait_last(std::size_t k, const std::string& text, std::chrono::milliseconds t = 10s) {
    return w.wait([&] { return !got_[k].empty() && got_[k].back() == text; }, t);
  }
  /// Waits until member k has received a message starting with `prefix`.
  bool wait_prefix(std::size_t k, const std::string& prefix, std::chrono::milliseconds t) {
    return w.wait([&] {
      for (auto& m : got_[k])
        if (m.rfind(prefix, 0) == 0) return true;
      return false;
    }, t);
  }
  /// Sends `text` straight to member k and waits for it: anything sent to k before has
  /// arrived by then (one connection keeps order).
  bool sync(std::size_t k, const std::string& text = "sync") {
    if (srv(m(k).node).send(m(k).id, text)) return false;
    return wait_last(k, text);
  }
  /// Waits until node i saw session s close.
  bool wait_closed(std::size_t i, session_id s) {
    return w.wait([&] {
      for (auto c : nodes_[i]->closed)
        if (c == s) return true;
      return false;
    });
  }
  /// Polls (there is no event for it) until every node counts `n` members cluster-wide.
  bool wait_room_size(const std::string& room, std::size_t n, std::chrono::milliseconds t = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < deadline) {
      bool all = true;
      for (auto& nd : nodes_) all = all && nd->s->room_size(room, room_scope::cluster) == n;
      if (all) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

 private:
  struct node {
    std::vector<session_id> connected, closed;
    std::unique_ptr<server> s;  // last: stopping it still reports closes into the lists
  };
  std::size_t count_on(std::size_t i) {
    std::lock_guard lock(w.mutex());
    return nodes_[i]->connected.size();
  }

  attach_fn attach_;
  std::shared_ptr<runtime> rt_ = std::make_shared<runtime>(2);
  std::vector<std::unique_ptr<node>> nodes_;
  std::vector<std::unique_ptr<member>> members_;
  std::deque<std::vector<std::string>> got_;
};

}  // namespace msgtrans::test

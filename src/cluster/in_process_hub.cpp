// The in-process bus: servers of one process linked as nodes, with no thread and no
// network. A publish is handed to each subscribed bus on the publisher's thread, under
// that bus's delivery lock (one delivery at a time per bus, so per subject too).
#include <msgtrans/cluster.hpp>

#include <algorithm>
#include <mutex>
#include <set>
#include <vector>

namespace msgtrans {

namespace {
class hub_bus;
}  // namespace

struct detail::hub_state {
  std::mutex mu;
  std::vector<std::shared_ptr<hub_bus>> buses;
};

namespace {

class hub_bus final : public std::enable_shared_from_this<hub_bus> {
 public:
  explicit hub_bus(std::shared_ptr<detail::hub_state> hub) : hub_(std::move(hub)) {}

  void start(cluster_bus::message_handler h) {
    std::lock_guard lock(deliver_mu_);
    handler_ = std::move(h);
    stopped_ = false;
  }
  bool subscribed(std::string_view subject) {
    std::lock_guard lock(subs_mu_);
    return subs_.find(subject) != subs_.end();
  }
  void subscribe(std::string_view subject) {
    std::lock_guard lock(subs_mu_);
    subs_.emplace(subject);
  }
  void unsubscribe(std::string_view subject) {
    std::lock_guard lock(subs_mu_);
    if (auto it = subs_.find(subject); it != subs_.end()) subs_.erase(it);
  }
  void deliver(std::string_view subject, bytes_view data) {
    std::lock_guard lock(deliver_mu_);
    if (!stopped_ && handler_) handler_(subject, data);
  }
  // After it returns, no delivery runs and none starts.
  void stop() {
    std::lock_guard lock(deliver_mu_);
    stopped_ = true;
    handler_ = nullptr;
  }

 private:
  std::shared_ptr<detail::hub_state> hub_;
  std::mutex subs_mu_;
  std::set<std::string, std::less<>> subs_;
  std::mutex deliver_mu_;
  cluster_bus::message_handler handler_;
  bool stopped_ = true;
};

class in_process_bus final : public cluster_bus {
 public:
  explicit in_process_bus(std::shared_ptr<detail::hub_state> hub)
      : hub_(std::move(hub)), self_(std::make_shared<hub_bus>(hub_)) {}
  ~in_process_bus() override { stop(); }

  error_info start(message_handler on_message, state_handler on_state) override {
    self_->start(std::move(on_message));
    {
      std::lock_guard lock(hub_->mu);
      if (std::find(hub_->buses.begin(), hub_->buses.end(), self_) == hub_->buses.end()) hub_->buses.push_back(self_);
    }
    state_ = bus_state::connected;
    if (on_state) on_state(bus_state::connected, "in-process hub");
    return {};
  }
  std::error_code publish(std::string_view subject, bytes_view data) override {
    if (state_ != bus_state::connected) return errc::not_connected;
    std::vector<std::shared_ptr<hub_bus>> to;
    {
      std::lock_guard lock(hub_->mu);
      for (auto& b : hub_->buses)
        if (b != self_ && b->subscribed(subject)) to.push_back(b);
    }
    for (auto& b : to) b->deliver(subject, data);
    return {};
  }
  std::error_code subscribe(std::string_view subject) override {
    self_->subscribe(subject);
    return {};
  }
  void unsubscribe(std::string_view subject) override { self_->unsubscribe(subject); }
  bus_state state() const noexcept override { return state_; }
  void stop() override {
    {
      std::lock_guard lock(hub_->mu);
      std::erase(hub_->buses, self_);
    }
    self_->stop();
    state_ = bus_state::closed;
  }

 private:
  std::shared_ptr<detail::hub_state> hub_;
  std::shared_ptr<hub_bus> self_;
  std::atomic<bus_state> state_{bus_state::connecting};
};

}  // namespace

in_process_hub::in_process_hub() : state_(std::make_shared<detail::hub_state>()) {}
in_process_hub::~in_process_hub() = default;
std::unique_ptr<cluster_bus> in_process_hub::connect() { return std::make_unique<in_process_bus>(state_); }

}  // namespace msgtrans

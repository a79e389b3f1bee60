// A connection_owner that sends every packet back, corking like the runtime does: the
// packets received during one loop turn leave in one connection::write. A request
// (packet_type 1) goes back as a response (packet_type 2) with the same id and payload;
// anything else goes back unchanged. Used by ws_echo_fixture and the transport tests.
#pragma once

#include <msgtrans/transport.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace msgtrans::test {

class echo_owner final : public connection_owner {
 public:
  using closed_handler = std::function<void(echo_owner*, close_info)>;

  echo_owner(boost::asio::io_context& loop, std::unique_ptr<connection> c, closed_handler on_closed)
      : loop_(loop), conn_(std::move(c)), on_closed_(std::move(on_closed)) {}
  ~echo_owner() { *alive_ = false; }

  void start() { conn_->start(*this); }
  connection& conn() { return *conn_; }

  void on_packet(bytes_view p) override {
    const std::size_t at = next_.size();
    next_.insert(next_.end(), p.begin(), p.end());
    next_sizes_.push_back(p.size());
    if (p.size() > 2 && next_[at + 2] == std::byte{1}) next_[at + 2] = std::byte{2};
    if (!writing_ && !flush_posted_) {
      flush_posted_ = true;
      boost::asio::post(loop_, [this, alive = alive_] {
        if (!*alive) return;
        flush_posted_ = false;
        flush();
      });
    }
  }

  void on_write_done() override {
    writing_ = false;
    flush();
  }

  void on_closed(close_info info) override {
    closed_ = true;
    if (on_closed_) on_closed_(this, std::move(info));
  }

 private:
  void flush() {
    if (writing_ || closed_ || next_sizes_.empty()) return;
    out_.swap(next_);
    out_sizes_.swap(next_sizes_);
    next_.clear();
    next_sizes_.clear();
    views_.clear();
    std::size_t pos = 0;
    for (auto n : out_sizes_) {
      views_.emplace_back(out_.data() + pos, n);
      pos += n;
    }
    writing_ = true;
    conn_->write(views_);
  }

  boost::asio::io_context& loop_;
  std::unique_ptr<connection> conn_;
  closed_handler on_closed_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  byte_buffer next_, out_;
  std::vector<std::size_t> next_sizes_, out_sizes_;
  std::vector<bytes_view> views_;
  bool writing_ = false;
  bool flush_posted_ = false;
  bool closed_ = false;
};

}  // namespace msgtrans::test

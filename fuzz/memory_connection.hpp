// For the read-path fuzzers: a connection whose writes go to memory, and the loop that
// cuts the fuzzer's bytes with the TCP frame decoder and hands each packet to the
// session, in chunks whose size the first byte picks (so splits fall everywhere).
#pragma once

#include <msgtrans/frame_decoder.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>

namespace msgtrans::fuzz {

// What the harness observes; outlives the connection (the session destroys it after close).
struct wire {
  connection_owner* owner = nullptr;
  std::size_t written = 0;
  bool reading = true, closed = false;
  void close(close_info info) {
    if (closed) return;
    closed = true;
    owner->on_closed(std::move(info));
  }
};

class memory_connection final : public connection {
 public:
  explicit memory_connection(std::shared_ptr<wire> w) : w_(std::move(w)) {}
  void start(connection_owner& o) override { w_->owner = &o; }
  void write(std::span<const bytes_view> packets) override {
    for (auto p : packets) w_->written += p.size();
    w_->owner->on_write_done();
  }
  void set_reading(bool on) override { w_->reading = on; }
  void close(close_info info) override { w_->close(std::move(info)); }
  endpoint_info info() const override { return {"tcp", "mem:1", "mem:2"}; }

 private:
  std::shared_ptr<wire> w_;
};

/// Feeds `data` (its first byte picks the chunk size) through the TCP framing to the
/// session behind `mem`, one loop turn per chunk, until the end or a close.
inline void feed_tcp(boost::asio::io_context& io, wire& mem, const std::uint8_t* data, std::size_t size,
                     decode_limits limits) {
  frame_decoder dec(stream_framing::tcp, limits);
  const std::size_t chunk = size ? (data[0] % 64) + 1 : 1;
  for (std::size_t off = size ? 1 : 0; off < size && !mem.closed; off += chunk) {
    const std::size_t n = std::min(chunk, size - off);
    boost::asio::post(io, [&, off, n] {
      auto ec = dec.feed({reinterpret_cast<const std::byte*>(data + off), n}, [&](bytes_view p) {
        if (mem.closed) return false;
        mem.owner->on_packet(p);
        return true;
      });
      if (ec && !mem.closed) mem.close(close_info{close_reason::protocol_error, ec, ec.message()});
    });
    io.poll();
  }
}

}  // namespace msgtrans::fuzz

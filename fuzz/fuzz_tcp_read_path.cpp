// The whole server read path of the TCP transport without a socket: bytes are cut by
// the TCP frame decoder, handed to a real session (validation, decompression, request /
// one-way dispatch, responder, encoding into the write queue), and the session's writes
// go to an in-memory connection. Handlers echo, as `msgtrans serve` does.
#include "echo_session_host.hpp"
#include "runtime/session_core.hpp"

#include <msgtrans/frame_decoder.hpp>

#include <cstdint>
#include <cstring>

namespace {

using namespace msgtrans;

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

using echo_host = fuzz::echo_session_host;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  boost::asio::io_context io;
  echo_host host;
  auto mem = std::make_shared<wire>();
  auto conn = std::make_unique<memory_connection>(mem);
  session_options o;
  o.max_message_size = 64 * 1024;  // small limits keep the fuzzer fast
  o.write_high_water = 16 * 1024;
  auto s = std::make_shared<detail::session_core>(host, io, std::move(conn), session_id{1}, o, true);
  boost::asio::post(io, [&] { s->start(); });
  io.poll();
  frame_decoder dec(stream_framing::tcp, o.limits());
  // The first byte picks the chunk size, so splits fall everywhere.
  const std::size_t chunk = size ? (data[0] % 64) + 1 : 1;
  for (std::size_t off = size ? 1 : 0; off < size && !mem->closed; off += chunk) {
    const std::size_t n = std::min(chunk, size - off);
    boost::asio::post(io, [&, off, n] {
      auto ec = dec.feed({reinterpret_cast<const std::byte*>(data + off), n}, [&](bytes_view p) {
        if (mem->closed) return false;
        mem->owner->on_packet(p);
        return true;
      });
      if (ec && !mem->closed) mem->close(close_info{close_reason::protocol_error, ec, ec.message()});
    });
    io.poll();
  }
  s->close(close_info{close_reason::shutdown, {}, "fuzz done"});
  io.poll();
  if (!mem->closed) mem->close(close_info{close_reason::shutdown, {}, "fuzz done"});
  io.poll();
  return 0;
}

// The authentication gate of a server session (TCP, TLS and QUIC authenticate by their
// first packet): bytes are cut by the TCP frame decoder and handed to a real session of a
// host that authenticates. The token picks the hook's answer: "ok..." accepts at once,
// "late..." accepts from a later loop turn, "hold..." never answers, anything else is
// refused. The harness traps if anything reaches the handlers before the session is
// accepted, or after a refusal.
#include "echo_session_host.hpp"
#include "runtime/session_core.hpp"

#include <msgtrans/frame_decoder.hpp>

#include <boost/asio/post.hpp>

#include <cstdint>
#include <string>

namespace {

using namespace msgtrans;

struct wire {
  connection_owner* owner = nullptr;
  bool closed = false;
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
  void write(std::span<const bytes_view>) override { w_->owner->on_write_done(); }
  void set_reading(bool) override {}
  void close(close_info info) override { w_->close(std::move(info)); }
  endpoint_info info() const override { return {"tcp", "mem:1", "mem:2"}; }

 private:
  std::shared_ptr<wire> w_;
};

class gate_host final : public detail::session_host {
 public:
  explicit gate_host(boost::asio::io_context& io) : io_(io) {}
  void session_established(detail::session_core& s) override {
    if (!accepted_) __builtin_trap();  // established without an accept
    (void)s;
  }
  void session_message(detail::session_core& s, const message&) override { check(s); }
  void session_request(detail::session_core& s, msgtrans::request& r) override {
    check(s);
    (void)r.respond(r.payload);
  }
  void session_closed(detail::session_core&, const close_info&) override {}
  detail::host_counters& counters() noexcept override { return counters_; }
  bool authenticates() const noexcept override { return true; }
  void authenticate(detail::session_core&, auth_request r, std::function<void(auth_outcome)> done) override {
    if (asked_) __builtin_trap();  // the hook is asked once per connection
    asked_ = true;
    auth_outcome yes{true, std::make_shared<const identity>(identity{r.token, {}}), {}, false};
    if (r.token.rfind("ok", 0) == 0) {
      accepted_ = true;
      return done(yes);
    }
    if (r.token.rfind("late", 0) == 0) {
      accepted_ = true;
      boost::asio::post(io_, [done, yes] { done(yes); });
      return;
    }
    if (r.token.rfind("hold", 0) == 0) {
      held_ = std::move(done);  // never answered
      return;
    }
    done(auth_outcome{false, nullptr, "refused", r.token.empty()});
  }

 private:
  void check(detail::session_core& s) const {
    if (!accepted_ || !s.established() || !s.identity()) __builtin_trap();
  }
  boost::asio::io_context& io_;
  detail::host_counters counters_;
  bool asked_ = false, accepted_ = false;
  std::function<void(auth_outcome)> held_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  boost::asio::io_context io;
  gate_host host(io);
  auto mem = std::make_shared<wire>();
  session_options o;
  o.max_message_size = 64 * 1024;
  o.write_high_water = 16 * 1024;
  auto s = std::make_shared<detail::session_core>(host, io, std::make_unique<memory_connection>(mem), session_id{1}, o,
                                                  true);
  boost::asio::post(io, [&] { s->start(); });
  io.poll();
  frame_decoder dec(stream_framing::tcp, o.limits());
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

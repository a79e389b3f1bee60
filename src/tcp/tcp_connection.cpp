#include "tcp/tcp_connection.hpp"

#include "net/address.hpp"
#include "net/partial_budget.hpp"
#include "net/read_buffer.hpp"
#include "core/op_allocator.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace msgtrans::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr std::size_t min_read = 512;          // reads behind a partial frame start this small
constexpr std::size_t max_read = 256 * 1024;   // and grow up to this while they fill
constexpr std::size_t loop_read = net::loop_read_buffer::size;  // what a readable connection reads at once

}  // namespace

struct tcp_connection::state : std::enable_shared_from_this<state> {
  state(asio::ip::tcp::socket s, const transport_context& ctx, std::string p)
      : sock(std::move(s)),
        decoder(stream_framing::tcp, ctx.limits),
        limits(ctx.limits),
        notices(ctx.notices),
        budget(ctx.budget),
        close_timeout(ctx.close_timeout),
        protocol(std::move(p)) {
    error_code ec;
    sock.non_blocking(true, ec);
  }

  asio::ip::tcp::socket sock;
  frame_decoder decoder;  // holds only a partial frame (or packets held back while paused)
  decode_limits limits;
  notice_sink* notices;    // may be null (a client)
  inbound_budget* budget;  // may be null (no budget)
  std::size_t partial = 0;       // declared size of the partial packet buffered, once known
  net::partial_budget budget_hold;  // what this connection holds of the budget
  bool budget_waiting = false;   // reading paused until the budget gives bytes back
  std::chrono::milliseconds close_timeout;     // bounds the lingering close
  std::unique_ptr<asio::steady_timer> timer;  // made by the close
  std::string protocol;
  connection_owner* owner = nullptr;  // null once detached or closed
  std::vector<asio::const_buffer> iov;
  std::uint32_t read_size = min_read;
  bool reading = true;
  bool read_armed = false;
  bool streaming = false;  // the last read filled its buffer: keep the decoder's memory
  bool writing = false;
  bool closing = false;
  bool closed = false;
  close_info why;

  endpoint_info info() const {
    endpoint_info i;
    i.protocol = protocol;
    error_code ec;
    auto l = sock.local_endpoint(ec);
    if (!ec) i.local_address = net::format_endpoint(l);
    auto r = sock.remote_endpoint(ec);
    if (!ec) i.peer_address = net::format_endpoint(r);
    return i;
  }

  void arm_read() {
    if (read_armed || !reading || closing || closed || budget_waiting) return;
    if (!budget_allows()) return;
    read_armed = true;
    if (decoder.buffered() == 0) {
      // Nothing partial: wait for readability without a buffer. (Asio re-arms the
      // descriptor for a wait, so data that came while nobody waited is seen at once.)
      if (!streaming && decoder.capacity() > 0) decoder.shrink();
      sock.async_wait(asio::socket_base::wait_read,
                      asio::bind_allocator(op_allocator<void>{},
                                           [self = shared_from_this()](error_code ec) { self->on_readable(ec); }));
      return;
    }
    // A partial frame: read straight behind it.
    auto space = decoder.prepare(read_size);
    sock.async_read_some(asio::buffer(space.data(), space.size()),
                         [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  // A partial packet past the allowance must hold its declared size of the server-wide
  // budget before more of it is read; if the budget cannot give it, reading waits.
  bool budget_allows() {
    auto& loop = static_cast<asio::io_context&>(sock.get_executor().context());
    auto report_full = [this](std::string detail) { report(notice_kind::budget_full, std::move(detail)); };
    auto make_resume = [this] {
      return [weak = weak_from_this()] {
        if (auto self = weak.lock()) {
          self->budget_waiting = false;
          self->arm_read();
        }
      };
    };
    if (budget_hold.admit(budget, partial, loop, "packet", report_full, make_resume)) return true;
    budget_waiting = true;
    return false;
  }

  void release_budget() { budget_hold.release(budget); }

  void report(notice_kind kind, std::string detail) {
    if (!notices) return;
    notices->report(notice{kind, protocol, info().peer_address, std::move(detail), 0});
  }

  // How every read completion starts: false if the connection is closed, or lingering in
  // a close (then it goes on discarding until EOF).
  bool still_reading(error_code ec) {
    read_armed = false;
    if (closed) return false;
    if (closing) {  // lingering close: discard until EOF
      if (ec) finish();
      else arm_linger_read();
      return false;
    }
    return true;
  }

  void on_readable(error_code ec) {
    if (!still_reading(ec)) return;
    if (ec) return fail(close_info{close_reason::peer_closed, ec, ec.message()});
    auto lb = net::loop_read_buffer::borrow();
    if (!lb) {  // re-entered from a handler on this thread: read into the decoder
      read_armed = true;
      auto space = decoder.prepare(read_size);
      sock.async_read_some(asio::buffer(space.data(), space.size()),
                           [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
      return;
    }
    std::size_t n = sock.read_some(asio::buffer(lb.data(), loop_read), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return arm_read();
    if (ec) return fail(read_error(ec));
    streaming = n == loop_read;
    deliver({lb.data(), n});
    arm_read();
  }

  // Hands every whole packet in `data` to the owner, as the decoder would, and keeps the
  // rest (a partial frame, or packets held back because reading was paused).
  void deliver(bytes_view data) {
    const std::byte* p = data.data();
    std::size_t left = data.size();
    partial = 0;
    while (left >= header_size && owner && reading && !closing && !closed) {
      auto h = decode_header({p, header_size}, limits);
      if (!h) {
        begin_close(close_info{close_reason::protocol_error, h.error(), "stream rejected: " + h.error().message()});
        return;
      }
      const auto total = static_cast<std::size_t>(h->total_size());
      if (left < total) {
        partial = total;
        break;
      }
      owner->on_packet({p, total});
      p += total;
      left -= total;
    }
    if (left > 0 && !closing && !closed) {
      auto space = decoder.prepare(left);
      std::memcpy(space.data(), p, left);
      decoder.commit(left);
    }
  }

  close_info read_error(error_code ec) {
    if (ec == asio::error::eof && decoder.buffered() > 0) {
      // The peer closed inside a packet: say so, not just "peer closed".
      const std::size_t of = partial ? partial : header_size;
      std::string what = "truncated packet: " + std::to_string(decoder.buffered()) + " of " + std::to_string(of) +
                         (partial ? " bytes" : " header bytes");
      report(notice_kind::truncated_packet, what);
      return close_info{close_reason::peer_closed, {}, std::move(what)};
    }
    return ec == asio::error::eof ? close_info{close_reason::peer_closed, {}, "peer closed the connection"}
                                  : close_info{close_reason::peer_closed, ec, ec.message()};
  }

  void on_read(error_code ec, std::size_t n) {
    if (!still_reading(ec)) return;
    if (ec) return fail(read_error(ec));
    decoder.commit(n);
    // Adapt the read size: grow while reads fill it, shrink back when they do not.
    streaming = n == read_size;
    if (n == read_size && read_size < max_read) read_size *= 2;
    else if (n < read_size / 4 && read_size > min_read) read_size /= 2;
    drain();
    arm_read();
  }

  void drain() {
    auto ec = decoder.drain([this](bytes_view p) {
      if (!owner || closing || closed) return false;
      owner->on_packet(p);
      return reading && !closing && !closed;
    });
    partial = decoder.pending_frame();
    if (ec && !closing && !closed)
      begin_close(close_info{close_reason::protocol_error, ec, "stream rejected: " + ec.message()});
  }

  void write(std::span<const bytes_view> packets) {
    iov.clear();
    for (const auto& p : packets) {
      if (!iov.empty() && static_cast<const std::byte*>(iov.back().data()) + iov.back().size() == p.data())
        iov.back() = asio::const_buffer(iov.back().data(), iov.back().size() + p.size());
      else
        iov.emplace_back(p.data(), p.size());
    }
    writing = true;
    // Try now; queue only what the kernel did not take.
    error_code ec;
    std::size_t total = asio::buffer_size(iov);
    std::size_t n = sock.write_some(iov, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec = {};
      n = 0;
    }
    if (ec) return write_failed(ec);
    if (n == total) return write_complete();
    consume(n);
    asio::async_write(sock, iov, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->write_failed(ec);
      self->write_complete();
    });
  }

  void consume(std::size_t n) {
    std::size_t i = 0;
    while (n > 0 && i < iov.size()) {
      if (n >= iov[i].size()) {
        n -= iov[i].size();
        ++i;
      } else {
        iov[i] += n;
        n = 0;
      }
    }
    iov.erase(iov.begin(), iov.begin() + static_cast<std::ptrdiff_t>(i));
  }

  void write_complete() {
    writing = false;
    if (closed) return;
    if (closing) return start_linger();
    if (owner) owner->on_write_done();
  }

  void write_failed(error_code ec) {
    writing = false;
    if (closed) return;
    if (closing) return finish();
    fail(close_info{close_reason::peer_closed, ec, "write failed: " + ec.message()});
  }

  void set_reading(bool on) {
    reading = on;
    if (on && !closing && !closed) {
      // Packets may wait in the decoder from before the pause.
      asio::post(sock.get_executor(), [self = shared_from_this()] {
        if (!self->reading || self->closing || self->closed) return;
        self->drain();
        self->arm_read();
      });
    }
  }

  // Graceful: finish the write in progress (bounded), send FIN, read until the peer's
  // FIN (bounded), then close. Closing at once with unread input would send RST and
  // could destroy data the peer has not read yet.
  void begin_close(close_info info) {
    if (closing || closed) return;
    closing = true;
    why = std::move(info);
    timer = std::make_unique<asio::steady_timer>(sock.get_executor());
    timer->expires_after(close_timeout);
    timer->async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->finish();
    });
    // Lingering protects data we sent in a graceful close; a peer that broke the
    // protocol or timed out is owed none.
    if (why.reason != close_reason::normal && why.reason != close_reason::shutdown) return finish();
    if (!writing) start_linger();
  }

  void start_linger() {
    error_code ignored;
    sock.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    if (!read_armed) arm_linger_read();
  }

  void arm_linger_read() {
    read_armed = true;
    auto space = decoder.prepare(min_read);
    sock.async_read_some(asio::buffer(space.data(), space.size()),
                         [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  // The peer is gone: close at once.
  void fail(close_info info) {
    if (closed) return;
    why = std::move(info);
    finish();
  }

  void finish() {
    if (closed) return;
    closed = true;
    error_code ignored;
    if (timer) timer->cancel();
    sock.close(ignored);
    release_budget();
    if (auto* o = std::exchange(owner, nullptr)) {
      // Report from a fresh handler: the caller may be inside the owner.
      asio::post(sock.get_executor(), [o, self = shared_from_this()] { o->on_closed(std::move(self->why)); });
    }
  }
};

tcp_connection::tcp_connection(asio::ip::tcp::socket socket, const transport_context& ctx, std::string protocol)
    : s_(std::make_shared<state>(std::move(socket), ctx, std::move(protocol))) {}

tcp_connection::~tcp_connection() {
  s_->owner = nullptr;
  if (!s_->closed) {
    s_->closed = true;
    error_code ignored;
    if (s_->timer) s_->timer->cancel();
    s_->sock.close(ignored);
    s_->release_budget();
  }
}

void tcp_connection::start(connection_owner& owner) {
  s_->owner = &owner;
  s_->arm_read();
}
void tcp_connection::write(std::span<const bytes_view> packets) { s_->write(packets); }
void tcp_connection::set_reading(bool enabled) { s_->set_reading(enabled); }
void tcp_connection::close(close_info info) { s_->begin_close(std::move(info)); }
endpoint_info tcp_connection::info() const { return s_->info(); }

}  // namespace msgtrans::detail

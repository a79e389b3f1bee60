// The TCP framing over a byte stream, for both streams it runs on: a plain socket
// (tcp://, instantiated by tcp_connection.cpp) and a TLS stream over one (tls://,
// over tls_socket.hpp, instantiated by tls_transport.cpp).
//
// Reading: a plain connection with nothing partial waits for readability holding no
// buffer, then reads into its loop's buffer and hands on the whole packets from there;
// a partial frame is read straight behind itself in the decoder, with a read size that
// grows while reads fill it. A TLS connection (tls_socket.hpp) also waits for
// readability, then decrypts every record that arrived into the decoder (its records are
// decrypted into the decoder, so the loop buffer is not used).
//
// Writing: plain sockets try one gather write at once and queue only the rest. A TLS
// batch is copied into one buffer and encrypted at once (as few records as fit), and
// the records leave in one send, tried at once.
//
// Closing: graceful closes finish the write in progress (bounded), then plain sends FIN
// and reads until the peer's FIN; TLS sends close_notify before its FIN. Everything is
// bounded by the runtime's close_timeout.
#pragma once

#include "core/op_allocator.hpp"
#include "net/address.hpp"
#include "net/partial_budget.hpp"
#include "net/read_buffer.hpp"

#include <msgtrans/error.hpp>
#include <msgtrans/frame_decoder.hpp>
#include <msgtrans/transport.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <cstring>
#include <optional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace msgtrans::detail {

namespace stream_io {

namespace asio = boost::asio;
using boost::system::error_code;
using plain_socket = asio::ip::tcp::socket;

inline constexpr std::size_t min_read = 512;         // reads behind a partial frame start this small
inline constexpr std::size_t max_read = 256 * 1024;  // and grow up to this while they fill
inline constexpr std::size_t loop_read = net::loop_read_buffer::size;  // what a readable connection reads at once

template <class Stream>
auto& lowest(Stream& s) {
  if constexpr (std::is_same_v<std::remove_const_t<Stream>, plain_socket>) return s;
  else return s.next_layer();
}

template <class Stream>
struct state : std::enable_shared_from_this<state<Stream>> {
  static constexpr bool plain = std::is_same_v<Stream, plain_socket>;

  state(Stream s, const transport_context& ctx, std::string p)
      : sock(std::move(s)),
        decoder(stream_framing::tcp, ctx.limits),
        limits(ctx.limits),
        notices(ctx.notices),
        budget(ctx.budget),
        close_timeout(ctx.close_timeout),
        protocol(std::move(p)) {
    error_code ec;
    lowest(sock).non_blocking(true, ec);
  }

  Stream sock;
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
  std::vector<asio::const_buffer> iov;  // plain: the gather list being written
  std::vector<std::byte> wbuf;          // TLS: the packets being written, back to back
  std::uint32_t read_size = min_read;
  bool reading = true;
  bool read_armed = false;
  bool streaming = false;  // the last read filled its buffer: keep the decoder's memory
  bool writing = false;
  bool closing = false;
  bool closed = false;
  close_info why;
  std::optional<peer_certificate> peer_cert;  // TLS: the client's verified certificate (server side)

  std::shared_ptr<state> self() { return this->shared_from_this(); }

  endpoint_info info() const {
    endpoint_info i;
    i.protocol = protocol;
    error_code ec;
    auto l = lowest(sock).local_endpoint(ec);
    if (!ec) i.local_address = net::format_endpoint(l);
    auto r = lowest(sock).remote_endpoint(ec);
    if (!ec) i.peer_address = net::format_endpoint(r);
    return i;
  }

  void read_into_decoder(std::size_t size) {
    read_armed = true;
    auto space = decoder.prepare(size);
    sock.async_read_some(asio::buffer(space.data(), space.size()),
                         [self = self()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void arm_read() {
    if (read_armed || !reading || closing || closed || budget_waiting) return;
    if (!budget_allows()) return;
    if constexpr (plain) {
      if (decoder.buffered() == 0) {
        // Nothing partial: wait for readability without a buffer. (Asio re-arms the
        // descriptor for a wait, so data that came while nobody waited is seen at once.)
        read_armed = true;
        if (!streaming && decoder.capacity() > 0) decoder.shrink();
        sock.async_wait(asio::socket_base::wait_read,
                        asio::bind_allocator(op_allocator<void>{},
                                             [self = self()](error_code ec) { self->on_readable(ec); }));
        return;
      }
      // A partial frame: read straight behind it.
      read_into_decoder(read_size);
    } else {
      // TLS: records already received are read at once; otherwise wait for the socket.
      read_armed = true;
      if (decoder.buffered() == 0 && !streaming && decoder.capacity() > 0) decoder.shrink();
      if (sock.has_buffered()) {
        asio::post(lowest(sock).get_executor(), [self = self()] { self->on_tls_readable({}); });
        return;
      }
      lowest(sock).async_wait(asio::socket_base::wait_read,
                              asio::bind_allocator(op_allocator<void>{},
                                                   [self = self()](error_code ec) { self->on_tls_readable(ec); }));
    }
  }

  // TLS only: the socket is readable (or records wait inside): decrypt into the decoder.
  void on_tls_readable(error_code ec) {
    if (!still_reading(ec)) return;
    if (ec) return fail(close_info{close_reason::peer_closed, ec, ec.message()});
    auto space = decoder.prepare(read_size);
    const std::size_t n = sock.read(space, ec);
    if (n == 0) {
      if (ec == asio::error::would_block || ec == asio::error::try_again) return arm_read();
      return fail(read_error(ec));
    }
    if (!writing) {  // reading may have produced output (a KeyUpdate answer): send it
      error_code ignored;
      sock.flush(ignored);
    }
    decoder.commit(n);
    streaming = n == space.size();
    if (n == space.size() && read_size < max_read) read_size *= 2;
    else if (n < read_size / 4 && read_size > min_read) read_size /= 2;
    drain();
    arm_read();
  }

  // A partial packet past the allowance must hold its declared size of the server-wide
  // budget before more of it is read; if the budget cannot give it, reading waits.
  bool budget_allows() {
    auto& loop = static_cast<asio::io_context&>(lowest(sock).get_executor().context());
    auto report_full = [this](std::string detail) { report(notice_kind::budget_full, std::move(detail)); };
    auto make_resume = [this] {
      return [weak = this->weak_from_this()] {
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

  // Plain only: the socket is readable.
  void on_readable(error_code ec) {
    if (!still_reading(ec)) return;
    if (ec) return fail(close_info{close_reason::peer_closed, ec, ec.message()});
    auto lb = net::loop_read_buffer::borrow();
    if (!lb) return read_into_decoder(read_size);  // re-entered from a handler on this thread
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
    const bool eof = ec == asio::error::eof;
    if (eof && decoder.buffered() > 0) {
      // The peer closed inside a packet: say so, not just "peer closed".
      const std::size_t of = partial ? partial : header_size;
      std::string what = "truncated packet: " + std::to_string(decoder.buffered()) + " of " + std::to_string(of) +
                         (partial ? " bytes" : " header bytes");
      report(notice_kind::truncated_packet, what);
      return close_info{close_reason::peer_closed, {}, std::move(what)};
    }
    if (eof) return close_info{close_reason::peer_closed, {}, "peer closed the connection"};
    if constexpr (!plain) {
      // TCP FIN without close_notify: the peer (or someone on the path) cut the stream.
      if (is_truncation(ec)) return close_info{close_reason::peer_closed, ec, "peer closed the connection without TLS close_notify"};
      return close_info{close_reason::peer_closed, ec, "TLS: " + ec.message()};
    }
    return close_info{close_reason::peer_closed, ec, ec.message()};
  }

  // Defined where the TLS stream is complete (tls_transport.cpp).
  static bool is_truncation(error_code ec);

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
    writing = true;
    if constexpr (!plain) {
      std::size_t total = 0;
      for (const auto& p : packets) total += p.size();
      wbuf.resize(total);
      std::byte* out = wbuf.data();
      for (const auto& p : packets) {
        std::memcpy(out, p.data(), p.size());
        out += p.size();
      }
      error_code ec;
      const bool ok = sock.encrypt(wbuf, ec);
      if (wbuf.capacity() > 256 * 1024) std::vector<std::byte>().swap(wbuf);  // a big write passed
      if (!ok) return write_failed(ec);
      return flush_then_complete();
    } else {
      iov.clear();
      for (const auto& p : packets) {
        if (!iov.empty() && static_cast<const std::byte*>(iov.back().data()) + iov.back().size() == p.data())
          iov.back() = asio::const_buffer(iov.back().data(), iov.back().size() + p.size());
        else
          iov.emplace_back(p.data(), p.size());
      }
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
      asio::async_write(sock, iov, [self = self()](error_code ec, std::size_t) {
        if (ec) return self->write_failed(ec);
        self->write_complete();
      });
    }
  }

  // TLS: sends the encrypted output now, and waits for the socket only if it is full.
  void flush_then_complete() {
    error_code ec;
    if (sock.flush(ec)) return write_complete();
    if (ec) return write_failed(ec);
    lowest(sock).async_wait(asio::socket_base::wait_write, [self = self()](error_code ec) {
      if (ec) return self->write_failed(ec);
      if (self->closed) return;
      self->flush_then_complete();
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
      asio::post(lowest(sock).get_executor(), [self = self()] {
        if (!self->reading || self->closing || self->closed) return;
        self->drain();
        self->arm_read();
      });
    }
  }

  // Graceful: finish the write in progress (bounded), send FIN (TLS: close_notify), read
  // until the peer's, then close. Closing at once with unread input would send RST and
  // could destroy data the peer has not read yet.
  void begin_close(close_info info) {
    if (closing || closed) return;
    closing = true;
    why = std::move(info);
    timer = std::make_unique<asio::steady_timer>(lowest(sock).get_executor());
    timer->expires_after(close_timeout);
    timer->async_wait([self = self()](error_code ec) {
      if (!ec) self->finish();
    });
    // Lingering protects data we sent in a graceful close; a peer that broke the
    // protocol or timed out is owed none.
    if (why.reason != close_reason::normal && why.reason != close_reason::shutdown) return finish();
    if (!writing) start_linger();
  }

  void start_linger() {
    error_code ignored;
    if constexpr (!plain) {
      // close_notify first (best effort: it is one small record), then FIN as for TCP.
      sock.close_notify();
      sock.flush(ignored);
    }
    lowest(sock).shutdown(plain_socket::shutdown_send, ignored);
    if (!read_armed) arm_linger_read();
  }

  // Reads and discards until the peer's FIN (TLS: the raw bytes, undecrypted).
  void arm_linger_read() {
    read_armed = true;
    auto space = decoder.prepare(min_read);
    lowest(sock).async_read_some(asio::buffer(space.data(), space.size()),
                                 [self = self()](error_code ec, std::size_t n) { self->on_read(ec, n); });
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
    lowest(sock).close(ignored);
    release_budget();
    if (auto* o = std::exchange(owner, nullptr)) {
      // Report from a fresh handler: the caller may be inside the owner.
      asio::post(lowest(sock).get_executor(), [o, self = self()] { o->on_closed(std::move(self->why)); });
    }
  }

  // The connection object went away: close without a word (no owner to tell).
  void detach() {
    owner = nullptr;
    finish();
  }
};

}  // namespace stream_io

/// A connection of the TCP framing over `Stream` (tcp::socket, or a TLS stream over one).
template <class Stream>
class stream_connection final : public connection {
 public:
  // `ctx` gives the decode limits, and where to report notices and take budget from
  // (both may be null); the pointers must outlive the connection.
  stream_connection(Stream stream, const transport_context& ctx, std::string protocol)
      : s_(std::make_shared<stream_io::state<Stream>>(std::move(stream), ctx, std::move(protocol))) {}
  ~stream_connection() override { s_->detach(); }

  void start(connection_owner& owner) override {
    s_->owner = &owner;
    s_->arm_read();
  }
  void write(std::span<const bytes_view> packets) override { s_->write(packets); }
  void set_reading(bool enabled) override { s_->set_reading(enabled); }
  void close(close_info info) override { s_->begin_close(std::move(info)); }
  endpoint_info info() const override { return s_->info(); }
  std::optional<peer_certificate> peer_certificate_info() const override { return s_->peer_cert; }
  /// TLS, server side: the verified client certificate (mutual TLS), for on_authenticate.
  void set_peer_certificate(std::optional<peer_certificate> c) { s_->peer_cert = std::move(c); }

 private:
  std::shared_ptr<stream_io::state<Stream>> s_;
};

}  // namespace msgtrans::detail

#include "tcp/tcp_connection.hpp"

#include "core/address.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace msgtrans::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr std::size_t min_read = 512;         // an idle connection keeps this little
constexpr std::size_t max_read = 256 * 1024;  // busy connections grow up to this
constexpr auto close_linger = std::chrono::seconds(2);
}  // namespace

struct tcp_connection::state : std::enable_shared_from_this<state> {
  state(asio::ip::tcp::socket s, const decode_limits& limits, std::string protocol)
      : sock(std::move(s)), decoder(stream_framing::tcp, limits), timer(sock.get_executor()) {
    info.protocol = std::move(protocol);
    error_code ec;
    auto l = sock.local_endpoint(ec);
    if (!ec) info.local_address = to_string(l);
    auto r = sock.remote_endpoint(ec);
    if (!ec) info.peer_address = to_string(r);
    sock.non_blocking(true, ec);
  }

  asio::ip::tcp::socket sock;
  frame_decoder decoder;
  asio::steady_timer timer;  // bounds the lingering close
  endpoint_info info;
  connection_owner* owner = nullptr;  // null once detached or closed
  std::vector<asio::const_buffer> iov;
  std::size_t read_size = min_read;
  bool reading = true;
  bool read_armed = false;
  bool writing = false;
  bool closing = false;
  bool closed = false;
  close_info why;

  void arm_read() {
    if (read_armed || !reading || closing || closed) return;
    read_armed = true;
    auto space = decoder.prepare(read_size);
    sock.async_read_some(asio::buffer(space.data(), space.size()),
                         [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(error_code ec, std::size_t n) {
    read_armed = false;
    if (closed) return;
    if (closing) {  // lingering close: discard until EOF
      if (ec) finish();
      else arm_linger_read();
      return;
    }
    if (ec) {
      return fail(ec == asio::error::eof ? close_info{close_reason::peer_closed, {}, "peer closed the connection"}
                                         : close_info{close_reason::peer_closed, ec, ec.message()});
    }
    decoder.commit(n);
    // Adapt the read size: grow while reads fill it, shrink back when idle.
    if (n == read_size && read_size < max_read) read_size *= 2;
    else if (n < read_size / 4 && read_size > min_read) read_size /= 2;
    drain();
    if (decoder.buffered() == 0 && read_size == min_read && decoder.capacity() > 4 * min_read) decoder.shrink();
    arm_read();
  }

  void drain() {
    auto ec = decoder.drain([this](bytes_view p) {
      if (!owner || closing || closed) return false;
      owner->on_packet(p);
      return reading && !closing && !closed;
    });
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
    timer.expires_after(close_linger);
    timer.async_wait([self = shared_from_this()](error_code ec) {
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
    timer.cancel();
    sock.close(ignored);
    if (auto* o = std::exchange(owner, nullptr)) {
      // Report from a fresh handler: the caller may be inside the owner.
      asio::post(sock.get_executor(), [o, self = shared_from_this()] { o->on_closed(std::move(self->why)); });
    }
  }
};

tcp_connection::tcp_connection(asio::ip::tcp::socket socket, const decode_limits& limits, std::string protocol)
    : s_(std::make_shared<state>(std::move(socket), limits, std::move(protocol))) {}

tcp_connection::~tcp_connection() {
  s_->owner = nullptr;
  if (!s_->closed) {
    s_->closed = true;
    error_code ignored;
    s_->timer.cancel();
    s_->sock.close(ignored);
  }
}

void tcp_connection::start(connection_owner& owner) {
  s_->owner = &owner;
  s_->arm_read();
}
void tcp_connection::write(std::span<const bytes_view> packets) { s_->write(packets); }
void tcp_connection::set_reading(bool enabled) { s_->set_reading(enabled); }
void tcp_connection::close(close_info info) { s_->begin_close(std::move(info)); }
endpoint_info tcp_connection::info() const { return s_->info; }

}  // namespace msgtrans::detail

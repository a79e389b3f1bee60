// TLS over TCP: tls_socket (OpenSSL on memory BIOs over a non-blocking socket), the two
// handshakes, and the TCP framing instantiated over tls_socket. The listener and the
// connector themselves are tcp_transport.cpp's. No asio::ssl stream here: only its
// context (the one configuration shared with wss://, net/tls_context) and its error
// category.
#include "tcp/tls_stream.hpp"

#include "net/address.hpp"
#include "tcp/stream_connection.hpp"
#include "tcp/tls_socket.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <algorithm>
#include <climits>

namespace msgtrans::detail {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;

// ---------------------------------------------------------------------------------------
// tls_socket
// ---------------------------------------------------------------------------------------

namespace {
// Where recv puts ciphertext before it goes into the input BIO; one per thread.
constexpr std::size_t scratch_size = 64 * 1024;
std::byte* scratch() {
  static thread_local std::byte buf[scratch_size];
  return buf;
}

// OpenSSL's SSL_get_error needs the thread's error queue empty before the call; other
// users of OpenSSL on the thread (wss, a failed handshake) may leave entries. Peeking is
// cheaper than clearing, and the queue is nearly always empty.
void clear_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}
}  // namespace

tls_socket::tls_socket(asio::ip::tcp::socket socket, ssl_ctx_st* ctx, bool server) : sock_(std::move(socket)) {
  error_code ignored;
  sock_.non_blocking(true, ignored);
  ssl_ = SSL_new(ctx);
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(in_, -1);  // empty input means "wait for more", not EOF
  SSL_set_bio(ssl_, in_, out_);
  // Idle connections give their record buffers back.
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  if (server) SSL_set_accept_state(ssl_);
  else SSL_set_connect_state(ssl_);
}

tls_socket::tls_socket(tls_socket&& o) noexcept
    : sock_(std::move(o.sock_)),
      ssl_(std::exchange(o.ssl_, nullptr)),
      in_(std::exchange(o.in_, nullptr)),
      out_(std::exchange(o.out_, nullptr)) {}

tls_socket::~tls_socket() {
  if (ssl_) SSL_free(ssl_);  // frees both BIOs
}

error_code tls_socket::ssl_error(int ret) const {
  const int e = SSL_get_error(ssl_, ret);
  if (e == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code) return error_code(static_cast<int>(code), asio::error::get_ssl_category());
  return ssl::error::stream_truncated;
}

std::size_t tls_socket::fill(error_code& ec) {
  const std::size_t n = sock_.read_some(asio::buffer(scratch(), scratch_size), ec);
  if (ec == asio::error::eof) ec = ssl::error::stream_truncated;  // FIN, with no close_notify before it
  if (ec) return 0;
  BIO_write(in_, scratch(), static_cast<int>(n));
  return n;
}

int tls_socket::handshake(error_code& ec) {
  for (;;) {
    clear_errors();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) return 1;
    if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
      ec = ssl_error(r);
      return -1;
    }
    if (fill(ec) > 0) continue;
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec = {};
      return 0;
    }
    return -1;
  }
}

std::size_t tls_socket::read(std::span<std::byte> out, error_code& ec) {
  ec = {};
  std::size_t got = 0;
  if (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) {  // close_notify came with the last bytes read
    ec = asio::error::eof;
    return 0;
  }
  clear_errors();
  while (got < out.size()) {
    // Nothing inside: take what the socket has first (an SSL_read that can only fail
    // costs more than the check), and stop when it has nothing.
    if (!has_buffered() && fill(ec) == 0) break;
    const int n = SSL_read(ssl_, out.data() + got, static_cast<int>(std::min<std::size_t>(out.size() - got, INT_MAX)));
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (SSL_get_error(ssl_, n) == SSL_ERROR_WANT_READ) {
      if (fill(ec) > 0) continue;
    } else if (got == 0) {
      ec = ssl_error(n);
    }
    break;
  }
  if (got > 0) ec = {};  // what stopped the loop recurs on the next read
  return got;
}

bool tls_socket::has_buffered() const noexcept { return SSL_pending(ssl_) > 0 || BIO_ctrl_pending(in_) > 0; }

bool tls_socket::encrypt(std::span<const std::byte> data, error_code& ec) {
  clear_errors();
  while (!data.empty()) {
    const int n = SSL_write(ssl_, data.data(), static_cast<int>(std::min<std::size_t>(data.size(), INT_MAX)));
    if (n <= 0) {
      ec = ssl_error(n);
      return false;
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return true;
}

bool tls_socket::flush(error_code& ec) {
  ec = {};
  for (;;) {
    char* p = nullptr;
    const long len = BIO_get_mem_data(out_, &p);
    if (len <= 0) return true;
    const std::size_t n = sock_.write_some(asio::buffer(p, static_cast<std::size_t>(len)), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec = {};
      return false;
    }
    if (ec) return false;
    if (n == static_cast<std::size_t>(len)) {
      (void)BIO_reset(out_);
      return true;
    }
    // Part of it: drop what left (a memory BIO read only moves its read pointer).
    for (std::size_t left = n; left > 0;) {
      const int take = static_cast<int>(std::min(left, scratch_size));
      BIO_read(out_, scratch(), take);
      left -= static_cast<std::size_t>(take);
    }
  }
}

void tls_socket::close_notify() noexcept {
  clear_errors();
  (void)SSL_shutdown(ssl_);
  clear_errors();
}

template <>
bool stream_io::state<tls_socket>::is_truncation(error_code ec) {
  return ec == ssl::error::stream_truncated;
}

// ---------------------------------------------------------------------------------------
// Handshakes
// ---------------------------------------------------------------------------------------

namespace {

std::string peer_of(const tls_socket& s) {
  error_code ec;
  auto ep = s.next_layer().remote_endpoint(ec);
  return ec ? std::string() : net::format_endpoint(ep);
}

// One handshake, either side: the socket, its timer, and the end that runs once.
// `step` drives it: flush what OpenSSL wrote, run the handshake, wait for the socket.
struct handshake_op : std::enable_shared_from_this<handshake_op> {
  using finish_fn = std::function<void(handshake_op&, error_code)>;  // empty ec: done

  handshake_op(tls_socket s, finish_fn f)
      : sock(std::move(s)), timer(sock.next_layer().get_executor()), finish(std::move(f)) {}

  void step() {
    if (done) return;
    error_code ec;
    if (!sock.flush(ec)) return ec ? end(ec) : wait(asio::socket_base::wait_write);
    if (handshake_done) return end({});
    const int r = sock.handshake(ec);
    if (r < 0) {
      error_code ignored;
      sock.flush(ignored);  // the alert that says why, if OpenSSL wrote one
      return end(ec);
    }
    if (r == 1) {
      handshake_done = true;  // the last flight (and TLS 1.3 tickets) still to send
      return step();
    }
    if (!sock.flush(ec)) return ec ? end(ec) : wait(asio::socket_base::wait_write);
    wait(asio::socket_base::wait_read);
  }

  void wait(asio::socket_base::wait_type w) {
    sock.next_layer().async_wait(w, [self = shared_from_this()](error_code ec) {
      if (self->done) return;
      if (ec) return self->end(ec);
      self->step();
    });
  }

  void end(error_code ec) {
    if (done) return;
    done = true;
    timer.cancel();
    finish(*this, ec);
  }

  tls_socket sock;
  asio::steady_timer timer;
  finish_fn finish;
  bool handshake_done = false;
  bool done = false;
};

}  // namespace

void tls_accept(const std::shared_ptr<tls_server_shared>& sh, asio::ip::tcp::socket socket) {
  auto op = std::make_shared<handshake_op>(
      tls_socket(std::move(socket), sh->tls.get()->native_handle(), true), [sh](handshake_op& op, error_code ec) {
        error_code ignored;
        if (ec || sh->stopped.load()) return op.sock.next_layer().close(ignored);  // no word to a failed peer
        auto cert = net::verified_peer_certificate(op.sock.native_handle());
        auto conn = std::make_unique<stream_connection<tls_socket>>(std::move(op.sock), sh->ctx, "tls");
        conn->set_peer_certificate(std::move(cert));
        sh->on_accept(std::move(conn));
      });
  op->timer.expires_after(sh->handshake_timeout);
  op->timer.async_wait([op, sh](error_code ec) {
    if (ec || op->done) return;
    op->done = true;
    sh->ctx.report(notice{notice_kind::handshake_timeout, "tls", peer_of(op->sock),
                          "no TLS handshake within " + std::to_string(sh->handshake_timeout.count()) + " ms", 0});
    error_code ignored;
    op->sock.next_layer().close(ignored);
  });
  op->step();
}

void tls_connect(const tls_client_target& target, asio::ip::tcp::socket socket, const std::string& peer,
                 const transport_context& ctx, std::chrono::milliseconds timeout, connector::connect_handler done) {
  const std::string what = "TLS handshake with " + peer;
  auto d = std::make_shared<connector::connect_handler>(std::move(done));
  auto op = std::make_shared<handshake_op>(
      tls_socket(std::move(socket), target.tls->native_handle(), false),
      [d, what, ctx](handshake_op& op, error_code ec) {
        error_code ignored;
        if (ec) {
          std::string why = what + ": " + ec.message() + net::verify_failure(op.sock.native_handle());
          op.sock.next_layer().close(ignored);
          return (*d)({errc::tls_error, std::move(why)}, nullptr);
        }
        (*d)({}, std::make_unique<stream_connection<tls_socket>>(std::move(op.sock), ctx, "tls"));
      });
  net::prepare_client_ssl(op->sock.native_handle(), target.server_name, target.verify);
  op->timer.expires_after(timeout);
  op->timer.async_wait([op, d, what, timeout](error_code ec) {
    if (ec || op->done) return;
    op->done = true;
    error_code ignored;
    op->sock.next_layer().close(ignored);
    (*d)({errc::timeout, what + " timed out after " + std::to_string(timeout.count()) + " ms"}, nullptr);
  });
  op->step();
}

}  // namespace msgtrans::detail

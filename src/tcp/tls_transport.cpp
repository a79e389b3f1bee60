// TLS over TCP: the two handshakes and the TCP framing instantiated over a TLS stream.
// The one file of src/tcp that includes asio::ssl (it compiles slowly); the listener and
// connector themselves are tcp_transport.cpp's.
#include "tcp/tls_stream.hpp"

#include "net/address.hpp"
#include "tcp/stream_connection.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <climits>

namespace msgtrans::detail {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
using tls_stream = ssl::stream<asio::ip::tcp::socket>;

template <>
bool stream_io::state<tls_stream>::is_truncation(error_code ec) {
  return ec == ssl::error::stream_truncated;
}

// SSL_read on the stream's own SSL object, as Asio's read operation does, but only
// from the bytes Asio has already fed it: with no whole record left it wants input and
// returns 0 here. Output it may produce (a KeyUpdate answer, an alert) stays in the
// stream's BIO and leaves with the next write; an error stays in the SSL object for the
// next asynchronous read to report.
template <>
bool stream_io::state<tls_stream>::has_received(tls_stream& s) {
  SSL* ssl = s.native_handle();
  return SSL_pending(ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0;
}

template <>
std::size_t stream_io::state<tls_stream>::read_received(tls_stream& s, std::span<std::byte> out) {
  SSL* ssl = s.native_handle();
  // Nothing decrypted, nothing in the BIO Asio feeds: no whole record to take (the
  // common case; an SSL_read that fails costs more than this check).
  if (out.empty() || !has_received(s)) return 0;
  ERR_clear_error();
  const int n = SSL_read(ssl, out.data(), static_cast<int>(std::min<std::size_t>(out.size(), INT_MAX)));
  if (n > 0) return static_cast<std::size_t>(n);
  ERR_clear_error();
  return 0;
}

namespace {

std::string peer_of(const tls_stream& s) {
  error_code ec;
  auto ep = s.next_layer().remote_endpoint(ec);
  return ec ? std::string() : net::format_endpoint(ep);
}

// One handshake, either side: the stream, its timer, and the end that runs once.
struct handshake_op {
  explicit handshake_op(tls_stream s) : stream(std::move(s)), timer(stream.next_layer().get_executor()) {}
  tls_stream stream;
  asio::steady_timer timer;
  bool done = false;
};

}  // namespace

void tls_accept(const std::shared_ptr<tls_server_shared>& sh, asio::ip::tcp::socket socket) {
  auto op = std::make_shared<handshake_op>(tls_stream(std::move(socket), *sh->tls));
  op->timer.expires_after(sh->handshake_timeout);
  op->timer.async_wait([op, sh](error_code ec) {
    if (ec || op->done) return;
    op->done = true;
    sh->ctx.report(notice{notice_kind::handshake_timeout, "tls", peer_of(op->stream),
                          "no TLS handshake within " + std::to_string(sh->handshake_timeout.count()) + " ms", 0});
    error_code ignored;
    op->stream.next_layer().close(ignored);
  });
  op->stream.async_handshake(ssl::stream_base::server, [op, sh](error_code ec) {
    if (op->done) return;
    op->done = true;
    op->timer.cancel();
    error_code ignored;
    if (ec || sh->stopped.load()) return op->stream.next_layer().close(ignored);
    sh->on_accept(std::make_unique<stream_connection<tls_stream>>(std::move(op->stream), sh->ctx, "tls"));
  });
}

void tls_connect(const tls_client_target& target, asio::ip::tcp::socket socket, const std::string& peer,
                 const transport_context& ctx, std::chrono::milliseconds timeout, connector::connect_handler done) {
  auto op = std::make_shared<handshake_op>(tls_stream(std::move(socket), *target.tls));
  net::prepare_client_ssl(op->stream.native_handle(), target.server_name, target.verify);
  auto d = std::make_shared<connector::connect_handler>(std::move(done));
  const std::string what = "TLS handshake with " + peer;
  op->timer.expires_after(timeout);
  op->timer.async_wait([op, d, what, timeout](error_code ec) {
    if (ec || op->done) return;
    op->done = true;
    error_code ignored;
    op->stream.next_layer().close(ignored);
    (*d)({errc::timeout, what + " timed out after " + std::to_string(timeout.count()) + " ms"}, nullptr);
  });
  op->stream.async_handshake(ssl::stream_base::client, [op, d, what, ctx](error_code ec) {
    if (op->done) return;
    op->done = true;
    op->timer.cancel();
    if (ec) {
      std::string why = what + ": " + ec.message() + net::verify_failure(op->stream.native_handle());
      error_code ignored;
      op->stream.next_layer().close(ignored);
      return (*d)({errc::tls_error, std::move(why)}, nullptr);
    }
    (*d)({}, std::make_unique<stream_connection<tls_stream>>(std::move(op->stream), ctx, "tls"));
  });
}

}  // namespace msgtrans::detail

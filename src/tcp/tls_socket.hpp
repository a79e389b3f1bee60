// A TLS connection over a non-blocking TCP socket, driven the way the plain TCP path
// drives a socket: OpenSSL works on two memory BIOs, this class moves bytes between
// them and the socket with plain non-blocking reads and writes, and the caller waits
// for readiness with the socket's async_wait. So a TLS read is one recv for every
// record that arrived, a TLS write one send for a whole batch, and no Asio SSL
// operation (with its extra SSL calls and posted completions) is involved.
//
// Used by tls_transport.cpp only (the handshakes, and the TCP framing over it in
// stream_connection.hpp).
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <cstddef>
#include <span>

struct ssl_st;
struct ssl_ctx_st;
struct bio_st;

namespace msgtrans::detail {

class tls_socket {
 public:
  /// A TLS endpoint on `socket` (connected, made non-blocking here), server or client.
  tls_socket(boost::asio::ip::tcp::socket socket, ssl_ctx_st* ctx, bool server);
  tls_socket(tls_socket&& o) noexcept;
  tls_socket& operator=(tls_socket&&) = delete;
  ~tls_socket();

  boost::asio::ip::tcp::socket& next_layer() noexcept { return sock_; }
  const boost::asio::ip::tcp::socket& next_layer() const noexcept { return sock_; }
  ssl_st* native_handle() noexcept { return ssl_; }

  /// One step of the handshake: 1 done, 0 needs the socket readable (after a flush),
  /// -1 failed (`ec` says why).
  int handshake(boost::system::error_code& ec);

  /// Decrypts what has arrived into `out`, reading the socket as often as it has bytes:
  /// n > 0 with no error, or 0 with would_block (nothing yet), eof (close_notify),
  /// ssl::error::stream_truncated (FIN without close_notify), or a TLS error.
  std::size_t read(std::span<std::byte> out, boost::system::error_code& ec);
  /// Received bytes wait inside (decrypted, or a whole record not yet decrypted): read
  /// before waiting for the socket.
  bool has_buffered() const noexcept;

  /// Encrypts all of `data` into the output (never blocks); false on a TLS error.
  bool encrypt(std::span<const std::byte> data, boost::system::error_code& ec);
  /// Sends the encrypted output: true when it is all sent; false with no error when
  /// the socket would block (wait for writable, then flush again), or with the error.
  bool flush(boost::system::error_code& ec);
  /// Queues close_notify (flush sends it).
  void close_notify() noexcept;

 private:
  // One recv into the input BIO: bytes read, or 0 with the error (would_block, ...).
  std::size_t fill(boost::system::error_code& ec);
  boost::system::error_code ssl_error(int ret) const;

  boost::asio::ip::tcp::socket sock_;
  ssl_st* ssl_ = nullptr;
  bio_st* in_ = nullptr;   // network -> OpenSSL (owned by ssl_)
  bio_st* out_ = nullptr;  // OpenSSL -> network (owned by ssl_)
};

}  // namespace msgtrans::detail

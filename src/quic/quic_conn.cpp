// The QUIC connection. Reading order: creation, datagram in (this file), the ngtcp2
// callbacks (quic_conn_callbacks.cpp), flush out and the msgtrans stream
// (quic_conn_stream.cpp), timer and closing (quic_conn_close.cpp).
#include "quic/quic_conn.hpp"

#include "net/address.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/post.hpp>

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace msgtrans::quic_detail {
namespace asio = boost::asio;

ngtcp2_tstamp now_ts() noexcept {
  return static_cast<ngtcp2_tstamp>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

void random_bytes(std::uint8_t* p, std::size_t n) noexcept { gnutls_rnd(GNUTLS_RND_NONCE, p, n); }

namespace {

constexpr std::size_t loopback_udp_payload = 65000;  // loopback MTU is 64 KiB

ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* ref) { return static_cast<ngtcp2_conn*>(ref->user_data); }

// MSGTRANS_QUIC_LOG=1 in the environment prints ngtcp2's own log to stderr.
void log_to_stderr(void*, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

bool is_loopback(const sockaddr* sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
  return false;
}

void fill_settings(ngtcp2_settings& s, const conn_config& cfg, const sockaddr* remote) {
  ngtcp2_settings_default(&s);
  // Datagram size: as configured, or per path (see quic_connection_options).
  std::size_t payload = cfg.opts.max_udp_payload;
  if (payload == 0 && is_loopback(remote)) {
    payload = loopback_udp_payload;
    // ACK every packet at once. The ACK delay ngtcp2 allows itself is RTT/8, a few
    // microseconds here: shorter than any application takes to answer, so the ACK would
    // leave alone right behind the reply instead of riding on it (3 datagrams per
    // request/response instead of 2, and a wake-up of the peer for nothing).
    s.ack_thresh = 1;
  }
  if (payload > 0) {
    s.max_tx_udp_payload_size = std::clamp<std::size_t>(payload, 1200, 65527);
    s.no_tx_udp_payload_size_shaping = 1;
  }
  static const bool log = std::getenv("MSGTRANS_QUIC_LOG") != nullptr;
  if (log) s.log_printf = log_to_stderr;
  s.initial_ts = now_ts();
  s.initial_rtt = static_cast<ngtcp2_duration>(cfg.opts.initial_rtt.count()) * NGTCP2_MILLISECONDS;
  s.handshake_timeout = static_cast<ngtcp2_duration>(cfg.handshake_timeout.count()) * NGTCP2_MILLISECONDS;
  s.max_window = cfg.opts.connection_window;
  s.max_stream_window = cfg.opts.stream_window;
}

void fill_params(ngtcp2_transport_params& p, const conn_config& cfg, bool server) {
  ngtcp2_transport_params_default(&p);
  p.initial_max_data = cfg.opts.connection_window;
  if (server) {
    p.initial_max_streams_bidi = 1;  // the one msgtrans stream, opened by the client
    p.initial_max_stream_data_bidi_remote = cfg.opts.stream_window;
  } else {
    p.initial_max_streams_bidi = 0;  // the server opens no stream
    p.initial_max_stream_data_bidi_local = cfg.opts.stream_window;
  }
  p.initial_max_streams_uni = 0;
  p.max_idle_timeout = static_cast<ngtcp2_duration>(cfg.opts.max_idle_timeout.count()) * NGTCP2_MILLISECONDS;
  p.active_connection_id_limit = 4;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Creation

quic_conn::quic_conn(asio::io_context& loop, std::shared_ptr<conn_host> host, const conn_config& cfg, bool server)
    : loop_(loop),
      host_(std::move(host)),
      cfg_(cfg),
      server_(server),
      timer_(loop),
      close_timer_(loop),
      decoder_(stream_framing::length_prefixed, cfg.limits) {
}

bool quic_conn::init_common(const sockaddr* local, socklen_t locallen, const sockaddr* remote, socklen_t remotelen) {
  ngtcp2_path_storage_init(&path_, local, locallen, remote, remotelen, nullptr);
  info_ = endpoint_info{"quic", net::format(local), net::format(remote)};
  pacing_ = !is_loopback(remote);
  return true;
}

std::shared_ptr<quic_conn> quic_conn::make_server(asio::io_context& loop, std::shared_ptr<conn_host> host,
                                                  std::shared_ptr<const tls_credentials> cred, const conn_config& cfg,
                                                  const sockaddr* local, socklen_t locallen, const sockaddr* remote,
                                                  socklen_t remotelen, const server_args& a, std::string& detail) {
  std::shared_ptr<quic_conn> c(new quic_conn(loop, std::move(host), cfg, true));
  c->init_common(local, locallen, remote, remotelen);
  ngtcp2_settings s;
  fill_settings(s, cfg, remote);
  if (a.hd->token.len > 0) s.token = a.hd->token;
  ngtcp2_transport_params p;
  fill_params(p, cfg, true);
  if (a.odcid) {
    p.original_dcid = *a.odcid;
    p.retry_scid = a.hd->dcid;
    p.retry_scid_present = 1;
  } else {
    p.original_dcid = a.hd->dcid;
  }
  c->odcid_ = a.hd->dcid;
  if (ngtcp2_crypto_generate_stateless_reset_token(p.stateless_reset_token, cfg.secret.data(), cfg.secret.size(),
                                                   &a.scid) != 0) {
    detail = "stateless reset token";
    return nullptr;
  }
  p.stateless_reset_token_present = 1;
  auto cb = make_callbacks(true);
  int rv = ngtcp2_conn_server_new(&c->conn_, &a.hd->scid, &a.scid, &c->path_.path, a.hd->version, &cb, &s, &p,
                                  nullptr, c.get());
  if (rv != 0) {
    detail = std::string("ngtcp2_conn_server_new: ") + ngtcp2_strerror(rv);
    return nullptr;
  }
  c->ref_ = {get_conn, c->conn_};
  c->cred_ = std::move(cred);
  c->tls_ = make_server_session(*c->cred_, &c->ref_, detail);
  if (!c->tls_) return nullptr;
  ngtcp2_conn_set_tls_native_handle(c->conn_, c->tls_);
  if (cfg.opts.keep_alive_interval.count() > 0)
    ngtcp2_conn_set_keep_alive_timeout(
        c->conn_, static_cast<ngtcp2_duration>(cfg.opts.keep_alive_interval.count()) * NGTCP2_MILLISECONDS);
  c->cids_.push_back(a.scid);
  return c;
}

std::shared_ptr<quic_conn> quic_conn::make_client(asio::io_context& loop, std::shared_ptr<conn_host> host,
                                                  const tls_credentials& cred, const conn_config& cfg,
                                                  const sockaddr* local, socklen_t locallen, const sockaddr* remote,
                                                  socklen_t remotelen, const client_args& a, std::string& detail) {
  std::shared_ptr<quic_conn> c(new quic_conn(loop, std::move(host), cfg, false));
  c->init_common(local, locallen, remote, remotelen);
  ngtcp2_cid dcid, scid;
  dcid.datalen = 18;
  scid.datalen = 18;
  random_bytes(dcid.data, dcid.datalen);
  random_bytes(scid.data, scid.datalen);
  ngtcp2_settings s;
  fill_settings(s, cfg, remote);
  ngtcp2_transport_params p;
  fill_params(p, cfg, false);
  auto cb = make_callbacks(false);
  int rv = ngtcp2_conn_client_new(&c->conn_, &dcid, &scid, &c->path_.path, NGTCP2_PROTO_VER_V1, &cb, &s, &p, nullptr,
                                  c.get());
  if (rv != 0) {
    detail = std::string("ngtcp2_conn_client_new: ") + ngtcp2_strerror(rv);
    return nullptr;
  }
  c->ref_ = {get_conn, c->conn_};
  c->server_name_ = a.server_name;  // GnuTLS keeps a pointer to the verified name
  c->tls_ = make_client_session(cred, &c->ref_, c->server_name_, a.verify, a.alpn, detail);
  if (!c->tls_) return nullptr;
  ngtcp2_conn_set_tls_native_handle(c->conn_, c->tls_);
  if (cfg.opts.keep_alive_interval.count() > 0)
    ngtcp2_conn_set_keep_alive_timeout(
        c->conn_, static_cast<ngtcp2_duration>(cfg.opts.keep_alive_interval.count()) * NGTCP2_MILLISECONDS);
  return c;
}

quic_conn::~quic_conn() {
  if (phase_ != phase::done) host_->on_terminated(*this);
  if (conn_) ngtcp2_conn_del(conn_);
  if (tls_) gnutls_deinit(tls_);
}

// ---------------------------------------------------------------------------------------
// Datagrams in

void quic_conn::on_datagram(const sockaddr* local, socklen_t locallen, const sockaddr* remote, socklen_t remotelen,
                            const std::uint8_t* data, std::size_t len) {
  switch (phase_) {
    case phase::done:
    case phase::draining:
      return;
    case phase::closing:
      // Answer with our CONNECTION_CLOSE again, a bounded number of times (RFC 9000 10.2.1).
      if (close_resend_budget_ > 0 && !close_pkt_.empty()) {
        --close_resend_budget_;
        std::size_t n = close_pkt_.size();
        host_->send_packets(path_.path.remote, close_pkt_.data(), &n, 1);
      }
      return;
    default:
      break;
  }
  auto keep = shared_from_this();
  ngtcp2_path path{{const_cast<sockaddr*>(local), locallen}, {const_cast<sockaddr*>(remote), remotelen}, nullptr};
  ngtcp2_pkt_info pi{};
  ++in_lib_;
  int rv = ngtcp2_conn_read_pkt(conn_, &path, &pi, data, len, now_ts());
  --in_lib_;
  if (rv != 0) {
    handle_lib_error(rv);
    return;
  }
  after_lib_call();
  schedule_flush();
}

// Runs what callbacks decided but could not do inside ngtcp2.
void quic_conn::after_lib_call() {
  if (established_pending_ && phase_ == phase::handshake) {
    established_pending_ = false;
    phase_ = phase::established;
    host_->on_established(shared_from_this());
  }
  if (pending_close_ && phase_ <= phase::flushing) {
    close_info why = std::move(*pending_close_);
    pending_close_.reset();
    close_now(std::move(why));
    return;
  }
  if (pending_app_close_ && phase_ <= phase::established) {
    close_info why = std::move(*pending_app_close_);
    pending_app_close_.reset();
    close(std::move(why));
  }
  if (want_write_done_ && sendq_.unacked() < cfg_.opts.send_buffer_limit) {
    want_write_done_ = false;
    asio::post(loop_, [self = shared_from_this()] {
      if (self->owner_ && self->phase_ <= phase::flushing) self->owner_->on_write_done();
    });
  }
  if (acked_untold_ > 0) {
    asio::post(loop_, [self = shared_from_this(), n = std::exchange(acked_untold_, 0)] {
      if (self->owner_ && self->phase_ <= phase::flushing) self->owner_->on_acked(n);
    });
  }
  if (phase_ == phase::flushing && sendq_.all_acked()) close_now(*closed_info_);
}

void quic_conn::handle_lib_error(int rv) {
  ngtcp2_connection_close_error ccerr;
  switch (rv) {
    case NGTCP2_ERR_DRAINING: {  // the peer sent CONNECTION_CLOSE
      ngtcp2_conn_get_connection_close_error(conn_, &ccerr);
      close_info why{close_reason::peer_closed, errc::connection_closed, {}, static_cast<int>(ccerr.error_code)};
      std::string reason(reinterpret_cast<const char*>(ccerr.reason), ccerr.reasonlen);
      if (ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION) {
        why.detail = "peer closed (application code " + std::to_string(ccerr.error_code) + ")";
        if (ccerr.error_code == quic_app_error::protocol_error) why.reason = close_reason::protocol_error;
      } else if ((ccerr.error_code & ~0xffull) == NGTCP2_CRYPTO_ERROR) {
        why.reason = close_reason::error;
        why.error = errc::tls_error;
        why.detail = "the peer refused the TLS handshake (alert " + std::to_string(ccerr.error_code & 0xff) + ")";
      } else {
        why.detail = "peer closed (transport code " + std::to_string(ccerr.error_code) + ")";
      }
      if (!reason.empty()) why.detail += ": " + reason;
      enter_draining(std::move(why));
      return;
    }
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_RETRY:
      notify_closed({close_reason::error, errc::protocol_error, "connection dropped", 0});
      terminate();
      return;
    case NGTCP2_ERR_CRYPTO: {
      const auto alert = ngtcp2_conn_get_tls_alert(conn_);
      ngtcp2_connection_close_error_set_transport_error_tls_alert(&ccerr, alert, nullptr, 0);
      std::string d = "TLS handshake failed (alert " + std::to_string(alert) + ")";
      if (const unsigned status = tls_ ? gnutls_session_get_verify_cert_status(tls_) : 0; status != 0) {
        gnutls_datum_t text{};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
          d += ": " + std::string(reinterpret_cast<const char*>(text.data), text.size);
          gnutls_free(text.data);
        }
      } else if (alert == 120) {
        d += ": no common ALPN protocol";
      }
      send_connection_close(ccerr, {close_reason::error, errc::tls_error, d, static_cast<int>(0x100 + alert)});
      return;
    }
    default:
      ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, rv, nullptr, 0);
      send_connection_close(ccerr, {close_reason::protocol_error, errc::protocol_error,
                                    std::string("QUIC error: ") + ngtcp2_strerror(rv),
                                    static_cast<int>(ccerr.error_code)});
      return;
  }
}
}  // namespace msgtrans::quic_detail

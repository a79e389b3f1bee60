// The QUIC connection. Reading order: creation, datagram in, flush out, timer, the
// msgtrans stream (write / read / credit), closing.
#include "quic/quic_conn.hpp"

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

namespace msgtrans::quic_detail {
namespace asio = boost::asio;

namespace {
constexpr std::size_t max_pkts_per_batch = 64;
constexpr std::size_t max_udp_payload = 1452;  // what ngtcp2 0.12 sends at most by default
constexpr std::size_t loopback_udp_payload = 65000;  // loopback MTU is 64 KiB
constexpr std::size_t max_tx_buffer = 128 * 1024;   // a flush's datagrams, back to back
constexpr std::size_t close_resends = 16;       // CONNECTION_CLOSE replays in the closing period
constexpr auto close_flush_limit = std::chrono::seconds(3);
constexpr ngtcp2_tstamp immediate_expiry_ns = 50 * 1000;
}  // namespace

ngtcp2_tstamp now_ts() noexcept {
  return static_cast<ngtcp2_tstamp>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

void random_bytes(std::uint8_t* p, std::size_t n) noexcept { gnutls_rnd(GNUTLS_RND_NONCE, p, n); }

std::string to_string(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

// ---------------------------------------------------------------------------------------
// ngtcp2 callbacks: trampolines into quic_conn. They never call ngtcp2 back except the
// calls the library allows there (open stream, extend credit).
struct callbacks {
  static quic_conn* self(void* ud) { return static_cast<quic_conn*>(ud); }

  static void rand(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) { random_bytes(dest, len); }

  static int get_new_cid(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t cidlen, void* ud) {
    random_bytes(cid->data, cidlen);
    cid->datalen = cidlen;
    auto* c = self(ud);
    if (c->server_) c->cfg_.steer(cid->data);
    if (ngtcp2_crypto_generate_stateless_reset_token(token, c->cfg_.secret.data(), c->cfg_.secret.size(), cid) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    c->cids_.push_back(*cid);
    c->host_->add_cid(*c, *cid);
    return 0;
  }

  static int remove_cid(ngtcp2_conn*, const ngtcp2_cid* cid, void* ud) {
    auto* c = self(ud);
    std::erase_if(c->cids_, [&](const ngtcp2_cid& x) { return ngtcp2_cid_eq(&x, cid); });
    c->host_->remove_cid(*cid);
    return 0;
  }

  static int handshake_completed(ngtcp2_conn*, void* ud) { return self(ud)->on_handshake_completed(); }

  static int recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t sid, std::uint64_t, const std::uint8_t* data,
                              std::size_t len, void* ud, void*) {
    return self(ud)->on_recv_stream_data(flags, sid, data, len);
  }

  static int stream_open(ngtcp2_conn* conn, std::int64_t sid, void* ud) {
    auto* c = self(ud);
    if (c->stream_id_ < 0 && ngtcp2_is_bidi_stream(sid) && !ngtcp2_conn_is_local_stream(conn, sid)) {
      c->stream_id_ = sid;  // the client's msgtrans stream: buffered writes can leave now
      c->stream_blocked_ = false;
    }
    return 0;
  }

  static int acked_stream_data_offset(ngtcp2_conn*, std::int64_t sid, std::uint64_t offset, std::uint64_t len, void* ud,
                                      void*) {
    auto* c = self(ud);
    if (sid == c->stream_id_) c->sendq_.acked(offset + len);
    return 0;
  }

  static int stream_close(ngtcp2_conn*, std::uint32_t, std::int64_t sid, std::uint64_t app_err, void* ud, void*) {
    auto* c = self(ud);
    if (sid == c->stream_id_ && !c->pending_close_)
      c->pending_close_ = close_info{close_reason::peer_closed, errc::connection_closed,
                                     "the peer closed the msgtrans stream", static_cast<int>(app_err)};
    return 0;
  }

  static int stream_reset(ngtcp2_conn* conn, std::int64_t sid, std::uint64_t, std::uint64_t app_err, void* ud,
                          void* sud) {
    return stream_close(conn, 0, sid, app_err, ud, sud);
  }

  static int extend_max_local_streams_bidi(ngtcp2_conn*, std::uint64_t, void* ud) {
    auto* c = self(ud);
    if (!c->server_ && c->stream_id_ < 0 && ngtcp2_conn_get_handshake_completed(c->conn_)) c->open_stream();
    return 0;
  }

  static int extend_max_stream_data(ngtcp2_conn*, std::int64_t sid, std::uint64_t, void* ud, void*) {
    auto* c = self(ud);
    if (sid == c->stream_id_) c->stream_blocked_ = false;
    return 0;
  }

  static ngtcp2_callbacks make(bool server) {
    ngtcp2_callbacks cb{};
    if (server) {
      cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    } else {
      cb.client_initial = ngtcp2_crypto_client_initial_cb;
      cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
      cb.extend_max_local_streams_bidi = extend_max_local_streams_bidi;
    }
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.rand = rand;
    cb.get_new_connection_id = get_new_cid;
    cb.remove_connection_id = remove_cid;
    cb.handshake_completed = handshake_completed;
    cb.recv_stream_data = recv_stream_data;
    cb.stream_open = stream_open;
    cb.acked_stream_data_offset = acked_stream_data_offset;
    cb.stream_close = stream_close;
    cb.stream_reset = stream_reset;
    cb.extend_max_stream_data = extend_max_stream_data;
    return cb;
  }
};

namespace {

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
  info_ = endpoint_info{"quic", to_string(local), to_string(remote)};
  pacing_ = !is_loopback(remote);
  return true;
}

std::shared_ptr<quic_conn> quic_conn::make_server(asio::io_context& loop, std::shared_ptr<conn_host> host,
                                                  const tls_credentials& cred, const conn_config& cfg,
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
  auto cb = callbacks::make(true);
  int rv = ngtcp2_conn_server_new(&c->conn_, &a.hd->scid, &a.scid, &c->path_.path, a.hd->version, &cb, &s, &p,
                                  nullptr, c.get());
  if (rv != 0) {
    detail = std::string("ngtcp2_conn_server_new: ") + ngtcp2_strerror(rv);
    return nullptr;
  }
  c->ref_ = {get_conn, c->conn_};
  c->tls_ = make_server_session(cred, &c->ref_, detail);
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
  auto cb = callbacks::make(false);
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

// ---------------------------------------------------------------------------------------
// Packets out

// One posted flush per loop turn. A flush that runs meanwhile (write() flushes at once)
// takes its place, so the posted one then has nothing left to do and skips ngtcp2.
void quic_conn::schedule_flush() {
  flush_wanted_ = true;
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  asio::post(loop_, [self = shared_from_this()] {
    self->flush_scheduled_ = false;
    if (self->flush_wanted_) self->flush();
  });
}

void quic_conn::flush() {
  flush_wanted_ = false;
  if (phase_ > phase::flushing || !conn_) return;
  auto keep = shared_from_this();
  const ngtcp2_tstamp ts = now_ts();
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  std::array<std::size_t, max_pkts_per_batch> lens{};
  std::size_t n = 0, off = 0;
  // One packet buffer per thread: a flush sends everything it builds before returning.
  thread_local std::vector<std::uint8_t> txbuf(max_tx_buffer);
  stream_blocked_ = false;
  const std::size_t mtu = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
  auto send_batch = [&] {
    if (n > 0) host_->send_packets(ps.path.remote, txbuf.data(), lens.data(), n);
    n = off = 0;
  };
  bool blocked = host_->send_blocked();  // the socket is full: produce nothing until it drains
  ++in_lib_;
  while (!blocked) {
    std::array<ngtcp2_vec, 16> vec;
    std::size_t vcnt = 0;
    std::int64_t sid = -1;
    std::uint32_t flags = 0;
    if (stream_id_ >= 0 && !stream_blocked_) {
      if (sendq_.has_unsent()) {
        vcnt = sendq_.unsent(vec.data(), vec.size());
        sid = stream_id_;
        // MORE asks ngtcp2 to leave the packet open for further stream data. Only worth it
        // when the views do not cover everything unsent; otherwise it costs a call that
        // returns NGTCP2_ERR_WRITE_MORE and another to close the packet.
        std::uint64_t given = 0;
        for (std::size_t i = 0; i < vcnt; ++i) given += vec[i].len;
        if (given < sendq_.unsent_bytes()) flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
      } else if (!stream_announced_ && !server_) {
        sid = stream_id_;  // an empty STREAM frame: the server learns the stream at once
      }
    }
    ngtcp2_ssize ndatalen = -1;
    auto nwrite = ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, txbuf.data() + off, mtu, &ndatalen, flags, sid,
                                            vec.data(), vcnt, ts);
    if (nwrite < 0) {
      if (nwrite == NGTCP2_ERR_WRITE_MORE) {
        sendq_.consumed(static_cast<std::size_t>(ndatalen));
        stream_announced_ = true;
        continue;
      }
      if (nwrite == NGTCP2_ERR_STREAM_DATA_BLOCKED || nwrite == NGTCP2_ERR_STREAM_SHUT_WR ||
          nwrite == NGTCP2_ERR_STREAM_NOT_FOUND) {
        stream_blocked_ = true;
        continue;
      }
      --in_lib_;
      send_batch();
      handle_lib_error(static_cast<int>(nwrite));
      return;
    }
    if (sid >= 0 && ndatalen >= 0) {
      sendq_.consumed(static_cast<std::size_t>(ndatalen));
      stream_announced_ = true;
    }
    if (nwrite == 0) break;
    lens[n++] = static_cast<std::size_t>(nwrite);
    off += static_cast<std::size_t>(nwrite);
    if (n == max_pkts_per_batch || off + mtu > txbuf.size()) {
      send_batch();
      blocked = host_->send_blocked();
    }
  }
  --in_lib_;
  send_batch();
  if (blocked || host_->send_blocked()) host_->wait_writable(keep);
  // Pacing spaces bursts out for a bottleneck queue, which a loopback path does not have.
  // There ngtcp2's interval is a fraction of a microsecond and only costs a wake-up of
  // its own after every flush (see arm_timer), so it is left off.
  if (pacing_) ngtcp2_conn_update_pkt_tx_time(conn_, ts);
  after_lib_call();
  arm_timer();
}

// ---------------------------------------------------------------------------------------
// Timer

// Asio's reactor reprograms a timerfd whenever the earliest timer moves, which costs a
// system call; ngtcp2's expiry moves on nearly every packet (ACK delay, loss detection,
// pacing). So the Asio timer is moved only when the expiry comes earlier; when it fires
// early, ngtcp2 has nothing to do and it is re-armed. Expiries due within a few
// microseconds (pacing) run from a posted handler instead of the timer.
void quic_conn::arm_timer() {
  if (phase_ > phase::flushing) return;
  const ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(conn_);
  if (expiry == UINT64_MAX) return;  // a pending early wake-up is harmless
  if (expiry <= now_ts() + immediate_expiry_ns) {
    if (!expiry_posted_) {
      expiry_posted_ = true;
      asio::post(loop_, [self = shared_from_this()] {
        self->expiry_posted_ = false;
        if (self->phase_ <= phase::flushing) self->on_timer();
      });
    }
    return;
  }
  if (timer_armed_ && armed_expiry_ <= expiry) return;
  armed_expiry_ = expiry;
  timer_armed_ = true;
  timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(expiry)));
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return;
    self->timer_armed_ = false;
    self->on_timer();
  });
}

void quic_conn::on_timer() {
  if (phase_ == phase::closing || phase_ == phase::draining) {
    terminate();
    return;
  }
  if (phase_ == phase::done) return;
  int rv = ngtcp2_conn_handle_expiry(conn_, now_ts());
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    notify_closed({close_reason::idle_timeout, errc::timeout, "no traffic within the idle timeout", 0});
    terminate();
    return;
  }
  if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    if (cfg_.notices)
      cfg_.notices->report(notice{notice_kind::handshake_timeout, "quic", info_.peer_address,
                                  "the QUIC handshake did not complete in time", 0});
    notify_closed({close_reason::handshake_timeout, errc::timeout, "the QUIC handshake did not complete in time", 0});
    terminate();
    return;
  }
  if (rv != 0) {
    handle_lib_error(rv);
    return;
  }
  flush();
}

// ---------------------------------------------------------------------------------------
// The msgtrans stream

int quic_conn::on_handshake_completed() {
  established_pending_ = true;
  if (!server_) open_stream();
  return 0;
}

void quic_conn::open_stream() {
  std::int64_t sid = -1;
  if (ngtcp2_conn_open_bidi_stream(conn_, &sid, nullptr) == 0) stream_id_ = sid;
}

void quic_conn::start(connection_owner& owner) {
  owner_ = &owner;
  started_ = true;
  if (closed_info_) {  // it ended between the handshake and start()
    closed_notified_ = false;
    notify_closed(*closed_info_);
    return;
  }
  if (reading_) {
    extend_credit(pending_credit_);
    pending_credit_ = 0;
    deliver_packets();
    schedule_flush();
  }
}

void quic_conn::write(std::span<const bytes_view> packets) {
  if (phase_ > phase::established) return;  // closing: the runtime fails its sends itself
  for (const bytes_view& p : packets) {
    const auto len = static_cast<std::uint32_t>(p.size());
    const std::byte prefix[4] = {std::byte(len >> 24), std::byte(len >> 16), std::byte(len >> 8), std::byte(len)};
    sendq_.append({prefix, 4});
    sendq_.append(p);
  }
  // The runtime already gathers a loop turn's sends into one write(), so the packets go
  // out now rather than after another trip through the loop. Inside an ngtcp2 call (a
  // callback led here) the flush has to wait until the call returns.
  if (in_lib_ == 0)
    flush();
  else
    schedule_flush();
  if (sendq_.unacked() < cfg_.opts.send_buffer_limit) {
    asio::post(loop_, [self = shared_from_this()] {
      if (self->owner_ && self->phase_ <= phase::flushing) self->owner_->on_write_done();
    });
  } else {
    want_write_done_ = true;  // when acknowledgements bring it under the limit
  }
}

int quic_conn::on_recv_stream_data(std::uint32_t flags, std::int64_t sid, const std::uint8_t* data,
                                   std::size_t len) {
  if (stream_id_ < 0 && server_ && ngtcp2_is_bidi_stream(sid) && !ngtcp2_conn_is_local_stream(conn_, sid))
    stream_id_ = sid;
  if (sid != stream_id_ || decoder_.error() || phase_ > phase::flushing || pending_app_close_) {
    extend_credit(len);  // not ours, or no longer read: consume and forget
    return 0;
  }
  if (len > 0) {
    auto space = decoder_.prepare(len);
    std::memcpy(space.data(), data, len);
    decoder_.commit(len);
    if (owner_ && reading_) {
      extend_credit(len);
      deliver_packets();
    } else {
      pending_credit_ += len;  // granted again when the reader resumes
    }
  }
  if ((flags & NGTCP2_STREAM_DATA_FLAG_FIN) && decoder_.buffered() > 0 && owner_ && reading_) stream_cut_short();
  return 0;
}

// The peer ended the stream (FIN) inside a frame: say how much of it came.
void quic_conn::stream_cut_short() {
  if (pending_close_) return;
  const std::size_t have = decoder_.buffered();
  const std::size_t of = decoder_.pending_frame();
  std::string what = "truncated packet: " + std::to_string(have) + " of " +
                     (of ? std::to_string(of) + " bytes" : "at least " + std::to_string(have + 1) + " bytes");
  if (cfg_.notices) cfg_.notices->report(notice{notice_kind::truncated_packet, "quic", info_.peer_address, what, 0});
  pending_close_ = close_info{close_reason::peer_closed, {}, std::move(what), static_cast<int>(quic_app_error::protocol_error)};
  if (in_lib_ == 0) after_lib_call();
}

void quic_conn::deliver_packets() {
  if (draining_decoder_ || !owner_) return;
  draining_decoder_ = true;
  auto keep = shared_from_this();
  // A close decided meanwhile (from on_packet, say, inside an ngtcp2 call, where it has to
  // wait until the call returns) stops delivery at once, as on TCP.
  auto delivering = [this] {
    return owner_ != nullptr && reading_ && phase_ <= phase::flushing && !pending_app_close_ && !pending_close_;
  };
  auto ec = decoder_.drain([&](bytes_view p) {
    if (delivering()) owner_->on_packet(p);
    return delivering();
  });
  draining_decoder_ = false;
  if (decoder_.buffered() == 0 && decoder_.capacity() > 256 * 1024) decoder_.shrink();  // after a big message
  if (ec && !pending_close_) {
    std::string d = ec == errc::message_too_large ? "frame length over the 16 MiB limit of the QUIC mapping"
                                                  : "bad frame on the msgtrans stream: " + ec.message();
    pending_close_ = close_info{close_reason::protocol_error, ec, d, static_cast<int>(quic_app_error::protocol_error)};
    if (in_lib_ == 0) after_lib_call();
  }
}

void quic_conn::extend_credit(std::uint64_t n) {
  if (n == 0 || !conn_ || stream_id_ < 0) return;
  ngtcp2_conn_extend_max_stream_offset(conn_, stream_id_, n);
  ngtcp2_conn_extend_max_offset(conn_, n);
}

void quic_conn::set_reading(bool enabled) {
  if (reading_ == enabled) return;
  reading_ = enabled;
  if (!enabled || phase_ > phase::flushing) return;
  extend_credit(pending_credit_);
  pending_credit_ = 0;
  deliver_packets();
  schedule_flush();  // the MAX_STREAM_DATA that lets the peer go on
}

// ---------------------------------------------------------------------------------------
// Closing

std::uint64_t quic_conn::app_code(const close_info& info) {
  switch (info.reason) {
    case close_reason::normal: return quic_app_error::no_error;
    case close_reason::protocol_error: return quic_app_error::protocol_error;
    case close_reason::shutdown: return quic_app_error::shutdown;
    case close_reason::limit_reached: return quic_app_error::limit_reached;
    case close_reason::idle_timeout: return quic_app_error::idle;
    default: return quic_app_error::internal;
  }
}

void quic_conn::close(close_info info) {
  if (phase_ >= phase::flushing) return;  // twice is harmless
  if (in_lib_ > 0) {  // from on_packet: done, gracefully, right after the ngtcp2 call
    if (!pending_app_close_) pending_app_close_ = std::move(info);
    return;
  }
  if (phase_ == phase::established && !sendq_.all_acked()) {
    // Finish the write in progress first, bounded in time.
    closed_info_ = std::move(info);
    phase_ = phase::flushing;
    close_timer_.expires_after(close_flush_limit);
    close_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && self->phase_ == phase::flushing) self->close_now(*self->closed_info_);
    });
    schedule_flush();
    return;
  }
  close_now(std::move(info));
}

void quic_conn::close_now(close_info info) {
  if (phase_ > phase::flushing) return;
  close_timer_.cancel();
  ngtcp2_connection_close_error ccerr;
  const std::uint64_t code = info.transport_code > 0 && info.reason == close_reason::protocol_error
                                 ? static_cast<std::uint64_t>(info.transport_code)
                                 : app_code(info);
  const std::string reason = info.detail.substr(0, 512);  // ccerr points into it; info is moved below
  ngtcp2_connection_close_error_set_application_error(&ccerr, code,
                                                      reinterpret_cast<const std::uint8_t*>(reason.data()),
                                                      reason.size());
  if (info.transport_code == 0) info.transport_code = static_cast<int>(code);
  send_connection_close(ccerr, std::move(info));
}

void quic_conn::send_connection_close(const ngtcp2_connection_close_error& ccerr, close_info info) {
  if (phase_ > phase::flushing) return;
  auto keep = shared_from_this();
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  close_pkt_.resize(std::max(max_udp_payload, ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_)));
  auto n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, close_pkt_.data(), close_pkt_.size(), &ccerr,
                                              now_ts());
  notify_closed(std::move(info));
  if (n <= 0) {  // nothing can be sent in this state: just forget the connection
    terminate();
    return;
  }
  close_pkt_.resize(static_cast<std::size_t>(n));
  std::size_t len = close_pkt_.size();
  host_->send_packets(ps.path.remote, close_pkt_.data(), &len, 1);
  phase_ = phase::closing;
  close_resend_budget_ = close_resends;
  timer_armed_ = false;
  // The closing period: three PTOs (RFC 9000 10.2).
  timer_.expires_after(std::chrono::nanoseconds(3 * ngtcp2_conn_get_pto(conn_)));
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->terminate();
  });
}

void quic_conn::enter_draining(close_info info) {
  auto keep = shared_from_this();
  notify_closed(std::move(info));
  phase_ = phase::draining;
  close_timer_.cancel();
  timer_armed_ = false;
  timer_.expires_after(std::chrono::nanoseconds(3 * ngtcp2_conn_get_pto(conn_)));
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->terminate();
  });
}

void quic_conn::abort(close_info why) {
  if (phase_ == phase::done) return;
  auto keep = shared_from_this();
  notify_closed(std::move(why));
  terminate();
}

void quic_conn::terminate() {
  if (phase_ == phase::done) return;
  phase_ = phase::done;
  timer_.cancel();
  close_timer_.cancel();
  host_->on_terminated(*this);
}

void quic_conn::notify_closed(close_info info) {
  if (!closed_info_) closed_info_ = info;
  if (closed_notified_) return;
  if (phase_ == phase::handshake) {  // never delivered: the host reports it (client connect)
    closed_notified_ = true;
    host_->on_failed(*this, info);
    return;
  }
  if (!started_) return;  // reported by start()
  closed_notified_ = true;
  asio::post(loop_, [self = shared_from_this(), info = std::move(info)]() mutable {
    if (auto* o = self->owner_) {
      self->owner_ = nullptr;
      o->on_closed(std::move(info));
    }
  });
}

void quic_conn::detach() {
  owner_ = nullptr;
  if (phase_ <= phase::flushing)
    close({close_reason::normal, {}, "connection released by the application", 0});
}

}  // namespace msgtrans::quic_detail

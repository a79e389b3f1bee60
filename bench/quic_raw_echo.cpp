// The QUIC limit of the benchmark: the smallest echo server written directly on ngtcp2
// 0.12 + GnuTLS, with no msgtrans runtime. One thread, one loop (ppoll), one UDP socket,
// recvmmsg in and one sendmmsg per loop turn out. Every bidirectional stream the client
// opens is echoed back unchanged on the same stream (the msgtrans wire framing passes
// through untouched), so `msgtrans bench quic://HOST:PORT --insecure` is its client.
//
// Usage: quic_raw_echo HOST PORT CERT.pem KEY.pem   (port 0 picks one; prints
// "listening quic HOST:PORT"). Transport settings match msgtrans' defaults (the same
// flow-control windows; on loopback 65,000-byte datagrams and an ACK for every packet),
// so the two servers speak the same protocol and differ only in the code around ngtcp2.
// Unbounded by design (no back-pressure, no limits): a benchmark peer, not a server.
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr std::size_t cid_len = 18;
constexpr std::size_t max_payload = 65000;  // loopback; ngtcp2 clamps to what the path allows
constexpr std::size_t batch = 64;           // datagrams per recvmmsg / sendmmsg
constexpr std::size_t chunk = 64 * 1024;

ngtcp2_tstamp now_ts() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<ngtcp2_tstamp>(t.tv_sec) * NGTCP2_SECONDS + static_cast<ngtcp2_tstamp>(t.tv_nsec);
}

std::uint8_t secret[32];
gnutls_certificate_credentials_t cred;

// Bytes of one stream waiting to be echoed. ngtcp2 keeps pointers into them until they
// are acknowledged, so they live in fixed chunks that are never moved.
struct stream {
  std::deque<std::unique_ptr<std::uint8_t[]>> chunks;
  std::uint64_t base = 0;   // stream offset of chunks.front()[0]
  std::uint64_t sent = 0;   // offset up to which ngtcp2 has taken the bytes
  std::uint64_t end = 0;    // offset up to which bytes are stored
  bool fin = false, fin_sent = false;

  void append(const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      const std::size_t used = static_cast<std::size_t>((end - base) % chunk);
      if (used == 0 && end - base == chunk * chunks.size()) chunks.push_back(std::make_unique<std::uint8_t[]>(chunk));
      const std::size_t k = std::min(n, chunk - used);
      std::memcpy(chunks.back().get() + used, p, k);
      p += k, n -= k, end += k;
    }
  }
  void acked(std::uint64_t upto) {
    while (!chunks.empty() && upto >= base + chunk && sent >= base + chunk) chunks.pop_front(), base += chunk;
  }
  std::size_t unsent(ngtcp2_vec* v, std::size_t max) const {
    std::size_t n = 0;
    for (std::uint64_t off = sent; off < end && n < max; ++n) {
      const auto i = static_cast<std::size_t>((off - base) / chunk), at = static_cast<std::size_t>((off - base) % chunk);
      const std::size_t k = std::min<std::uint64_t>(chunk - at, end - off);
      v[n] = {chunks[i].get() + at, k};
      off += k;
    }
    return n;
  }
};

struct conn {
  ngtcp2_conn* c = nullptr;
  gnutls_session_t tls = nullptr;
  ngtcp2_crypto_conn_ref ref{};
  sockaddr_storage local{}, remote{};
  socklen_t locallen = 0, remotelen = 0;
  std::map<std::int64_t, stream> streams;
  std::vector<std::string> cids;
  bool dead = false;
  ~conn() {
    if (c) ngtcp2_conn_del(c);
    if (tls) gnutls_deinit(tls);
  }
};

std::unordered_map<std::string, conn*> by_cid;
std::vector<std::unique_ptr<conn>> conns;

volatile sig_atomic_t stop = 0;  // SIGINT / SIGTERM: leave the loop (profilers write their data)

std::string key(const std::uint8_t* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// --- ngtcp2 callbacks ---------------------------------------------------------------------
void rand_cb(std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) { gnutls_rnd(GNUTLS_RND_RANDOM, dest, len); }

int new_cid_cb(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t len, void* ud) {
  gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, len);
  cid->datalen = len;
  if (ngtcp2_crypto_generate_stateless_reset_token(token, secret, sizeof secret, cid) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  auto* k = static_cast<conn*>(ud);
  k->cids.push_back(key(cid->data, len));
  by_cid[k->cids.back()] = k;
  return 0;
}

int remove_cid_cb(ngtcp2_conn*, const ngtcp2_cid* cid, void*) {
  by_cid.erase(key(cid->data, cid->datalen));
  return 0;
}

int recv_stream_cb(ngtcp2_conn* c, std::uint32_t flags, std::int64_t sid, std::uint64_t, const std::uint8_t* data,
                   std::size_t len, void* ud, void*) {
  auto& s = static_cast<conn*>(ud)->streams[sid];
  s.append(data, len);
  if (flags & NGTCP2_STREAM_DATA_FLAG_FIN) s.fin = true;
  ngtcp2_conn_extend_max_stream_offset(c, sid, len);
  ngtcp2_conn_extend_max_offset(c, len);
  return 0;
}

int acked_cb(ngtcp2_conn*, std::int64_t sid, std::uint64_t off, std::uint64_t len, void* ud, void*) {
  auto& m = static_cast<conn*>(ud)->streams;
  if (auto it = m.find(sid); it != m.end()) it->second.acked(off + len);
  return 0;
}

int stream_close_cb(ngtcp2_conn* c, std::uint32_t, std::int64_t sid, std::uint64_t, void* ud, void*) {
  static_cast<conn*>(ud)->streams.erase(sid);
  ngtcp2_conn_extend_max_streams_bidi(c, 1);
  return 0;
}

ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* r) { return static_cast<conn*>(r->user_data)->c; }

// --- accepting ------------------------------------------------------------------------------
conn* accept_conn(const ngtcp2_pkt_hd& hd, const sockaddr* local, socklen_t locallen, const sockaddr* from,
                  socklen_t fromlen) {
  auto k = std::make_unique<conn>();
  std::memcpy(&k->local, local, locallen);
  std::memcpy(&k->remote, from, fromlen);
  k->locallen = locallen, k->remotelen = fromlen;
  ngtcp2_path path{{reinterpret_cast<sockaddr*>(&k->local), locallen},
                   {reinterpret_cast<sockaddr*>(&k->remote), fromlen},
                   nullptr};
  ngtcp2_callbacks cb{};
  cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb.encrypt = ngtcp2_crypto_encrypt_cb;
  cb.decrypt = ngtcp2_crypto_decrypt_cb;
  cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb.update_key = ngtcp2_crypto_update_key_cb;
  cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb.rand = rand_cb;
  cb.get_new_connection_id = new_cid_cb;
  cb.remove_connection_id = remove_cid_cb;
  cb.recv_stream_data = recv_stream_cb;
  cb.acked_stream_data_offset = acked_cb;
  cb.stream_close = stream_close_cb;
  ngtcp2_settings s;
  ngtcp2_settings_default(&s);
  s.initial_ts = now_ts();
  s.initial_rtt = 100 * NGTCP2_MILLISECONDS;
  s.max_tx_udp_payload_size = max_payload;
  s.no_tx_udp_payload_size_shaping = 1;
  s.ack_thresh = 1;
  s.max_window = 24u << 20;
  s.max_stream_window = 16u << 20;
  ngtcp2_transport_params p;
  ngtcp2_transport_params_default(&p);
  p.initial_max_data = 24u << 20;
  p.initial_max_stream_data_bidi_remote = 16u << 20;
  p.initial_max_streams_bidi = 16;
  p.max_idle_timeout = 30 * NGTCP2_SECONDS;
  p.active_connection_id_limit = 4;
  p.original_dcid = hd.dcid;
  ngtcp2_cid scid;
  scid.datalen = cid_len;
  gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, cid_len);
  if (ngtcp2_crypto_generate_stateless_reset_token(p.stateless_reset_token, secret, sizeof secret, &scid) != 0)
    return nullptr;
  p.stateless_reset_token_present = 1;
  if (ngtcp2_conn_server_new(&k->c, &hd.scid, &scid, &path, hd.version, &cb, &s, &p, nullptr, k.get()) != 0)
    return nullptr;
  static const char* priority =
      "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:"
      "-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519:+GROUP-SECP384R1:+GROUP-SECP521R1:%DISABLE_TLS13_COMPAT_MODE";
  if (gnutls_init(&k->tls, GNUTLS_SERVER | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA) != 0 ||
      gnutls_priority_set_direct(k->tls, priority, nullptr) != 0 ||
      gnutls_credentials_set(k->tls, GNUTLS_CRD_CERTIFICATE, cred) != 0 ||
      ngtcp2_crypto_gnutls_configure_server_session(k->tls) != 0)
    return nullptr;
  gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>("msgtrans")), 8};
  gnutls_alpn_set_protocols(k->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY);
  k->ref = {get_conn, k.get()};
  gnutls_session_set_ptr(k->tls, &k->ref);
  ngtcp2_conn_set_tls_native_handle(k->c, k->tls);
  k->cids.push_back(key(scid.data, scid.datalen));
  auto* raw = k.get();
  by_cid[raw->cids.back()] = raw;
  by_cid[key(hd.dcid.data, hd.dcid.datalen)] = raw;  // the client's Initial DCID, until it switches
  raw->cids.push_back(key(hd.dcid.data, hd.dcid.datalen));
  conns.push_back(std::move(k));
  return raw;
}

// --- sending: every packet of a loop turn goes out in one sendmmsg --------------------------
int fd = -1;
std::vector<std::uint8_t> out(batch * max_payload);
mmsghdr msgs[batch];
iovec iovs[batch];
std::size_t queued = 0;

void send_queued() {
  for (std::size_t done = 0; done < queued;) {
    int n = sendmmsg(fd, msgs + done, static_cast<unsigned>(queued - done), 0);
    if (n < 0 && errno == EAGAIN) {
      pollfd w{fd, POLLOUT, 0};
      poll(&w, 1, -1);  // the socket buffer is full: wait for it rather than drop
      continue;
    }
    if (n < 0) break;  // an error for this destination: QUIC retransmits
    done += static_cast<std::size_t>(n);
  }
  queued = 0;
}

std::uint8_t* slot(conn& k) {
  if (queued == batch) send_queued();
  auto& m = msgs[queued].msg_hdr;
  m = {};
  m.msg_name = &k.remote;
  m.msg_namelen = k.remotelen;
  iovs[queued].iov_base = out.data() + queued * max_payload;
  m.msg_iov = &iovs[queued];
  m.msg_iovlen = 1;
  return static_cast<std::uint8_t*>(iovs[queued].iov_base);
}

void write_conn(conn& k, ngtcp2_tstamp now) {
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  const std::size_t maxlen = std::min(max_payload, ngtcp2_conn_get_max_tx_udp_payload_size(k.c));
  auto it = k.streams.begin();
  for (;;) {
    while (it != k.streams.end() && it->second.sent == it->second.end && (!it->second.fin || it->second.fin_sent)) ++it;
    std::int64_t sid = -1;
    ngtcp2_vec v[16];
    std::size_t nv = 0;
    std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    if (it != k.streams.end()) {
      sid = it->first;
      nv = it->second.unsent(v, 16);
      if (it->second.fin && nv < 16) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    }
    ngtcp2_ssize taken = -1;
    std::uint8_t* buf = slot(k);
    ngtcp2_ssize n = ngtcp2_conn_writev_stream(k.c, &ps.path, &pi, buf, maxlen, &taken, flags, sid, v, nv, now);
    if (taken >= 0 && sid >= 0) {
      it->second.sent += static_cast<std::uint64_t>(taken);
      if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && it->second.sent == it->second.end) it->second.fin_sent = true;
    }
    if (n == NGTCP2_ERR_WRITE_MORE) continue;
    if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
      if (it != k.streams.end()) ++it;  // no credit or closed: skip this stream this turn
      continue;
    }
    if (n < 0) {
      k.dead = true;
      return;
    }
    if (n == 0) break;
    iovs[queued].iov_len = static_cast<std::size_t>(n);
    ++queued;
  }
  ngtcp2_conn_update_pkt_tx_time(k.c, now);
}

void close_conn(conn& k, int liberr, ngtcp2_tstamp now) {
  ngtcp2_connection_close_error e;
  ngtcp2_connection_close_error_set_transport_error_liberr(&e, liberr, nullptr, 0);
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  std::uint8_t* buf = slot(k);
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close(k.c, &ps.path, &pi, buf, max_payload, &e, now);
  if (n > 0) iovs[queued].iov_len = static_cast<std::size_t>(n), ++queued;
  k.dead = true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) return std::fprintf(stderr, "usage: quic_raw_echo HOST PORT CERT.pem KEY.pem\n"), 1;
  gnutls_rnd(GNUTLS_RND_KEY, secret, sizeof secret);
  gnutls_certificate_allocate_credentials(&cred);
  if (int rv = gnutls_certificate_set_x509_key_file(cred, argv[3], argv[4], GNUTLS_X509_FMT_PEM); rv != 0)
    return std::fprintf(stderr, "quic_raw_echo: %s\n", gnutls_strerror(rv)), 1;
  fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int bufsize = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[2])));
  inet_pton(AF_INET, argv[1], &a.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return std::perror("bind"), 1;
  sockaddr_storage local{};
  socklen_t locallen = sizeof local;
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &locallen);
  std::printf("listening quic %s:%d\n", argv[1], ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port));
  std::fflush(stdout);

  std::vector<std::uint8_t> in(batch * 65536);
  mmsghdr rmsgs[batch];
  iovec riov[batch];
  sockaddr_storage from[batch];
  std::vector<conn*> dirty;
  signal(SIGINT, [](int) { stop = 1; });
  signal(SIGTERM, [](int) { stop = 1; });
  while (!stop) {
    // Wait for a datagram or the earliest connection timer.
    ngtcp2_tstamp expiry = UINT64_MAX;
    for (auto& k : conns) expiry = std::min(expiry, ngtcp2_conn_get_expiry(k->c));
    pollfd p{fd, POLLIN, 0};
    ngtcp2_tstamp now = now_ts();
    if (expiry > now) {
      timespec t{}, *tp = nullptr;
      if (expiry != UINT64_MAX) {
        t = {static_cast<time_t>((expiry - now) / NGTCP2_SECONDS), static_cast<long>((expiry - now) % NGTCP2_SECONDS)};
        tp = &t;
      }
      ppoll(&p, 1, tp, nullptr);
    }
    for (std::size_t i = 0; i < batch; ++i) {
      riov[i] = {in.data() + i * 65536, 65536};
      rmsgs[i].msg_hdr = {};
      rmsgs[i].msg_hdr.msg_name = &from[i];
      rmsgs[i].msg_hdr.msg_namelen = sizeof from[i];
      rmsgs[i].msg_hdr.msg_iov = &riov[i];
      rmsgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, rmsgs, batch, MSG_DONTWAIT, nullptr);
    now = now_ts();
    dirty.clear();
    for (int i = 0; i < n; ++i) {
      auto* data = static_cast<std::uint8_t*>(riov[i].iov_base);
      const std::size_t len = rmsgs[i].msg_len;
      const auto* src = reinterpret_cast<sockaddr*>(&from[i]);
      const socklen_t srclen = rmsgs[i].msg_hdr.msg_namelen;
      ngtcp2_version_cid vc;
      if (ngtcp2_pkt_decode_version_cid(&vc, data, len, cid_len) != 0) continue;
      conn* k = nullptr;
      if (auto f = by_cid.find(key(vc.dcid, vc.dcidlen)); f != by_cid.end()) {
        k = f->second;
      } else {
        ngtcp2_pkt_hd hd;
        if (ngtcp2_accept(&hd, data, len) != 0) continue;
        k = accept_conn(hd, reinterpret_cast<sockaddr*>(&local), locallen, src, srclen);
        if (!k) continue;
      }
      if (k->dead) continue;
      std::memcpy(&k->remote, src, srclen);  // follow the client's address
      k->remotelen = srclen;
      ngtcp2_path path{{reinterpret_cast<sockaddr*>(&k->local), k->locallen},
                       {reinterpret_cast<sockaddr*>(&k->remote), k->remotelen},
                       nullptr};
      ngtcp2_pkt_info pi{};
      int rv = ngtcp2_conn_read_pkt(k->c, &path, &pi, data, len, now);
      if (rv == NGTCP2_ERR_DRAINING || rv == NGTCP2_ERR_DROP_CONN) {
        k->dead = true;
        continue;
      }
      if (rv != 0) {
        close_conn(*k, rv, now);
        continue;
      }
      if (std::find(dirty.begin(), dirty.end(), k) == dirty.end()) dirty.push_back(k);
    }
    for (auto& k : conns) {
      if (k->dead || ngtcp2_conn_get_expiry(k->c) > now) continue;
      if (ngtcp2_conn_handle_expiry(k->c, now) != 0) {
        k->dead = true;
        continue;
      }
      if (std::find(dirty.begin(), dirty.end(), k.get()) == dirty.end()) dirty.push_back(k.get());
    }
    for (auto* k : dirty)
      if (!k->dead) write_conn(*k, now);
    send_queued();
    // Drop dead connections (and their connection IDs).
    for (auto it = conns.begin(); it != conns.end();) {
      if (!(*it)->dead) {
        ++it;
        continue;
      }
      for (auto& c : (*it)->cids)
        if (auto f = by_cid.find(c); f != by_cid.end() && f->second == it->get()) by_cid.erase(f);
      it = conns.erase(it);
    }
  }
  conns.clear();
  gnutls_certificate_free_credentials(cred);
}

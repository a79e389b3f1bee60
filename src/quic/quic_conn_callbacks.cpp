// The ngtcp2 callbacks of a quic_conn: trampolines into the connection.
#include "quic/quic_conn.hpp"

#include <msgtrans/error.hpp>

namespace msgtrans::quic_detail {

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
    if (sid == c->stream_id_ && c->report_acks_) c->acked_up_to(offset + len);
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

ngtcp2_callbacks make_callbacks(bool server) { return callbacks::make(server); }

}  // namespace msgtrans::quic_detail

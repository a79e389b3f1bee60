// The QUIC connection: packets out (flush) and the msgtrans stream (write / read / credit).
#include "quic/quic_conn.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

namespace msgtrans::quic_detail {
namespace asio = boost::asio;

namespace {
constexpr std::size_t max_pkts_per_batch = 64;
constexpr std::size_t max_tx_buffer = 128 * 1024;   // a flush's datagrams, back to back
}  // namespace

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

// What the next packet carries of the msgtrans stream: the views of unsent data (their
// count is returned), the stream (`sid`, -1 for none) and the write flags.
std::size_t quic_conn::next_stream_data(ngtcp2_vec* vec, std::size_t cap, std::int64_t& sid, std::uint32_t& flags) {
  std::size_t vcnt = 0;
  if (stream_id_ >= 0 && !stream_blocked_) {
    if (sendq_.has_unsent()) {
      vcnt = sendq_.unsent(vec, cap);
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
  return vcnt;
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
    std::int64_t sid = -1;
    std::uint32_t flags = 0;
    const std::size_t vcnt = next_stream_data(vec.data(), vec.size(), sid, flags);
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
// The msgtrans stream

int quic_conn::on_handshake_completed() {
  established_pending_ = true;
  if (server_ && cred_ && cred_->client_cert_request() != GNUTLS_CERT_IGNORE) peer_cert_ = client_certificate(tls_);
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

// Counts the written packets the peer has now acknowledged whole (report_acks only).
void quic_conn::acked_up_to(std::uint64_t offset) {
  while (ack_head_ < ack_marks_.size() && ack_marks_[ack_head_] <= offset) {
    ++ack_head_;
    ++acked_untold_;
  }
  if (ack_head_ == ack_marks_.size()) {
    ack_marks_.clear();
    ack_head_ = 0;
  } else if (ack_head_ > 1024 && ack_head_ * 2 > ack_marks_.size()) {
    ack_marks_.erase(ack_marks_.begin(), ack_marks_.begin() + static_cast<std::ptrdiff_t>(ack_head_));
    ack_head_ = 0;
  }
}

void quic_conn::write(std::span<const bytes_view> packets) {
  if (phase_ > phase::established) return;  // closing: the runtime fails its sends itself
  for (const bytes_view& p : packets) {
    sendq_.append_framed(p);
    if (report_acks_) ack_marks_.push_back(sendq_.end());
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
    const std::size_t limit = std::min(max_length_prefixed_frame, cfg_.limits.max_message_size);
    std::string d = ec == errc::message_too_large
                        ? "frame length over the limit of " + std::to_string(limit) + " bytes (max_message_size)"
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

}  // namespace msgtrans::quic_detail

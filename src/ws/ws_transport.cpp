// The WebSocket transport: listener, connector and connection (see include/msgtrans/ws.hpp).
//
// The only translation unit of the library that includes Beast and asio::ssl. Beast
// parses the HTTP upgrade request/response; the frames are read and written here with
// ws_frame.hpp, so that a corked batch of packets leaves in one write call.
//
// Reading top to bottom: helpers, the connection (template over the stream: plain TCP or
// TLS), the server handshake and listener, the client handshake and connector.
#include <msgtrans/error.hpp>
#include <msgtrans/ws.hpp>

#include "core/op_allocator.hpp"
#include "ws/ws_frame.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/string_body.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <array>
#include <cstring>
#include <stdexcept>

namespace msgtrans {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using plain_stream = tcp::socket;
using tls_stream = ssl::stream<tcp::socket>;

tcp::socket& lowest(plain_stream& s) { return s; }
tcp::socket& lowest(tls_stream& s) { return s.next_layer(); }
const tcp::socket& lowest(const plain_stream& s) { return s; }
const tcp::socket& lowest(const tls_stream& s) { return s.next_layer(); }

std::string to_string(const tcp::endpoint& ep) {
  auto a = ep.address();
  std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return host + ":" + std::to_string(ep.port());
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// "host:port", "[v6]:port" → host, port. False if malformed.
bool split_host_port(std::string_view s, std::string& host, std::string& port) {
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    host = std::string(s.substr(1, close - 1));
    port = std::string(s.substr(close + 2));
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = std::string(s.substr(0, colon));
    port = std::string(s.substr(colon + 1));
  }
  if (host.empty() || port.empty() || port.size() > 5) return false;
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  return std::stoul(port) <= 65535;
}

// memcpy, but an empty copy may come with null pointers (empty spans).
void copy_bytes(std::byte* to, const std::byte* from, std::size_t n) {
  if (n) std::memcpy(to, from, n);
}

// The close code for a close() the application asked for.
std::uint16_t close_code_for(const close_info& info) {
  if (info.transport_code >= 1000 && info.transport_code <= 4999 &&
      ws::is_valid_close_code(static_cast<std::uint16_t>(info.transport_code)))
    return static_cast<std::uint16_t>(info.transport_code);
  switch (info.reason) {
    case close_reason::shutdown: return ws::close_code::going_away;
    case close_reason::idle_timeout: return ws::close_code::going_away;
    case close_reason::handshake_timeout: return ws::close_code::going_away;
    case close_reason::protocol_error: return ws::close_code::protocol_error;
    case close_reason::limit_reached: return ws::close_code::policy_violation;
    case close_reason::error: return ws::close_code::internal_error;
    case close_reason::normal:
    case close_reason::peer_closed: return ws::close_code::normal;
  }
  return ws::close_code::normal;
}

// ---------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------

// What every connection of one listener or connector shares.
struct conn_settings {
  ws::role role = ws::role::server;
  std::string protocol;  // "ws" / "wss"
  std::size_t max_message = default_max_message_size;
  decode_limits limits;  // max_message_size == max_message
  milliseconds idle_timeout{0};
  milliseconds ping_interval{0};
  milliseconds pong_timeout{0};
  milliseconds close_timeout{5000};
  notice_sink* notices = nullptr;  // a server's listener reports here (may be null)
  inbound_budget* budget = nullptr;  // the server-wide inbound budget (may be null)
};

// A partial frame up to this size is held without asking the inbound budget; a larger
// one takes its whole declared size first, or reading waits (as on TCP).
constexpr std::size_t budget_allowance = 64 * 1024;

// Pings a peer may send: a burst of ping_burst, then ping_rate per second. Past that it
// is closed with 1008 "ping flood" (docs/reliability.md). Each ping is answered by at
// most one pending pong: a newer ping replaces an unsent pong (RFC 6455 5.5.3).
constexpr double ping_burst = 100;
constexpr double ping_rate = 50;
// The write buffer keeps at most this much between batches.
constexpr std::size_t keep_write_buffer = 256 * 1024;

// Packets no bigger than this are copied next to their frame header; bigger ones are
// referenced in place by the gather write (plain server side only).
constexpr std::size_t copy_threshold = 2048;
// An idle connection keeps this little; reads that fill the buffer double it (busy
// connections read up to max_read_buffer at once), and it shrinks back when idle.
constexpr std::size_t initial_read_buffer = 512;
constexpr std::size_t max_read_buffer = 256 * 1024;
// A plain (not TLS) connection with nothing buffered waits for readability holding no
// read buffer, then reads into its loop's buffer (one per thread, that is per loop); it
// keeps only what is left of a partial frame.
constexpr std::size_t loop_read_buffer = 64 * 1024;
struct loop_buffer {
  byte_buffer buf;
  bool busy = false;  // a handler on this thread re-entered a read: use the connection's own
};
thread_local loop_buffer t_loop_buffer;

template <class Stream>
class ws_conn : public std::enable_shared_from_this<ws_conn<Stream>> {
 public:
  ws_conn(Stream stream, std::shared_ptr<const conn_settings> st, std::shared_ptr<ssl::context> tls,
          bytes_view leftover)
      : stream_(std::move(stream)),
        st_(std::move(st)),
        tls_(std::move(tls)) {
    boost::system::error_code ec;
    lowest(stream_).set_option(tcp::no_delay(true), ec);
    // Plain streams read synchronously after a readiness wait: never block there.
    if constexpr (std::is_same_v<Stream, plain_stream>) lowest(stream_).non_blocking(true, ec);
    rbuf_.assign(leftover.begin(), leftover.end());  // usually nothing
    rend_ = leftover.size();
  }

  void start(connection_owner& owner) {
    owner_ = &owner;
    last_data_ = clock::now();
    if (st_->ping_interval.count() > 0) next_ping_ = last_data_ + st_->ping_interval;
    arm_keepalive();
    // Bytes that came with the handshake are delivered from the loop, not from start().
    asio::post(lowest(stream_).get_executor(), [self = this->shared_from_this()] { self->resume(); });
  }

  void write(std::span<const bytes_view> packets) {
    if (state_ != state::open) return;  // on_closed follows; the packets are dropped
    pending_.assign(packets.begin(), packets.end());
    data_pending_ = true;
    flush();
  }

  void set_reading(bool enabled) {
    if (reading_enabled_ == enabled) return;
    reading_enabled_ = enabled;
    if (enabled && state_ != state::closed)
      asio::post(lowest(stream_).get_executor(), [self = this->shared_from_this()] { self->resume(); });
  }

  void close(close_info info) {
    if (state_ != state::open) return;
    const std::uint16_t code = close_code_for(info);
    const std::string reason = info.detail.empty() ? to_string(info.reason) : info.detail;
    begin_close(code, reason, std::move(info));
  }

  // The handle was destroyed: forget the owner, stop everything.
  void abandon() {
    owner_ = nullptr;
    if (state_ != state::closed) finish();
  }

  endpoint_info info() const {
    endpoint_info i;
    i.protocol = st_->protocol;
    boost::system::error_code ec;
    auto local = lowest(stream_).local_endpoint(ec);
    if (!ec) i.local_address = to_string(local);
    auto peer = lowest(stream_).remote_endpoint(ec);
    if (!ec) i.peer_address = to_string(peer);
    return i;
  }

 private:
  enum class state { open, closing, closed };

  // --- reading -------------------------------------------------------------------------

  void resume() {
    process();
    do_read();
  }

  bool may_read() const {
    return state_ == state::closing || (state_ == state::open && reading_enabled_);
  }

  void do_read() {
    // Never from inside process(): it may still move the buffered bytes.
    if (read_in_progress_ || processing_ || !may_read() || budget_waiting_) return;
    if (state_ == state::open && !budget_allows()) return;
    if constexpr (std::is_same_v<Stream, plain_stream>) {
      if (rbeg_ == rend_ && !last_read_filled_) {
        // Idle (not streaming): drop the buffer and wait for readability.
        byte_buffer().swap(rbuf_);
        rbeg_ = rend_ = 0;
        read_in_progress_ = true;
        lowest(stream_).async_wait(
            tcp::socket::wait_read,
            asio::bind_allocator(detail::op_allocator<void>{}, [self = this->shared_from_this()](
                                                           boost::system::error_code ec) { self->on_readable(ec); }));
        return;
      }
    }
    prepare_read();
    read_in_progress_ = true;
    stream_.async_read_some(
        asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_),
        [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
          self->on_read(ec, n);
        });
  }

  // A partial frame past the allowance holds its declared size of the budget before more
  // of it is read. Fragments already received are counted (force_acquire), not waited
  // for: a fragmented message's total is not known in advance (docs/reliability.md).
  bool budget_allows() {
    auto* b = st_->budget;
    if (!b) return true;
    const std::size_t need = need_ > budget_allowance ? need_ : 0;
    if (need == budget_held_) return true;
    release_budget(budget_held_);
    if (need == 0 || b->try_acquire(need)) {
      budget_held_ = need;
      return true;
    }
    budget_waiting_ = true;
    if (st_->notices)
      st_->notices->report(notice{notice_kind::budget_full, st_->protocol, info().peer_address,
                                  "reading paused: a " + std::to_string(need) + "-byte frame waits for " +
                                      std::to_string(b->used()) + " of " + std::to_string(b->limit()) +
                                      " budget bytes in use",
                                  0});
    auto& loop = static_cast<asio::io_context&>(lowest(stream_).get_executor().context());
    b->wait(loop, [weak = this->weak_from_this()] {
      if (auto self = weak.lock()) {
        self->budget_waiting_ = false;
        self->do_read();
      }
    });
    return false;
  }

  void release_budget(std::size_t& held) {
    if (held && st_->budget) st_->budget->release(std::exchange(held, 0));
  }

  // Counts the fragments held in the budget (called after frag_ changed).
  void count_fragments() {
    if (!st_->budget) return;
    if (frag_.size() > frag_held_) st_->budget->force_acquire(frag_.size() - frag_held_);
    else if (frag_.size() < frag_held_) st_->budget->release(frag_held_ - frag_.size());
    frag_held_ = frag_.size();
  }

  // Makes room for at least need_ bytes from rbeg_ (the frame being assembled).
  void prepare_read() {
    const std::size_t buffered = rend_ - rbeg_;
    std::size_t target = std::max(need_, buffered + 1);
    if (last_read_filled_) target = std::max(target, std::min(rbuf_.size() * 2, max_read_buffer));
    if (rbeg_ > 0 && (rbuf_.size() - rbeg_ < target || rend_ == rbuf_.size())) {
      std::memmove(rbuf_.data(), rbuf_.data() + rbeg_, buffered);
      rbeg_ = 0;
      rend_ = buffered;
    }
    if (rbuf_.size() < target) {
      const std::size_t cap = st_->max_message + ws::max_header_size;
      rbuf_.resize(std::max(target, std::max(initial_read_buffer, std::min(rbuf_.size() * 2, cap))));
    }
  }

  // Plain streams: readable after an idle wait. Reads into the loop's buffer, handles the
  // frames there, and keeps only the unprocessed rest.
  void on_readable(boost::system::error_code ec) {
    if (ec || state_ == state::closed) return on_read(ec, 0);
    auto& lb = t_loop_buffer;
    if (lb.busy) {  // re-entered: read into our own buffer as before
      read_in_progress_ = false;
      last_read_filled_ = true;  // so that do_read takes the buffered path
      do_read();
      return;
    }
    if (lb.buf.size() < loop_read_buffer) lb.buf.resize(loop_read_buffer);
    lb.busy = true;
    rbuf_.swap(lb.buf);  // rbuf_ was empty
    const std::size_t n = lowest(stream_).read_some(asio::buffer(rbuf_.data(), rbuf_.size()), ec);
    if (ec) {
      rbuf_.swap(lb.buf);
      lb.busy = false;
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        read_in_progress_ = false;
        return do_read();
      }
      return on_read(ec, 0);
    }
    read_in_progress_ = false;
    last_read_filled_ = n == rbuf_.size();
    rbeg_ = 0;
    rend_ = n;
    process();
    byte_buffer rest(rbuf_.begin() + static_cast<std::ptrdiff_t>(rbeg_), rbuf_.begin() + static_cast<std::ptrdiff_t>(rend_));
    rbuf_.swap(lb.buf);  // the loop gets its buffer back
    lb.busy = false;
    rbuf_.swap(rest);
    rbeg_ = 0;
    rend_ = rbuf_.size();
    do_read();
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    read_in_progress_ = false;
    if (state_ == state::closed) return;
    if (ec) {
      if (state_ == state::closing) {
        finish();
      } else {
        std::string truncated = truncated_packet();
        final_ = {close_reason::peer_closed, std::error_code(ec),
                  !truncated.empty()       ? truncated
                  : ec == asio::error::eof ? "the peer dropped the connection without a close frame"
                                           : "read failed: " + ec.message(),
                  ws::close_code::abnormal};
        if (!truncated.empty() && st_->notices)
          st_->notices->report(notice{notice_kind::truncated_packet, st_->protocol, info().peer_address, truncated, 0});
        finish();
      }
      return;
    }
    last_read_filled_ = rend_ + n == rbuf_.size();
    rend_ += n;
    process();
    do_read();
  }

  // The input ended: if in the middle of a message (a fragmented one, or a binary frame
  // partly received), "truncated packet: N of M bytes" (M from the packet header once
  // its 16 bytes came); else empty.
  std::string truncated_packet() const {
    std::size_t have = frag_active_ ? frag_.size() : 0;
    std::byte head[header_size];
    std::size_t head_len = std::min(have, header_size);
    if (head_len) std::memcpy(head, frag_.data(), head_len);
    bytes_view avail{rbuf_.data() + rbeg_, rend_ - rbeg_};
    auto r = ws::parse_frame_header(avail, st_->role, st_->max_message);
    const bool data_frame = r.status == ws::parse_result::ok &&
                            (r.header.op == ws::opcode::binary || r.header.op == ws::opcode::continuation);
    if (data_frame) {
      const std::size_t part = std::min<std::size_t>(avail.size() - r.header.header_len, r.header.payload_len);
      for (std::size_t i = 0; head_len < header_size && i < part; ++i)  // unmask what the header needs
        head[head_len++] = avail[r.header.header_len + i] ^
                           std::byte{r.header.masked ? r.header.mask[i % 4] : std::uint8_t{0}};
      have += part;
    }
    if (!frag_active_ && !data_frame) return {};
    if (head_len < header_size)
      return "truncated packet: " + std::to_string(have) + " of at least " + std::to_string(header_size) + " bytes";
    auto h = decode_header({head, header_size}, st_->limits);
    if (!h) return {};  // not a packet anyway: "dropped the connection" says enough
    return "truncated packet: " + std::to_string(have) + " of " + std::to_string(h->total_size()) + " bytes";
  }

  // Handles every complete frame buffered, as long as delivery is allowed.
  void process() {
    if (rx_broken_) {
      rbeg_ = rend_;
      compact_if_idle();
      return;
    }
    processing_ = true;
    bool got_data = false;
    while (state_ != state::closed && may_read()) {
      bytes_view avail{rbuf_.data() + rbeg_, rend_ - rbeg_};
      const std::uint64_t room = frag_active_ ? st_->max_message - frag_.size() : st_->max_message;
      auto r = ws::parse_frame_header(avail, st_->role, room);
      if (r.status == ws::parse_result::need_more) {
        need_ = avail.size() + 1;
        break;
      }
      if (r.status == ws::parse_result::fail) {
        // The byte stream can no longer be cut into frames: say why, then drop the
        // connection once the close frame is out, without waiting for an answer.
        fail(r.close_code, r.reason);
        rx_broken_ = true;
        rbeg_ = rend_;
        break;
      }
      const auto& h = r.header;
      const std::size_t total = h.header_len + static_cast<std::size_t>(h.payload_len);
      if (avail.size() < total) {
        need_ = total;
        break;
      }
      need_ = 0;
      std::byte* payload = rbuf_.data() + rbeg_ + h.header_len;
      const auto len = static_cast<std::size_t>(h.payload_len);
      if (h.masked) ws::apply_mask(payload, len, h.mask);
      rbeg_ += total;
      got_data |= on_frame(h, {payload, len});
    }
    processing_ = false;
    compact_if_idle();
    if (got_data) last_data_ = clock::now();
  }

  // Rewinds an empty buffer, unless a read is filling it (set_reading can resume
  // processing while a read is still pending).
  void compact_if_idle() {
    if (rbeg_ != rend_ || read_in_progress_) return;
    rbeg_ = rend_ = 0;
    // A big message grew the buffer; an idle connection should not keep it.
    if (rbuf_.size() > 64 * 1024 && need_ <= initial_read_buffer && !last_read_filled_) {
      byte_buffer fresh(initial_read_buffer);
      rbuf_.swap(fresh);
    }
  }

  // Returns true when a data message was delivered.
  bool on_frame(const ws::frame_header& h, std::span<std::byte> payload) {
    switch (h.op) {
      case ws::opcode::text:
        fail(ws::close_code::unsupported_data,
             "text messages are not part of the msgtrans protocol: send each packet as one binary message");
        return false;
      case ws::opcode::binary:
        if (frag_active_) {
          fail(ws::close_code::protocol_error, "a new message started before the fragmented one ended");
          return false;
        }
        if (h.fin) return deliver(payload);
        frag_active_ = true;
        frag_.assign(payload.begin(), payload.end());
        count_fragments();
        return false;
      case ws::opcode::continuation:
        if (!frag_active_) {
          fail(ws::close_code::protocol_error, "continuation frame without a message to continue");
          return false;
        }
        frag_.insert(frag_.end(), payload.begin(), payload.end());
        count_fragments();
        if (!h.fin) return false;
        {
          frag_active_ = false;
          byte_buffer msg;
          msg.swap(frag_);
          const bool delivered = deliver(msg);
          count_fragments();  // frag_ is empty again
          return delivered;
        }
      case ws::opcode::ping:
        on_ping(payload);
        return false;
      case ws::opcode::pong:
        awaiting_pong_ = false;
        return false;
      case ws::opcode::close:
        on_close_frame(payload);
        return false;
    }
    return false;
  }

  void on_ping(bytes_view payload) {
    if (state_ != state::open) return;
    const auto now = clock::now();
    if (ping_refill_ == clock::time_point{}) ping_refill_ = now;
    ping_tokens_ = std::min(ping_burst, ping_tokens_ + ping_rate * std::chrono::duration<double>(now - ping_refill_).count());
    ping_refill_ = now;
    if (ping_tokens_ < 1) {
      std::string why = "ping flood: more than " + std::to_string(static_cast<int>(ping_burst)) + " pings at once or " +
                        std::to_string(static_cast<int>(ping_rate)) + " per second";
      if (st_->notices) {
        boost::system::error_code ec;
        auto peer = lowest(stream_).remote_endpoint(ec);
        st_->notices->report(notice{notice_kind::ping_flood, st_->protocol, ec ? "" : to_string(peer), why, 0});
      }
      fail(ws::close_code::policy_violation, why);
      return;
    }
    ping_tokens_ -= 1;
    pong_len_ = payload.size();  // at most 125 (checked by the frame parser)
    std::memcpy(pong_body_.data(), payload.data(), pong_len_);
    pong_pending_ = true;
    flush();
  }

  bool deliver(bytes_view message) {
    if (state_ != state::open) return false;  // closing: data after our close is dropped
    auto v = decode_view(message, st_->limits);
    if (!v) {
      const auto e = v.error();
      std::string why = "the binary message is not one valid msgtrans packet: " + e.message();
      if (e == errc::message_too_large)
        fail(ws::close_code::too_big, why);
      else
        fail(ws::close_code::protocol_error, why);
      return false;
    }
    if (owner_) owner_->on_packet(message);
    return true;
  }

  void on_close_frame(bytes_view payload) {
    auto c = ws::parse_close_payload(payload);
    if (state_ == state::closing) {
      // The answer to our close frame (or a crossing one): the handshake is complete.
      peer_close_seen_ = true;
      if (close_written_) finish();
      return;
    }
    if (c.error) {
      fail(c.error, c.error == ws::close_code::invalid_payload ? "close reason is not valid UTF-8"
                                                               : "invalid close frame (bad code or length)");
      return;
    }
    peer_close_seen_ = true;
    final_ = {close_reason::peer_closed, {}, std::string(c.reason), c.code};
    enter_closing();
    // Echo the code (RFC 6455 5.5.1); a close without a code is answered without one.
    std::byte body[ws::max_control_payload];
    std::size_t n = c.code == ws::close_code::no_status ? 0 : ws::encode_close_payload(body, c.code, {});
    queue_control(ws::opcode::close, {body, n});
    close_queued_ = true;
    flush();
  }

  // --- closing -------------------------------------------------------------------------

  // A protocol violation by the peer: close with `code` and say why.
  void fail(std::uint16_t code, std::string reason) {
    if (state_ != state::open) return;
    close_info info;
    info.reason = code == ws::close_code::too_big ? close_reason::limit_reached : close_reason::protocol_error;
    info.error = make_error_code(code == ws::close_code::too_big ? errc::message_too_large : errc::protocol_error);
    info.detail = reason;
    begin_close(code, reason, std::move(info));
  }

  void begin_close(std::uint16_t code, std::string_view reason, close_info info) {
    final_ = std::move(info);
    final_.transport_code = code;
    enter_closing();
    std::byte body[ws::max_control_payload];
    const std::size_t n = ws::encode_close_payload(body, code, reason);
    queue_control(ws::opcode::close, {body, n});
    close_queued_ = true;
    flush();
    do_read();  // wait for the peer's close frame, even if reading was paused
  }

  void enter_closing() {
    state_ = state::closing;
    data_pending_ = false;
    // The keep-alive deadlines end here; the same timer bounds the close handshake.
    timer().expires_after(st_->close_timeout);
    timer().async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->finish();
    });
  }

  void finish() {
    if (state_ == state::closed) return;
    state_ = state::closed;
    boost::system::error_code ignored;
    lowest(stream_).shutdown(tcp::socket::shutdown_both, ignored);
    lowest(stream_).close(ignored);
    if (timer_) timer_->cancel();
    frag_ = {};
    count_fragments();
    release_budget(budget_held_);
    auto keep_alive = this->shared_from_this();  // the owner may drop its handle in on_closed
    if (auto* o = std::exchange(owner_, nullptr)) o->on_closed(std::move(final_));
  }

  // --- writing -------------------------------------------------------------------------

  void queue_control(ws::opcode op, bytes_view payload) {
    if (close_queued_) return;  // nothing may follow a close frame
    const bool mask = st_->role == ws::role::client;
    std::byte hdr[ws::max_header_size];
    std::array<std::uint8_t, 4> m{};
    if (mask) m = masks().next();
    const std::size_t hl = ws::encode_frame_header(hdr, op, payload.size(), mask ? m.data() : nullptr);
    const std::size_t at = ctl_.size();
    ctl_.insert(ctl_.end(), hdr, hdr + hl);
    ctl_.insert(ctl_.end(), payload.begin(), payload.end());
    if (mask) ws::apply_mask(ctl_.data() + at + hl, payload.size(), m);
  }

  void flush() {
    if (write_in_progress_ || state_ == state::closed) return;
    if (!data_pending_ && ctl_.empty() && !pong_pending_) return;
    build_batch();
    write_in_progress_ = true;
    asio::async_write(stream_, bufs_,
                      [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->on_written(ec);
                      });
  }

  // Frames the control frames queued and every pending packet into one buffer sequence.
  void build_batch() {
    const bool mask = st_->role == ws::role::client;
    const bool gather = std::is_same_v<Stream, plain_stream> && !mask;
    if (std::exchange(pong_pending_, false)) queue_control(ws::opcode::pong, {pong_body_.data(), pong_len_});
    std::size_t need = ctl_.size();
    if (data_pending_)
      for (auto p : pending_) {
        need += ws::frame_header_size(p.size(), mask);
        if (!gather || p.size() <= copy_threshold) need += p.size();
      }
    if (need > wcap_) {
      wcap_ = std::max(need, wcap_ * 2);
      wbuf_.reset(new std::byte[wcap_]);
    }
    std::byte* w = wbuf_.get();
    bufs_.clear();
    std::size_t pos = 0, seg = 0;
    copy_bytes(w, ctl_.data(), ctl_.size());
    pos += ctl_.size();
    ctl_.clear();
    batch_has_close_ = close_queued_;
    batch_has_data_ = data_pending_;
    if (data_pending_) {
      for (auto p : pending_) {
        if (mask) {
          auto m = masks().next();
          pos += ws::encode_frame_header(w + pos, ws::opcode::binary, p.size(), m.data());
          copy_bytes(w + pos, p.data(), p.size());
          ws::apply_mask(w + pos, p.size(), m);
          pos += p.size();
        } else {
          pos += ws::encode_frame_header(w + pos, ws::opcode::binary, p.size(), nullptr);
          if (!gather || p.size() <= copy_threshold) {
            copy_bytes(w + pos, p.data(), p.size());
            pos += p.size();
          } else {
            bufs_.emplace_back(w + seg, pos - seg);
            bufs_.emplace_back(p.data(), p.size());
            seg = pos;
          }
        }
      }
      data_pending_ = false;
    }
    if (pos > seg) bufs_.emplace_back(w + seg, pos - seg);
  }

  void on_written(boost::system::error_code ec) {
    write_in_progress_ = false;
    if (state_ == state::closed) return;
    if (wcap_ > keep_write_buffer) {  // after a big message: do not keep its copy
      wbuf_.reset();
      wcap_ = 0;
    }
    if (ec) {
      if (state_ == state::open)
        final_ = {close_reason::error, std::error_code(ec), "write failed: " + ec.message(),
                  ws::close_code::abnormal};
      finish();
      return;
    }
    if (batch_has_close_) {
      close_written_ = true;
      // The server closes the TCP connection once both close frames have passed; a
      // client whose close is answered does the same rather than wait for the server.
      if (peer_close_seen_ || rx_broken_ || peer_unresponsive_) {
        finish();
        return;
      }
    }
    if (batch_has_data_ && state_ == state::open && owner_) owner_->on_write_done();
    flush();
  }

  // --- ping / pong / idle --------------------------------------------------------------

  void arm_keepalive() {
    if (state_ != state::open) return;
    clock::time_point at = clock::time_point::max();
    if (st_->idle_timeout.count() > 0) at = std::min(at, last_data_ + st_->idle_timeout);
    if (awaiting_pong_) at = std::min(at, pong_deadline_);
    else if (st_->ping_interval.count() > 0) at = std::min(at, next_ping_);
    if (at == clock::time_point::max()) return;
    timer().expires_at(at);
    timer().async_wait(asio::bind_allocator(detail::op_allocator<void>{}, [self = this->shared_from_this()](
                                                                     boost::system::error_code ec) {
      if (!ec) self->on_keepalive();
    }));
  }

  void on_keepalive() {
    if (state_ != state::open) return;
    const auto now = clock::now();
    if (awaiting_pong_ && now >= pong_deadline_) {
      close_info info{close_reason::idle_timeout, make_error_code(errc::timeout),
                      "no pong within " + std::to_string(st_->pong_timeout.count()) + " ms", 0};
      peer_unresponsive_ = true;  // no point waiting for its close frame
      begin_close(ws::close_code::going_away, info.detail, info);
      return;
    }
    if (st_->idle_timeout.count() > 0 && now >= last_data_ + st_->idle_timeout) {
      close_info info{close_reason::idle_timeout, make_error_code(errc::timeout),
                      "no message within " + std::to_string(st_->idle_timeout.count()) + " ms", 0};
      begin_close(ws::close_code::going_away, info.detail, info);
      return;
    }
    if (!awaiting_pong_ && st_->ping_interval.count() > 0 && now >= next_ping_) {
      queue_control(ws::opcode::ping, {});
      flush();
      awaiting_pong_ = true;
      pong_deadline_ = now + st_->pong_timeout;
      next_ping_ = now + st_->ping_interval;
    }
    arm_keepalive();
  }

  Stream stream_;
  std::shared_ptr<const conn_settings> st_;
  std::shared_ptr<ssl::context> tls_;  // outlives the TLS stream
  // Ping, pong and idle deadlines, then the close handshake's; made when first needed.
  // Bound to the loop's own executor type (not any_io_executor): smaller timer, smaller op.
  using loop_timer = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, asio::io_context::executor_type>;
  std::unique_ptr<loop_timer> timer_;
  loop_timer& timer() {
    if (!timer_) {
      auto& loop = asio::query(lowest(stream_).get_executor(), asio::execution::context);
      timer_ = std::make_unique<loop_timer>(static_cast<asio::io_context&>(loop));
    }
    return *timer_;
  }
  connection_owner* owner_ = nullptr;
  state state_ = state::open;
  close_info final_;

  // read side
  byte_buffer rbuf_;
  bool last_read_filled_ = false;  // the last read filled the buffer: grow it
  std::size_t rbeg_ = 0, rend_ = 0, need_ = 0;
  bool read_in_progress_ = false;
  bool processing_ = false;
  bool reading_enabled_ = true;
  bool frag_active_ = false;
  bool rx_broken_ = false;  // a framing error: the rest of the input is discarded
  byte_buffer frag_;
  std::size_t frag_held_ = 0;    // bytes of frag_ counted in the inbound budget
  std::size_t budget_held_ = 0;  // bytes held for the partial frame
  bool budget_waiting_ = false;  // reading paused until the budget gives bytes back

  // write side
  std::vector<bytes_view> pending_;
  bool data_pending_ = false;
  byte_buffer ctl_;  // our ping and close frames (one of each at most)
  std::array<std::byte, ws::max_control_payload> pong_body_{};
  std::size_t pong_len_ = 0;
  bool pong_pending_ = false;  // the answer to the latest ping, not yet written
  double ping_tokens_ = ping_burst;
  clock::time_point ping_refill_{};
  std::unique_ptr<std::byte[]> wbuf_;
  std::size_t wcap_ = 0;
  std::vector<asio::const_buffer> bufs_;
  bool write_in_progress_ = false;
  bool batch_has_data_ = false;
  bool batch_has_close_ = false;
  std::unique_ptr<ws::mask_source> masks_;  // clients only (they mask), made on first use
  ws::mask_source& masks() {
    if (!masks_) masks_ = std::make_unique<ws::mask_source>();
    return *masks_;
  }

  // close handshake
  bool close_queued_ = false;
  bool close_written_ = false;
  bool peer_close_seen_ = false;
  bool peer_unresponsive_ = false;

  // keepalive
  clock::time_point last_data_{};
  clock::time_point next_ping_{};
  clock::time_point pong_deadline_{};
  bool awaiting_pong_ = false;
};

template <class Stream>
class ws_connection final : public connection {
 public:
  explicit ws_connection(std::shared_ptr<ws_conn<Stream>> c) : c_(std::move(c)) {}
  ~ws_connection() override { c_->abandon(); }
  void start(connection_owner& owner) override { c_->start(owner); }
  void write(std::span<const bytes_view> packets) override { c_->write(packets); }
  void set_reading(bool enabled) override { c_->set_reading(enabled); }
  void close(close_info info) override { c_->close(std::move(info)); }
  endpoint_info info() const override { return c_->info(); }

 private:
  std::shared_ptr<ws_conn<Stream>> c_;
};

template <class Stream>
std::unique_ptr<connection> make_connection(Stream stream, std::shared_ptr<const conn_settings> st,
                                            std::shared_ptr<ssl::context> tls, bytes_view leftover) {
  return std::make_unique<ws_connection<Stream>>(
      std::make_shared<ws_conn<Stream>>(std::move(stream), std::move(st), std::move(tls), leftover));
}

bytes_view leftover_of(const boost::beast::flat_buffer& b) {
  auto d = b.data();
  return {static_cast<const std::byte*>(d.data()), d.size()};
}

// ---------------------------------------------------------------------------------------
// Server: handshake and listener
// ---------------------------------------------------------------------------------------

struct listener_shared {
  ws_server_config cfg;
  std::shared_ptr<const conn_settings> settings;
  std::shared_ptr<ssl::context> tls;
  listener::loop_picker pick_loop;
  listener::accept_handler on_accept;
  asio::io_context* accept_loop = nullptr;
  std::atomic<bool> stopped{false};
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::steady_timer> retry_timer;
  transport_context ctx;  // for notices
};

template <class Stream>
class server_handshake : public std::enable_shared_from_this<server_handshake<Stream>> {
 public:
  server_handshake(Stream stream, std::shared_ptr<listener_shared> sh)
      : stream_(std::move(stream)), sh_(std::move(sh)), timer_(lowest(stream_).get_executor()) {}

  void run() {
    timer_.expires_after(sh_->cfg.handshake_timeout);
    timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (ec || self->done_) return;
      self->report(notice_kind::handshake_timeout,
                   "no WebSocket upgrade within " + std::to_string(self->sh_->cfg.handshake_timeout.count()) + " ms");
      self->abort();
    });
    if constexpr (std::is_same_v<Stream, tls_stream>) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](boost::system::error_code ec) {
                                if (ec) return self->abort();
                                self->read_request();
                              });
    } else {
      read_request();
    }
  }

 private:
  void abort() {
    done_ = true;
    boost::system::error_code ignored;
    timer_.cancel();
    lowest(stream_).close(ignored);
  }

  void read_request() {
    parser_.header_limit(static_cast<std::uint32_t>(sh_->cfg.max_handshake_size));
    parser_.body_limit(0);
    http::async_read(stream_, buf_, parser_,
                     [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                       self->on_request(ec);
                     });
  }

  void on_request(boost::system::error_code ec) {
    if (done_) return;
    if (ec == http::error::header_limit) return reject(431, "Request Header Fields Too Large", "", "");
    if (ec == http::error::body_limit) return reject(400, "Bad Request", "", "a WebSocket upgrade has no body\n");
    if (ec) {
      // The peer went away, or sent something that is not HTTP.
      if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset)
        return abort();
      return reject(400, "Bad Request", "", "malformed HTTP request\n");
    }
    const auto& req = parser_.get();
    std::string_view target = req.target();
    target = target.substr(0, target.find('?'));
    if (req.method() != http::verb::get || req.version() < 11)
      return reject(400, "Bad Request", "", "a WebSocket upgrade is an HTTP/1.1 GET\n");
    if (target != sh_->cfg.path) return reject(404, "Not Found", "", "no WebSocket endpoint at this path\n");
    if (!http::token_list{req[http::field::connection]}.exists("upgrade") ||
        !http::token_list{req[http::field::upgrade]}.exists("websocket"))
      return reject(426, "Upgrade Required", "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                    "this endpoint speaks WebSocket only\n");
    if (req[http::field::sec_websocket_version] != "13")
      return reject(426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n", "WebSocket version 13 only\n");
    std::string_view key = req[http::field::sec_websocket_key];
    if (!ws::is_valid_client_key(key)) return reject(400, "Bad Request", "", "bad Sec-WebSocket-Key\n");
    if (!sh_->cfg.allowed_origins.empty()) {
      std::string_view origin = req[http::field::origin];
      bool ok = std::any_of(sh_->cfg.allowed_origins.begin(), sh_->cfg.allowed_origins.end(),
                            [&](const std::string& o) { return iequals(o, origin); });
      if (!ok) return reject(403, "Forbidden", "", "origin not allowed\n");
    }
    response_ = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " + ws::accept_key(key) + "\r\n\r\n";
    asio::async_write(stream_, asio::buffer(response_),
                      [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec || self->done_) return self->abort();
                        self->upgraded();
                      });
  }

  void upgraded() {
    done_ = true;
    timer_.cancel();
    if (sh_->stopped.load()) {
      boost::system::error_code ignored;
      lowest(stream_).close(ignored);
      return;
    }
    sh_->on_accept(make_connection(std::move(stream_), sh_->settings, sh_->tls, leftover_of(buf_)));
  }

  void report(notice_kind kind, std::string detail) {
    boost::system::error_code ec;
    auto peer = lowest(stream_).remote_endpoint(ec);
    sh_->ctx.report(notice{kind, sh_->settings->protocol, ec ? "" : to_string(peer), std::move(detail), 0});
  }

  // An HTTP error response, then close.
  void reject(int status, std::string_view text, std::string_view headers, std::string_view body) {
    std::string why(body.empty() ? text : body);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    report(notice_kind::upgrade_refused, std::to_string(status) + " " + std::string(text) + ": " + why);
    response_ = "HTTP/1.1 " + std::to_string(status) + " " + std::string(text) + "\r\n" + std::string(headers) +
                "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                "\r\nConnection: close\r\n\r\n" + std::string(body);
    asio::async_write(stream_, asio::buffer(response_),
                      [self = this->shared_from_this()](boost::system::error_code, std::size_t) { self->abort(); });
  }

  Stream stream_;
  std::shared_ptr<listener_shared> sh_;
  asio::steady_timer timer_;
  boost::beast::flat_buffer buf_;
  http::request_parser<http::empty_body> parser_;
  std::string response_;
  bool done_ = false;
};

void accept_next(const std::shared_ptr<listener_shared>& sh);

void on_accepted(const std::shared_ptr<listener_shared>& sh, boost::system::error_code ec, tcp::socket s) {
  if (sh->stopped.load() || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors or similar: wait a little rather than spin.
    if (ec == asio::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system)
      sh->ctx.report(notice{notice_kind::fd_exhausted, sh->settings->protocol, "",
                            "accept: " + ec.message() + "; retrying every 50 ms", 0});
    sh->retry_timer->expires_after(milliseconds(50));
    sh->retry_timer->async_wait([sh](boost::system::error_code e) {
      if (!e) accept_next(sh);
    });
    return;
  }
  auto ex = s.get_executor();
  asio::post(ex, [sh, s = std::move(s)]() mutable {
    if (sh->tls)
      std::make_shared<server_handshake<tls_stream>>(tls_stream(std::move(s), *sh->tls), sh)->run();
    else
      std::make_shared<server_handshake<plain_stream>>(std::move(s), sh)->run();
  });
  accept_next(sh);
}

void accept_next(const std::shared_ptr<listener_shared>& sh) {
  if (sh->stopped.load()) return;
  sh->acceptor->async_accept(sh->pick_loop(), [sh](boost::system::error_code ec, tcp::socket s) {
    on_accepted(sh, ec, std::move(s));
  });
}

class ws_listener final : public listener {
 public:
  explicit ws_listener(ws_server_config cfg) : cfg_(std::move(cfg)) {}
  ~ws_listener() override { stop(); }

  error_info start(asio::io_context& accept_loop, loop_picker pick_loop, accept_handler on_accept,
                   const transport_context& ctx) override {
    std::string detail;
    std::error_code ec = start_listening(accept_loop, std::move(pick_loop), std::move(on_accept), ctx, detail);
    return {ec, std::move(detail)};
  }

  std::error_code start_listening(asio::io_context& accept_loop, loop_picker pick_loop, accept_handler on_accept,
                                  const transport_context& ctx, std::string& detail) {
    auto sh = std::make_shared<listener_shared>();
    sh->cfg = cfg_;
    sh->accept_loop = &accept_loop;
    sh->pick_loop = std::move(pick_loop);
    sh->on_accept = std::move(on_accept);
    sh->ctx = ctx;
    if (!cfg_.tls_cert_file.empty()) {
      try {
        auto tls = std::make_shared<ssl::context>(ssl::context::tls_server);
        tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        tls->use_certificate_chain_file(cfg_.tls_cert_file);
        tls->use_private_key_file(cfg_.tls_key_file, ssl::context::pem);
        sh->tls = std::move(tls);
      } catch (const boost::system::system_error& e) {
        detail = "cannot load tls_cert_file " + cfg_.tls_cert_file + " / tls_key_file " + cfg_.tls_key_file +
                 ": " + e.code().message();
        return errc::tls_error;
      }
    }
    auto st = std::make_shared<conn_settings>();
    st->role = ws::role::server;
    st->protocol = protocol();
    st->max_message = std::min(cfg_.max_message_size, ctx.limits.max_message_size);
    st->limits = ctx.limits;
    st->limits.max_message_size = st->max_message;
    st->idle_timeout = cfg_.idle_timeout;
    st->ping_interval = cfg_.ping_interval;
    st->pong_timeout = cfg_.pong_timeout;
    st->close_timeout = cfg_.close_timeout;
    st->notices = ctx.notices;
    st->budget = ctx.budget;
    sh->settings = std::move(st);

    std::string host, port;
    split_host_port(cfg_.bind, host, port);  // checked by make_listener
    boost::system::error_code ec;
    tcp::resolver resolver(accept_loop);
    auto results = resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      detail = "cannot resolve bind address " + cfg_.bind + ": " + ec.message();
      return errc::bind_failed;
    }
    auto ep = results.begin()->endpoint();
    auto acc = std::make_unique<tcp::acceptor>(accept_loop);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && cfg_.reuse_port)
      acc->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    // "HOST:PORT/PATH": "ws://" + this is the URL clients use.
    if (!ec) local_ = to_string(acc->local_endpoint(ec)) + cfg_.path;
    if (ec) {
      detail = "cannot bind ws listener to " + cfg_.bind + ": " + ec.message();
      return errc::bind_failed;
    }
    sh->acceptor = std::move(acc);
    sh->retry_timer = std::make_unique<asio::steady_timer>(accept_loop);
    sh_ = sh;
    // The first accept starts from the accept loop too, so that pick_loop is only ever
    // called there.
    asio::post(accept_loop, [sh] { accept_next(sh); });
    return {};
  }

  void stop() override {
    if (!sh_ || sh_->stopped.exchange(true)) return;
    auto sh = sh_;
    auto close = [sh] {
      boost::system::error_code ignored;
      sh->acceptor->close(ignored);
      sh->retry_timer->cancel();
    };
    if (sh->accept_loop->get_executor().running_in_this_thread() || sh->accept_loop->stopped())
      close();
    else
      asio::post(*sh->accept_loop, close);
  }

  std::string local_address() const override { return local_; }
  std::string protocol() const override { return cfg_.tls_cert_file.empty() ? "ws" : "wss"; }

 private:
  ws_server_config cfg_;
  std::shared_ptr<listener_shared> sh_;
  std::string local_;
};

// ---------------------------------------------------------------------------------------
// Client: handshake and connector
// ---------------------------------------------------------------------------------------

struct parsed_url {
  bool tls = false;
  std::string host;  // without brackets
  std::string port;
  std::string host_header;
  std::string target;
  bool host_is_ip = false;
};

parsed_url parse_url(const std::string& url) {
  parsed_url u;
  std::string_view s = url;
  if (s.substr(0, 5) == "ws://") {
    s.remove_prefix(5);
  } else if (s.substr(0, 6) == "wss://") {
    u.tls = true;
    s.remove_prefix(6);
  } else {
    throw std::invalid_argument("ws_client_config.url: must start with ws:// or wss:// (got \"" + url + "\")");
  }
  auto slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(s.substr(slash));
  if (authority.empty()) throw std::invalid_argument("ws_client_config.url: no host in \"" + url + "\"");
  if (!split_host_port(authority, u.host, u.port)) {
    // No port: the scheme's default.
    std::string_view h = authority;
    if (h.front() == '[') {
      if (h.back() != ']') throw std::invalid_argument("ws_client_config.url: bad IPv6 host in \"" + url + "\"");
      h = h.substr(1, h.size() - 2);
    } else if (h.find(':') != std::string_view::npos) {
      throw std::invalid_argument("ws_client_config.url: bad port in \"" + url + "\"");
    }
    u.host = std::string(h);
    u.port = u.tls ? "443" : "80";
  }
  boost::system::error_code ec;
  asio::ip::make_address(u.host, ec);
  u.host_is_ip = !ec;
  const bool v6 = u.host.find(':') != std::string::npos;
  u.host_header = (v6 ? "[" + u.host + "]" : u.host);
  if (u.port != (u.tls ? "443" : "80")) u.host_header += ":" + u.port;
  return u;
}

template <class Stream>
class client_attempt : public std::enable_shared_from_this<client_attempt<Stream>> {
 public:
  client_attempt(asio::io_context& loop, Stream stream, std::shared_ptr<const parsed_url> url,
                 std::shared_ptr<const conn_settings> st, std::shared_ptr<ssl::context> tls, std::string request,
                 std::string key, connector::connect_handler done)
      : stream_(std::move(stream)),
        resolver_(loop),
        timer_(loop),
        url_(std::move(url)),
        st_(std::move(st)),
        tls_(std::move(tls)),
        request_(std::move(request)),
        expected_accept_(ws::accept_key(key)),
        done_(std::move(done)) {}

  void run(milliseconds total, milliseconds connect_timeout, milliseconds handshake_timeout) {
    deadline_ = clock::now() + total;
    handshake_timeout_ = handshake_timeout;
    arm(connect_timeout);
    resolver_.async_resolve(url_->host, url_->port,
                            [self = this->shared_from_this()](boost::system::error_code ec,
                                                              tcp::resolver::results_type results) {
                              if (self->finished_) return;
                              if (ec) return self->fail(errc::address_error);
                              self->connect(std::move(results));
                            });
  }

 private:
  void arm(milliseconds phase) {
    timer_.expires_at(std::min(deadline_, clock::now() + phase));
    timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->fail(errc::timeout);
    });
  }

  void connect(tcp::resolver::results_type results) {
    asio::async_connect(lowest(stream_), results,
                        [self = this->shared_from_this()](boost::system::error_code ec, const tcp::endpoint&) {
                          if (self->finished_) return;
                          if (ec) return self->fail(std::error_code(ec));
                          self->arm(self->handshake_timeout_);
                          self->tls_handshake();
                        });
  }

  void tls_handshake() {
    if constexpr (std::is_same_v<Stream, tls_stream>) {
      stream_.async_handshake(ssl::stream_base::client,
                              [self = this->shared_from_this()](boost::system::error_code ec) {
                                if (self->finished_) return;
                                // OpenSSL's own error says what failed ("certificate verify failed").
                                if (ec) return self->fail(std::error_code(ec));
                                self->send_request();
                              });
    } else {
      send_request();
    }
  }

  void send_request() {
    asio::async_write(stream_, asio::buffer(request_),
                      [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (self->finished_) return;
                        if (ec) return self->fail(std::error_code(ec));
                        self->read_response();
                      });
  }

  void read_response() {
    parser_.header_limit(16 * 1024);
    parser_.body_limit(64 * 1024);
    http::async_read_header(stream_, buf_, parser_,
                            [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                              if (self->finished_) return;
                              if (ec) return self->fail(std::error_code(ec));
                              self->on_response();
                            });
  }

  void on_response() {
    const auto& res = parser_.get();
    const bool ok = res.result_int() == 101 &&
                    http::token_list{res[http::field::upgrade]}.exists("websocket") &&
                    http::token_list{res[http::field::connection]}.exists("upgrade") &&
                    res[http::field::sec_websocket_accept] == expected_accept_ &&
                    res[http::field::sec_websocket_extensions].empty();
    if (!ok) return fail(errc::protocol_error);
    finished_ = true;
    timer_.cancel();
    auto conn = make_connection(std::move(stream_), st_, tls_, leftover_of(buf_));
    auto done = std::move(done_);
    done({}, std::move(conn));
  }

  void fail(std::error_code ec) {
    if (finished_) return;
    finished_ = true;
    boost::system::error_code ignored;
    timer_.cancel();
    resolver_.cancel();
    lowest(stream_).close(ignored);
    auto done = std::move(done_);
    done(ec, nullptr);
  }

  Stream stream_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  std::shared_ptr<const parsed_url> url_;
  std::shared_ptr<const conn_settings> st_;
  std::shared_ptr<ssl::context> tls_;
  std::string request_;
  std::string expected_accept_;
  connector::connect_handler done_;
  clock::time_point deadline_;
  milliseconds handshake_timeout_{0};
  boost::beast::flat_buffer buf_;
  http::response_parser<http::empty_body> parser_;
  bool finished_ = false;
};

class ws_connector final : public connector {
 public:
  explicit ws_connector(ws_client_config cfg)
      : cfg_(std::move(cfg)), url_(std::make_shared<parsed_url>(parse_url(cfg_.url))) {
    for (const auto& [name, value] : cfg_.headers) {
      static constexpr std::string_view reserved[] = {"host", "upgrade", "connection", "sec-websocket-key",
                                                      "sec-websocket-version", "sec-websocket-extensions",
                                                      "content-length", "transfer-encoding"};
      for (auto r : reserved)
        if (iequals(name, r))
          throw std::invalid_argument("ws_client_config.headers: \"" + name + "\" is set by the transport");
      auto bad = [](const std::string& s, bool is_name) {
        return std::any_of(s.begin(), s.end(), [&](char c) {
          return c == '\r' || c == '\n' || (is_name && (c == ':' || c == ' '));
        });
      };
      if (name.empty() || bad(name, true) || bad(value, false))
        throw std::invalid_argument("ws_client_config.headers: bad header \"" + name + "\"");
    }
    if (url_->tls) {
      tls_ = std::make_shared<ssl::context>(ssl::context::tls_client);
      tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      if (cfg_.insecure_skip_verify) {
        tls_->set_verify_mode(ssl::verify_none);
      } else {
        tls_->set_verify_mode(ssl::verify_peer);
        boost::system::error_code ec;
        tls_->set_default_verify_paths(ec);
        if (!cfg_.ca_file.empty()) {
          tls_->load_verify_file(cfg_.ca_file, ec);
          if (ec)
            throw std::invalid_argument("ws_client_config.ca_file: cannot load \"" + cfg_.ca_file +
                                        "\": " + ec.message());
        }
      }
    }
    auto st = std::make_shared<conn_settings>();
    st->role = ws::role::client;
    st->protocol = url_->tls ? "wss" : "ws";
    st->max_message = cfg_.max_message_size;
    st->close_timeout = cfg_.close_timeout;
    settings_ = st;
  }

  void connect(asio::io_context& loop, milliseconds timeout, const transport_context& ctx,
               connect_handler done) override {
    auto st = std::make_shared<conn_settings>(*settings_);
    st->max_message = std::min(cfg_.max_message_size, ctx.limits.max_message_size);
    st->limits = ctx.limits;
    st->limits.max_message_size = st->max_message;
    std::string key = ws::make_client_key();
    std::string req = "GET " + url_->target + " HTTP/1.1\r\nHost: " + url_->host_header +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                      "\r\nSec-WebSocket-Version: 13\r\n";
    for (const auto& [name, value] : cfg_.headers) req += name + ": " + value + "\r\n";
    req += "\r\n";
    if (url_->tls) {
      tls_stream stream(loop, *tls_);
      const std::string& name = cfg_.server_name.empty() ? url_->host : cfg_.server_name;
      if (!cfg_.insecure_skip_verify) stream.set_verify_callback(ssl::host_name_verification(name));
      if (!cfg_.server_name.empty() || !url_->host_is_ip)
        SSL_set_tlsext_host_name(stream.native_handle(), name.c_str());
      std::make_shared<client_attempt<tls_stream>>(loop, std::move(stream), url_, std::move(st), tls_,
                                                   std::move(req), key, std::move(done))
          ->run(timeout, cfg_.connect_timeout, cfg_.handshake_timeout);
    } else {
      std::make_shared<client_attempt<plain_stream>>(loop, plain_stream(loop), url_, std::move(st), nullptr,
                                                     std::move(req), key, std::move(done))
          ->run(timeout, cfg_.connect_timeout, cfg_.handshake_timeout);
    }
  }

  std::string target() const override { return cfg_.url; }

 private:
  ws_client_config cfg_;
  std::shared_ptr<const parsed_url> url_;
  std::shared_ptr<ssl::context> tls_;
  std::shared_ptr<const conn_settings> settings_;
};

}  // namespace

std::unique_ptr<listener> make_listener(const ws_server_config& config) {
  std::string host, port;
  if (!split_host_port(config.bind, host, port))
    throw std::invalid_argument("ws_server_config.bind: expected \"host:port\" (got \"" + config.bind + "\")");
  if (config.path.empty() || config.path.front() != '/')
    throw std::invalid_argument("ws_server_config.path: must start with '/' (got \"" + config.path + "\")");
  if (config.tls_cert_file.empty() != config.tls_key_file.empty())
    throw std::invalid_argument("ws_server_config.tls_cert_file / tls_key_file: set both for wss, or neither");
  if (config.max_message_size < header_size)
    throw std::invalid_argument("ws_server_config.max_message_size: must be at least 16 (one packet header)");
  if (config.handshake_timeout.count() <= 0)
    throw std::invalid_argument("ws_server_config.handshake_timeout: must be positive");
  if (config.ping_interval.count() > 0 && config.pong_timeout.count() <= 0)
    throw std::invalid_argument("ws_server_config.pong_timeout: must be positive when pings are on");
  if (config.close_timeout.count() <= 0)
    throw std::invalid_argument("ws_server_config.close_timeout: must be positive");
  return std::make_unique<ws_listener>(config);
}

std::unique_ptr<connector> make_connector(const ws_client_config& config) {
  if (config.connect_timeout.count() <= 0 || config.handshake_timeout.count() <= 0)
    throw std::invalid_argument("ws_client_config.connect_timeout / handshake_timeout: must be positive");
  if (config.max_message_size < header_size)
    throw std::invalid_argument("ws_client_config.max_message_size: must be at least 16 (one packet header)");
  return std::make_unique<ws_connector>(config);
}

}  // namespace msgtrans

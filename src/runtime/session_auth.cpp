// The authentication of a server session whose transport did not authenticate it in its
// own handshake (TCP, TLS, QUIC): the first packet must be the authentication request
// (docs/wire-format.md, "Authentication"); reading pauses while the hook decides; the
// answer goes back as a response; an accepted session is then established, a rejected
// one closed. Nothing of it reaches the application before it is accepted.
#include "auth/auth_service.hpp"
#include "runtime/session_core.hpp"

#include <boost/asio/post.hpp>

namespace msgtrans::detail {

namespace asio = boost::asio;

void session_core::on_auth_packet(bytes_view bytes) {
  auto v = decode_view(bytes, opts_.limits());
  if (!v) return protocol_violation(v.error(), "packet rejected: " + v.error().message());
  deadlines_.received(clock::now());
  if (auth_->asked) {
    // Pipelined behind the credentials (a transport may hand over what it read already):
    // held until the verdict, within a bound.
    if (auth_->held.size() >= auth_hold_packets || auth_->held_bytes + bytes.size() > auth_hold_bytes)
      return protocol_violation(errc::protocol_error, "too much sent before authentication completed");
    auth_->held_bytes += bytes.size();
    auth_->held.push_back(to_buffer(bytes));
    return;
  }
  const bool is_auth = v->header.type == packet_type::request && is_auth_ext(v->ext_header) &&
                       v->header.compression == compression::none;
  if (!is_auth) {
    // Answer a request, so that a client without credentials hears why; then close.
    if (v->header.type == packet_type::request)
      (void)enqueue(packet_type::response, v->header.message_id,
                    auth_answer(false, "authentication required"),
                    send_options{0, as_bytes(auth_ext), 0, compression::none}, false);
    close(close_info{close_reason::protocol_error, errc::unauthenticated,
                     "authentication required: the first packet must be the authentication request"});
    return;
  }
  auth_->asked = true;
  auth_->request_id = v->header.message_id;
  update_reading();  // paused until the verdict
  auth_request r;
  r.protocol = endpoint_.protocol;
  r.peer_address = endpoint_.peer_address;
  r.token = std::string(as_string(v->payload));
  if (certificate_) r.certificate = *certificate_;
  host_.authenticate(*this, std::move(r), [w = weak_from_this()](auth_outcome o) {
    auto self = w.lock();
    if (!self) return;
    asio::post(self->loop_, [self, o = std::move(o)]() mutable { self->auth_decided(std::move(o)); });
  });
}

void session_core::auth_decided(auth_outcome o) {
  if (!auth_ || state_.load() != state::open) return;
  const std::uint32_t id = auth_->request_id;
  auto held = std::move(auth_->held);
  auth_.reset();
  const send_options answer{0, as_bytes(auth_ext), 0, compression::none};
  if (!o.accepted) {
    (void)enqueue(packet_type::response, id, auth_answer(false, o.reason), answer, false);
    close(close_info{close_reason::normal, errc::unauthenticated, "authentication rejected: " + o.reason});
    return;
  }
  identity_ = o.who ? std::move(o.who) : std::make_shared<const msgtrans::identity>();
  (void)enqueue(packet_type::response, id, auth_answer(true, identity_->user), answer, false);
  report_established();
  for (auto& p : held)
    if (state_.load() == state::open) on_packet(p);
  update_reading();
}

}  // namespace msgtrans::detail

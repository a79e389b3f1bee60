// msgtrans::responder: answers one inbound request through its session's send path.
#include "runtime/session_core.hpp"

namespace msgtrans {

responder& responder::operator=(responder&& o) noexcept {
  if (this != &o) {
    if (session_ && !done_) session_->inbound_request_done();
    session_ = std::move(o.session_);
    id_ = o.id_;
    biz_type_ = o.biz_type_;
    received_ = o.received_;
    done_ = o.done_;
    o.done_ = true;
  }
  return *this;
}

responder::~responder() {
  if (session_ && !done_) session_->inbound_request_done();
}

std::error_code responder::respond(bytes_view payload, const send_options& opts) {
  if (!session_) return errc::not_a_request;
  if (done_) return errc::already_responded;
  done_ = true;
  session_->inbound_request_done();
  auto ec = session_->send(packet_type::response, id_, payload, opts);
  if (!ec) session_->record_response_time(std::chrono::steady_clock::now() - received_);
  return ec;
}

}  // namespace msgtrans

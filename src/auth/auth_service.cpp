#include "auth/auth_service.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cctype>

namespace msgtrans {

namespace asio = boost::asio;

const std::string* auth_request::header(std::string_view name) const noexcept {
  auto same = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  };
  for (auto& [k, v] : headers)
    if (same(k, name)) return &v;
  return nullptr;
}

auth_responder& auth_responder::operator=(auth_responder&& o) noexcept {
  if (this != &o) {
    if (v_) v_->decide(auth_outcome{false, nullptr, "authentication handler dropped the request", false});
    v_ = std::move(o.v_);
  }
  return *this;
}

auth_responder::~auth_responder() {
  if (v_) v_->decide(auth_outcome{false, nullptr, "authentication handler dropped the request", false});
}

bool auth_responder::accept(identity who) {
  if (!v_) return false;
  auto v = std::move(v_);
  return v->decide(auth_outcome{true, std::make_shared<const identity>(std::move(who)), {}, false});
}

bool auth_responder::reject(std::string reason) {
  if (!v_) return false;
  auto v = std::move(v_);
  return v->decide(auth_outcome{false, nullptr, std::move(reason), false});
}

namespace detail {

byte_buffer auth_answer(bool accepted, std::string_view text) {
  byte_buffer b(1 + text.size());
  b[0] = std::byte{accepted ? std::uint8_t{1} : std::uint8_t{0}};
  std::copy(text.begin(), text.end(), reinterpret_cast<char*>(b.data()) + 1);
  return b;
}

std::optional<std::pair<bool, std::string>> parse_auth_answer(bytes_view payload) {
  if (payload.empty() || static_cast<std::uint8_t>(payload[0]) > 1) return std::nullopt;
  return std::pair{payload[0] == std::byte{1}, std::string(as_string(payload.subspan(1)))};
}

bool auth_verdict::decide(auth_outcome o) {
  if (decided.exchange(true, std::memory_order_acq_rel)) return false;
  auto f = std::move(deliver);
  if (f) f(std::move(o));
  return true;
}

auth_service::auth_service(auth_handler h, std::chrono::milliseconds timeout, std::size_t max_pending)
    : handler_(std::move(h)), timeout_(timeout), max_pending_(max_pending) {}

void auth_service::authenticate(asio::io_context& loop, auth_request r, std::function<void(auth_outcome)> done) {
  auto c = counters_;
  if (c->pending.load() >= max_pending_) {
    c->refused_busy.fetch_add(1);
    c->rejected.fetch_add(1);  // "rejected" counts every refusal (stats.hpp)
    done(auth_outcome{false, nullptr, "server busy: too many connections waiting for authentication", false});
    return;
  }
  c->pending.fetch_add(1);
  const bool missing = r.token.empty() && !r.certificate;
  auto v = std::make_shared<auth_verdict>();
  // The deadline: rejects at auth_timeout; cancelled (on its loop) by an earlier answer.
  auto timer = std::make_shared<asio::steady_timer>(loop, timeout_);
  v->deliver = [c, done = std::move(done), timer, &loop, missing](auth_outcome o) {
    c->pending.fetch_sub(1);
    (o.accepted ? c->accepted : c->rejected).fetch_add(1);
    if (!o.accepted) o.missing_credentials = missing;
    if (!c->alive.load()) return;  // an answer after the server went away: its loops are gone
    asio::post(loop, [timer] { timer->cancel(); });
    done(std::move(o));
  };
  timer->async_wait([w = std::weak_ptr<auth_verdict>(v), c, t = timeout_](boost::system::error_code ec) {
    if (ec) return;
    if (auto v = w.lock())
      if (v->decide(auth_outcome{false, nullptr, "authentication timed out after " + std::to_string(t.count()) + " ms",
                                 false}))
        c->timed_out.fetch_add(1);
  });
  try {
    handler_(r, auth_responder(v));
  } catch (const std::exception& e) {
    v->decide(auth_outcome{false, nullptr, std::string("authentication handler failed: ") + e.what(), false});
  }
}

}  // namespace detail
}  // namespace msgtrans

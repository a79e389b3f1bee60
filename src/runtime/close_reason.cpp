#include <msgtrans/transport.hpp>

namespace msgtrans {

const char* to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::normal: return "normal";
    case close_reason::peer_closed: return "peer_closed";
    case close_reason::idle_timeout: return "idle_timeout";
    case close_reason::handshake_timeout: return "handshake_timeout";
    case close_reason::protocol_error: return "protocol_error";
    case close_reason::limit_reached: return "limit_reached";
    case close_reason::shutdown: return "shutdown";
    case close_reason::error: return "error";
    case close_reason::rate_limited: return "rate_limited";
  }
  return "unknown";
}

}  // namespace msgtrans


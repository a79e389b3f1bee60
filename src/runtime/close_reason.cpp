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
  }
  return "unknown";
}

}  // namespace msgtrans

#include <msgtrans/stats.hpp>

#include <cmath>

namespace msgtrans {

double latency_histogram::upper_bound_us(std::size_t i) noexcept { return std::exp2((static_cast<double>(i) + 1) / 4.0); }

double latency_histogram::quantile_us(double q) const noexcept {
  if (total == 0) return 0;
  const double want = q * static_cast<double>(total);
  double seen = 0;
  for (std::size_t i = 0; i < buckets; ++i) {
    seen += static_cast<double>(counts[i]);
    if (seen >= want) return upper_bound_us(i);
  }
  return upper_bound_us(buckets - 1);
}

}  // namespace msgtrans

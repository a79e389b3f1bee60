// Validation of the QUIC configuration, shared by the listener and the connector.
#include "quic/config.hpp"

#include <stdexcept>

namespace msgtrans::quic_detail {

void validate(const quic_connection_options& o, const std::string& name) {
  auto bad = [&](const char* field, const char* rule) {
    throw std::invalid_argument(name + "." + field + " " + rule);
  };
  if (o.max_idle_timeout.count() < 0) bad("max_idle_timeout", "must not be negative (0 = none)");
  if (o.keep_alive_interval.count() < 0) bad("keep_alive_interval", "must not be negative (0 = off)");
  if (o.connection_window == 0) bad("connection_window", "must be positive");
  if (o.stream_window == 0) bad("stream_window", "must be positive");
  if (o.send_buffer_limit == 0) bad("send_buffer_limit", "must be positive");
  if (o.initial_rtt.count() <= 0) bad("initial_rtt", "must be positive");
  if (o.udp_buffer_size < 0) bad("udp_buffer_size", "must not be negative");
  if (o.max_udp_payload != 0 && (o.max_udp_payload < 1200 || o.max_udp_payload > 65527))
    bad("max_udp_payload", "must be 0 (per path) or 1200..65527");
}

}  // namespace msgtrans::quic_detail

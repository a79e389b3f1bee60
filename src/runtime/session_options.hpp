// The per-session options of a server or client: the named presets, and the one check
// of a session_options value (server_builder::options and client_builder::options).
#pragma once

#include <msgtrans/options.hpp>

#include <stdexcept>
#include <string>

namespace msgtrans::detail {

/// Applies a named preset to per-session options; returns the loop count it suggests
/// (0 = keep).
inline std::size_t apply_preset(preset p, session_options& o) {
  switch (p) {
    case preset::balanced: o = session_options{}; return 0;
    case preset::low_latency:
      o.write_high_water = 256 * 1024;
      o.auto_compress = compression::none;
      return 0;
    case preset::high_throughput:
      o.write_high_water = 64u * 1024 * 1024;
      o.auto_compress = compression::zstd;
      o.auto_compress_min = 64 * 1024;
      return 0;
    case preset::low_memory:
      o.write_high_water = 256 * 1024;
      o.max_message_size = 1024 * 1024;
      return 1;
  }
  return 0;
}

/// Throws std::invalid_argument "session_options.FIELD ..." on a value no session can use.
inline void validate(const session_options& o) {
  auto bad = [](const char* field, const char* rule) {
    throw std::invalid_argument(std::string("session_options.") + field + " " + rule);
  };
  if (o.max_message_size < header_size) bad("max_message_size", "must be at least 16 bytes");
  if (o.write_high_water == 0) bad("write_high_water", "must be positive");
  if (o.first_packet_timeout.count() < 0) bad("first_packet_timeout", "must not be negative (0 = off)");
  if (o.idle_timeout.count() < 0) bad("idle_timeout", "must not be negative (0 = off)");
  if (o.heartbeat_interval.count() < 0) bad("heartbeat_interval", "must not be negative (0 = off)");
  if (o.close_timeout.count() < 0) bad("close_timeout", "must not be negative (0 = unbounded)");
  if (o.request_timeout.count() <= 0) bad("request_timeout", "must be positive");
  if (o.rate_burst.count() <= 0) bad("rate_burst", "must be positive");
  if (o.max_messages_per_second > 1'000'000'000) bad("max_messages_per_second", "must be at most 1e9 (0 = off)");
  if (o.max_bytes_per_second > (std::uint64_t{1} << 40)) bad("max_bytes_per_second", "must be at most 2^40 (0 = off)");
}

}  // namespace msgtrans::detail

// Copies a received message into an owning packet (for the event stream).
#pragma once

#include <msgtrans/packet.hpp>
#include <msgtrans/session.hpp>

namespace msgtrans::detail {

inline packet to_owned(const message& m) { return m.copy(); }

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

}  // namespace msgtrans::detail

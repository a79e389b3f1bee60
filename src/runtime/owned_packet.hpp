// Copies a received message into an owning packet (for the event stream).
#pragma once

#include <msgtrans/packet.hpp>
#include <msgtrans/session.hpp>

namespace msgtrans::detail {

inline packet to_owned(const message& m) { return m.copy(); }

}  // namespace msgtrans::detail

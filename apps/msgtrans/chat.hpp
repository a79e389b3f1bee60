// `msgtrans serve --mode chat` on the library's rooms, and serve's cluster settings.
#pragma once

#include "serve_config.hpp"

#include <msgtrans/msgtrans.hpp>

#include <string>

namespace msgtrans::cli {

/// One chat message: "/join ROOM" moves the sender to ROOM ("joined ROOM" back, or
/// "error: invalid room name: ..." and no move); any other text goes to the sender's
/// room as "[ROOM] session-N: TEXT", to every member on every node and back to the
/// sender; without a room the sender gets "join a room first: /join ROOM".
void chat_message(server& s, const message& m);

/// Adds the NATS cluster of `o` (--nats and the [cluster] keys) to `b`, if `o.nats` is
/// not empty. Returns "" or what is wrong with the settings.
std::string add_cluster(server_builder& b, const serve_options& o);

}  // namespace msgtrans::cli

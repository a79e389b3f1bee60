// `msgtrans serve --workers N`: N worker processes share each listening port through
// SO_REUSEPORT, supervised by this (parent) process.
#pragma once

#include "serve_config.hpp"

#include <functional>

namespace msgtrans::cli {

/// Runs one worker's server with the options given (listeners on concrete ports,
/// `reuse_port` set, `ready_fd` to report on); returns its exit code.
using serve_function = std::function<int(const serve_options&)>;

/// The supervisor. Reserves each TCP and WebSocket listener's port (a port-0 listener gets
/// its real port here, so that every worker binds the same one), forks `o.workers`
/// workers that run `serve_one`, prints each `listening` line once when all of them are
/// up, restarts a worker that dies (after a delay that doubles, up to 5 s, while workers
/// keep dying within 10 s of their start), and on SIGINT / SIGTERM forwards the signal
/// to every worker and waits for them. Returns the exit code of `msgtrans serve`.
int run_workers(const serve_options& o, const serve_function& serve_one);

}  // namespace msgtrans::cli

// Subcommands of the msgtrans tool. Each registers its options and a callback that
// sets the process exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace msgtrans::cli {

/// Exit codes: 0 success, 1 usage or configuration error, 2 could not connect or bind,
/// 3 timed out, 4 the operation failed.
enum exit_code : int { ok = 0, usage = 1, connect_failed = 2, timed_out = 3, failed = 4, unauthenticated = 5 };

void add_serve(CLI::App& app, int& exit_status);
void add_client_commands(CLI::App& app, int& exit_status);
void add_bench(CLI::App& app, int& exit_status);
void add_cert(CLI::App& app, int& exit_status);

}  // namespace msgtrans::cli

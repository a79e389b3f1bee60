// msgtrans: serve, send and request over TCP, WebSocket and QUIC.
#include "commands.hpp"

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"msgtrans: message-oriented networking over TCP, WebSocket and QUIC"};
  app.require_subcommand(1);
  int status = msgtrans::cli::ok;
  msgtrans::cli::add_serve(app, status);
  msgtrans::cli::add_client_commands(app, status);
  msgtrans::cli::add_bench(app, status);
  msgtrans::cli::add_cert(app, status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : msgtrans::cli::usage;
  }
  return status;
}

// Echo over a custom transport (Unix domain sockets), with the ordinary server/client API.
#include "unix_transport.hpp"

#include <msgtrans/msgtrans.hpp>

#include <cstdio>
#include <unistd.h>

int main() {
  const std::string path = "/tmp/msgtrans-example-" + std::to_string(::getpid()) + ".sock";
  auto server = msgtrans::server_builder{}
                    .listen(unix_transport::unix_server_config{path})
                    .on_request([](msgtrans::request& r) { r.respond(r.payload); })
                    .build();
  if (auto ec = server.start()) return std::fprintf(stderr, "start: %s\n", ec.message().c_str()), 1;
  auto client = msgtrans::client_builder{}.connect_to(unix_transport::unix_client_config{path}).build();
  if (auto ec = client.connect()) return std::fprintf(stderr, "connect: %s\n", ec.message().c_str()), 1;
  auto reply = client.call("hello over a unix socket");
  if (!reply) return std::fprintf(stderr, "request: %s\n", reply.error().message().c_str()), 1;
  std::printf("%.*s\n", static_cast<int>(reply->payload.size()), reinterpret_cast<const char*>(reply->payload.data()));
  ::unlink(path.c_str());
  return 0;
}

// Request/response in both directions, in one process: the client asks the server, and
// the server asks the client as soon as it connects.
#include <msgtrans/msgtrans.hpp>

#include <cstdio>
#include <future>

using namespace std::chrono_literals;

int main() {
  std::promise<msgtrans::session_id> connected;
  auto server = msgtrans::server_builder{}
                    .listen(msgtrans::tcp_server_config{"127.0.0.1:0"})
                    .on_connected([&](const msgtrans::connection_info& i) { connected.set_value(i.session); })
                    .on_request([](msgtrans::request& r) {
                      r.respond("server answers: " + std::string(r.text()));
                    })
                    .build();
  if (auto ec = server.start()) return std::fprintf(stderr, "start: %s\n", ec.message().c_str()), 1;
  const auto address = server.local_addresses().at(0).second;

  auto client = msgtrans::client_builder{}
                    .connect_to(msgtrans::tcp_client_config{address})
                    .on_request([](msgtrans::request& r) { r.respond("client answers: " + std::string(r.text())); })
                    .build();
  if (auto ec = client.connect()) return std::fprintf(stderr, "connect: %s\n", ec.message().c_str()), 1;

  // Client -> server.
  auto reply = client.call("what time is it?");
  if (!reply) return std::fprintf(stderr, "client request: %s\n", reply.error().message().c_str()), 1;
  std::printf("%.*s\n", static_cast<int>(reply->payload.size()), reinterpret_cast<const char*>(reply->payload.data()));

  // Server -> client, with a callback.
  std::promise<std::string> answer;
  server.request(connected.get_future().get(), msgtrans::as_bytes("who are you?"), 5s,
                 [&](std::error_code ec, msgtrans::packet p) {
                   answer.set_value(ec ? "error: " + ec.message() : std::string(msgtrans::as_string(p.payload)));
                 });
  std::printf("%s\n", answer.get_future().get().c_str());
  client.disconnect();
  server.stop();
  return 0;
}

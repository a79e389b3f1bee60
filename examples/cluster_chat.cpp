// One node of a chat cluster: rooms shared with every other node on the same NATS.
// Run two (examples/cluster_chat.sh does, with a nats-server), on different ports:
//   cluster_chat nats://127.0.0.1:4222 127.0.0.1:8002/chat 127.0.0.1:8001 node-1
//   cluster_chat nats://127.0.0.1:4222 127.0.0.1:8012/chat 127.0.0.1:8011 node-2
// then open examples/chat.html?ws=ws://127.0.0.1:8002/chat and ...?ws=ws://127.0.0.1:8012/chat:
// both pages "/join lobby" and hear each other. The protocol is `msgtrans serve --mode
// chat`'s: "/join ROOM", then text goes to the room ("[ROOM] session-N: TEXT").
// Usage: cluster_chat NATS_URL WS_ADDRESS/PATH [TCP_ADDRESS [NODE_NAME]]
#include <msgtrans/msgtrans.hpp>

#include <csignal>
#include <cstdio>
#include <stdexcept>

namespace {

// "/join ROOM" moves the sender to ROOM; other text goes to its room on every node.
void on_chat(msgtrans::server& s, const msgtrans::message& m) {
  const std::string text(m.text());
  auto say = [&](const std::string& line) { (void)s.send(m.session, msgtrans::as_bytes(line)); };
  if (text.rfind("/join ", 0) == 0) {
    const std::string room = text.substr(6);
    try {
      (void)s.join(m.session, room);  // throws std::invalid_argument for a bad name
    } catch (const std::invalid_argument& e) {
      return say(std::string("error: ") + e.what());
    }
    for (auto& old : s.rooms_of(m.session))
      if (old != room) (void)s.leave(m.session, old);
    return say("joined " + room);
  }
  const auto rooms = s.rooms_of(m.session);
  if (rooms.empty()) return say("join a room first: /join ROOM");
  const std::string line = "[" + rooms[0] + "] session-" + std::to_string(m.session.value) + ": " + text;
  (void)s.publish(rooms[0], std::string_view(line), {}, m.session);  // the others, on every node
  say(line);                                                        // and the sender
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return std::fprintf(stderr, "usage: cluster_chat NATS_URL WS_ADDRESS/PATH [TCP_ADDRESS [NODE]]\n"), 2;
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  const std::string ws = argv[2];
  msgtrans::ws_server_config wsc;
  wsc.bind_address = ws.substr(0, ws.find('/'));
  wsc.path = ws.find('/') == std::string::npos ? "/" : ws.substr(ws.find('/'));

  msgtrans::server* self = nullptr;
  msgtrans::server_builder b;
  b.listen(wsc).on_message([&](const msgtrans::message& m) { on_chat(*self, m); });
  if (argc > 3) b.listen(msgtrans::tcp_server_config{argv[3]});
  msgtrans::nats_cluster_config nats;  // (designated initializers trip -Wmissing-field-initializers)
  nats.servers = {argv[1]};
  nats.cluster_name = "chat";
  if (argc > 4) nats.node_name = argv[4];
  b.cluster(nats);
  auto server = b.build();
  self = &server;
  if (auto e = server.start()) return std::fprintf(stderr, "%s\n", e.message().c_str()), 1;
  for (auto& [proto, addr] : server.local_addresses()) std::printf("listening %s %s\n", proto.c_str(), addr.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  server.stop();
  return 0;
}

// A chat server with rooms, over any transport: "/join ROOM" joins a room, anything else
// goes to everyone in the sender's room. Usage: chat_server [tcp HOST:PORT]
#include <msgtrans/msgtrans.hpp>

#include <csignal>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>

int main(int argc, char** argv) {
  const std::string tcp = argc > 1 ? argv[1] : "127.0.0.1:9001";
  std::mutex mu;  // handlers run on several loops
  std::map<msgtrans::session_id, std::string> room_of;
  std::map<std::string, std::set<msgtrans::session_id>> members;
  msgtrans::server* self = nullptr;

  auto server =
      msgtrans::server_builder{}
          .listen(msgtrans::tcp_server_config{tcp})
          .on_message([&](const msgtrans::message& m) {
            std::string text(m.text());
            std::vector<msgtrans::session_id> targets;
            std::string line;
            {
              std::lock_guard lock(mu);
              if (text.rfind("/join ", 0) == 0) {
                auto& old = room_of[m.session];
                if (!old.empty()) members[old].erase(m.session);
                old = text.substr(6);
                members[old].insert(m.session);
                line = "joined " + old;
                targets = {m.session};
              } else if (auto it = room_of.find(m.session); it != room_of.end()) {
                line = "[" + it->second + "] session-" + std::to_string(m.session.value) + ": " + text;
                targets.assign(members[it->second].begin(), members[it->second].end());
              } else {
                line = "join a room first: /join ROOM";
                targets = {m.session};
              }
            }
            self->broadcast(targets, msgtrans::as_bytes(line));
          })
          .on_closed([&](msgtrans::session_id s, const msgtrans::close_info&) {
            std::lock_guard lock(mu);
            if (auto it = room_of.find(s); it != room_of.end()) {
              members[it->second].erase(s);
              room_of.erase(it);
            }
          })
          .build();
  self = &server;
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  if (auto e = server.start()) return std::fprintf(stderr, "%s\n", e.message().c_str()), 1;
  for (auto& [proto, addr] : server.local_addresses()) std::printf("listening %s %s\n", proto.c_str(), addr.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  server.stop();
  return 0;
}

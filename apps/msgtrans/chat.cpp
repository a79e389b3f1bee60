// `msgtrans serve --mode chat`: rooms are the library's (server.join / leave / publish),
// so they span every node of a cluster (--nats) and every worker of --workers.
#include "chat.hpp"

#include <stdexcept>

namespace msgtrans::cli {

namespace {

void reply(server& s, session_id to, const std::string& line) { (void)s.send(to, as_bytes(line)); }

// "/join ROOM": joins ROOM first (an invalid name throws and changes nothing), then
// leaves the previous room: a session is in one chat room at a time.
void join_room(server& s, session_id who, const std::string& room) {
  try {
    if (auto e = s.join(who, room)) return;  // the session is gone
  } catch (const std::invalid_argument& e) {
    return reply(s, who, std::string("error: ") + e.what());
  }
  for (auto& old : s.rooms_of(who))
    if (old != room) (void)s.leave(who, old);
  reply(s, who, "joined " + room);
}

}  // namespace

void chat_message(server& s, const message& m) {
  const std::string text(m.text());
  if (text == "/join" || text.rfind("/join ", 0) == 0)
    return join_room(s, m.session, text.size() > 6 ? text.substr(6) : "");
  const auto rooms = s.rooms_of(m.session);
  if (rooms.empty()) return reply(s, m.session, "join a room first: /join ROOM");
  const std::string line = "[" + rooms.front() + "] session-" + std::to_string(m.session.value) + ": " + text;
  // The other members, on every node; the sender gets its line back as before.
  (void)s.publish(rooms.front(), std::string_view(line), {}, m.session);
  reply(s, m.session, line);
}

std::string add_cluster(server_builder& b, const serve_options& o) {
  if (o.nats.empty()) return "";
  nats_cluster_config c;
  c.servers = o.nats;
  c.cluster_name = o.cluster_name;
  c.node_name = o.node_name;
  c.user = o.nats_user;
  c.password = o.nats_password;
  c.token = o.nats_token;
  c.tls = o.nats_tls;
  c.tls_ca_file = o.nats_tls_ca;
  c.tls_cert_file = o.nats_tls_cert;
  c.tls_key_file = o.nats_tls_key;
  try {
    b.cluster(c);
  } catch (const std::invalid_argument& e) {
    return std::string("cluster: ") + e.what();
  }
  return "";
}

}  // namespace msgtrans::cli

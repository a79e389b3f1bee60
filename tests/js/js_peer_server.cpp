// js_peer_server: the real msgtrans runtime as the peer of the @msgtrans/client tests
// (clients/js/test), for what `msgtrans serve` does not do: pushing to a client,
// requesting from it, closing it, and never answering. Requests by biz_type:
//   100  "N": push N one-way messages "push I" (biz_type 100), then respond "pushed N"
//   101  TEXT: request TEXT from the client (5 s), respond "client said: REPLY"
//        (or "error: MESSAGE")
//   102  TEXT: close the session, TEXT as the reason (WebSocket: 1000 TEXT); one-way too
//   103  never answered (for timeouts)
//   104  "N": respond with N zero bytes compressed (zstd if the extension header says
//        "zstd", else zlib), for the client's decompression limit
//   106  KEY: respond with how many one-way messages of biz_type 105 with extension
//        header KEY arrived (105s are counted, not echoed)
//   any other: echoed with its biz_type, extension header, flags and compression
// One-way messages are echoed the same way.
//
//   js_peer_server [--ws HOST:PORT/PATH] [--tcp HOST:PORT] [--max-message-size N]
//
// Prints "listening PROTO ADDRESS" per listener, then serves until SIGINT or SIGTERM.
#include <msgtrans/msgtrans.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <pthread.h>
#include <map>
#include <mutex>
#include <string>

using namespace msgtrans;
using namespace std::chrono_literals;

namespace {

std::mutex g_count_mutex;
std::map<std::string, long> g_counts;  // biz_type 105 arrivals by extension header

send_options same_as(const message& m) {
  return send_options{m.biz_type(), m.ext_header, m.header.flags, m.header.compression};
}

void on_request(server& s, request& r) {
  const std::string text(r.text());
  switch (r.biz_type()) {
    case 100: {
      const int n = std::atoi(text.c_str());
      for (int i = 0; i < n; ++i) {
        send_options o;
        o.biz_type = 100;
        (void)s.send(r.session, "push " + std::to_string(i), o);
      }
      (void)r.respond("pushed " + std::to_string(n));
      return;
    }
    case 101: {
      auto reply = std::make_shared<responder>(r.take_responder());
      s.request(r.session, as_bytes(text), 5s, [reply](std::error_code ec, packet p) {
        const std::string answer = ec ? "error: " + ec.message() : "client said: " + std::string(as_string(p.payload));
        (void)reply->respond(answer);
      });
      return;
    }
    case 102: (void)s.close(r.session, text); return;
    case 103: return;  // the responder goes away unanswered
    case 104: {
      const std::string zeros(static_cast<std::size_t>(std::atol(text.c_str())), '\0');
      send_options o;
      o.biz_type = 104;
      o.compression = as_string(r.ext_header) == "zstd" ? compression::zstd : compression::zlib;
      (void)r.respond(as_bytes(zeros), o);
      return;
    }
    case 106: {
      long n = 0;
      {
        std::lock_guard lock(g_count_mutex);
        n = g_counts[text];
      }
      (void)r.respond(std::to_string(n));
      return;
    }
    default: (void)r.respond(r.payload, same_as(r));
  }
}

}  // namespace

int main(int argc, char** argv) {
  server_builder b;
  session_options so;
  bool any = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::cerr << a << " needs a value\n";
      return 1;
    }
    const std::string v = argv[++i];
    if (a == "--ws") {
      ws_server_config c;
      const auto slash = v.find('/');
      c.bind_address = v.substr(0, slash);
      c.path = slash == std::string::npos ? "/" : v.substr(slash);
      b.listen(c);
      any = true;
    } else if (a == "--tcp") {
      b.listen(tcp_server_config{v});
      any = true;
    } else if (a == "--max-message-size") {
      so.max_message_size = std::stoull(v);
    } else {
      std::cerr << "unknown option " << a << "\n";
      return 1;
    }
  }
  if (!any) {
    std::cerr << "usage: js_peer_server [--ws HOST:PORT/PATH] [--tcp HOST:PORT] [--max-message-size N]\n";
    return 1;
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  server* self = nullptr;
  b.threads(1).options(so);
  b.on_message([&self](const message& m) {
    if (m.biz_type() == 105) {
      std::lock_guard lock(g_count_mutex);
      ++g_counts[std::string(as_string(m.ext_header))];
      return;
    }
    if (m.biz_type() == 102) {
      (void)self->close(m.session, std::string(m.text()));
      return;
    }
    (void)self->send(m.session, m.payload, same_as(m));
  });
  b.on_request([&self](request& r) { on_request(*self, r); });
  server s = b.build();
  self = &s;
  if (auto e = s.start()) {
    std::cerr << "js_peer_server: " << e.message() << "\n";
    return 2;
  }
  for (auto& [proto, addr] : s.local_addresses()) std::printf("listening %s %s\n", proto.c_str(), addr.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  s.stop(2s);
  return 0;
}

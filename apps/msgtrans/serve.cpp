// `msgtrans serve`: runs the echo (or discard) service on any mix of listeners and
// shuts down gracefully on SIGINT / SIGTERM.
#include "commands.hpp"
#include "metrics_http.hpp"

#include <msgtrans/msgtrans.hpp>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <pthread.h>

namespace msgtrans::cli {

namespace {

struct serve_options {
  std::vector<std::string> tcp;
  std::vector<std::string> quic;
  std::vector<std::string> ws;    // HOST:PORT[/PATH]
  std::string tls_cert, tls_key;  // wss and QUIC; QUIC without one: self-signed for localhost
  double ws_ping_interval_s = 30;
  double ws_pong_timeout_s = 10;
  std::vector<std::string> ws_origins;
  std::string mode = "echo";
  std::size_t threads = 0;
  std::size_t max_connections = 10000;
  std::size_t max_message_size = default_max_message_size;
  double idle_timeout_s = 300;
  std::string metrics;  // HOST:PORT of the Prometheus endpoint, empty = off
};

int run_serve(const serve_options& o) {
  // Signals are taken by sigwait below: block them before any loop thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  server_builder b;
  for (auto& a : o.tcp) b.listen(tcp_server_config{a});
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    std::cerr << "serve: --tls-cert and --tls-key go together\n";
    return usage;
  }
  for (auto& a : o.ws) {
    // HOST:PORT/PATH; the path defaults to "/". The port ends at the first '/' after the
    // last ':' of the host part ("[::1]:8002/chat").
    ws_server_config c;
    auto slash = a.find('/', a.rfind(']') == std::string::npos ? 0 : a.rfind(']'));
    c.bind = a.substr(0, slash);
    c.path = slash == std::string::npos ? "/" : a.substr(slash);
    c.max_message_size = o.max_message_size;
    c.idle_timeout = std::chrono::milliseconds(0);  // the runtime's --idle-timeout applies
    c.ping_interval = std::chrono::milliseconds(static_cast<std::int64_t>(o.ws_ping_interval_s * 1000));
    c.pong_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.ws_pong_timeout_s * 1000));
    c.allowed_origins = o.ws_origins;
    c.tls_cert_file = o.tls_cert;
    c.tls_key_file = o.tls_key;
    try {
      b.listen(c);
    } catch (const std::invalid_argument& e) {
      std::cerr << "serve: --ws " << a << ": " << e.what() << "\n";
      return usage;
    }
  }
  for (auto& a : o.quic) {
    quic_server_config q;
    q.bind_address = a;
    q.cert_file = o.tls_cert;
    q.key_file = o.tls_key;
    b.listen(q);
  }
  if (o.tcp.empty() && o.ws.empty() && o.quic.empty()) {
    std::cerr << "serve: no listener; add --tcp HOST:PORT, --ws HOST:PORT/PATH or --quic HOST:PORT\n";
    return usage;
  }
  session_options so;
  so.max_message_size = o.max_message_size;
  so.idle_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.idle_timeout_s * 1000));
  so.first_packet_timeout = std::chrono::milliseconds(0);
  b.threads(o.threads).max_connections(o.max_connections).options(so);

  server* self = nullptr;
  if (o.mode == "echo") {
    // One-way comes back one-way, a request gets its response; biz_type, extension
    // header, flags, payload and compression are kept.
    b.on_message([&self](const message& m) {
      (void)self->send(m.session, m.payload,
                       send_options{m.biz_type(), m.ext_header, m.header.flags, m.header.compression});
    });
    b.on_request([](request& r) {
      (void)r.respond(r.payload, send_options{r.biz_type(), r.ext_header, r.header.flags, r.header.compression});
    });
  } else if (o.mode == "discard") {
    b.on_message([](const message&) {});
    b.on_request([](request& r) { (void)r.respond(bytes_view{}); });
  } else {
    std::cerr << "serve: unknown --mode '" << o.mode << "' (echo or discard)\n";
    return usage;
  }
  server s = b.build();
  self = &s;
  std::string why;
  if (auto ec = s.start(&why)) {
    std::cerr << "serve: " << why << "\n";
    return connect_failed;
  }
  for (auto& [proto, addr] : s.local_addresses()) std::printf("listening %s %s\n", proto.c_str(), addr.c_str());
  std::unique_ptr<metrics_endpoint> metrics;
  if (!o.metrics.empty()) {
    metrics = std::make_unique<metrics_endpoint>(o.metrics, [&s] { return to_prometheus(s.stats()); });
    if (!metrics->error().empty()) {
      std::cerr << "serve: " << metrics->error() << "\n";
      s.stop(std::chrono::seconds(1));
      return connect_failed;
    }
    std::printf("metrics http://%s/metrics\n", metrics->local_address().c_str());
  }
  std::fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  std::cerr << "serve: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping gracefully\n";
  s.stop(std::chrono::seconds(5));
  auto st = s.stats();
  std::cerr << "serve: stopped; " << st.accepted_total << " connections, " << st.packets_in << " packets in, "
            << st.packets_out << " out\n";
  return ok;
}

}  // namespace

void add_serve(CLI::App& app, int& exit_status) {
  auto o = std::make_shared<serve_options>();
  auto* cmd = app.add_subcommand("serve", "Run a server (echo by default) on one or more listeners");
  cmd->add_option("--tcp", o->tcp, "TCP listener HOST:PORT (repeatable; port 0 picks a free port)");
  cmd->add_option("--ws", o->ws,
                  "WebSocket listener HOST:PORT/PATH (repeatable; other paths get HTTP 404; wss with --tls-cert)");
  cmd->add_option("--quic", o->quic, "QUIC listener HOST:PORT (repeatable; UDP)");
  cmd->add_option("--tls-cert", o->tls_cert,
                  "PEM certificate chain: --ws listeners speak wss://, --quic uses it (default: self-signed for localhost)");
  cmd->add_option("--tls-key", o->tls_key, "PEM private key for --tls-cert");
  cmd->add_option("--ws-ping-interval", o->ws_ping_interval_s, "seconds between WebSocket pings (0 = none)")
      ->capture_default_str();
  cmd->add_option("--ws-pong-timeout", o->ws_pong_timeout_s, "seconds a ping may wait for its pong")
      ->capture_default_str();
  cmd->add_option("--ws-origin", o->ws_origins, "accept WebSocket handshakes from this Origin only (repeatable)");
  cmd->add_option("--mode", o->mode, "echo: send everything back; discard: swallow messages, answer requests empty")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "event loops (0 = one per hardware thread)")->capture_default_str();
  cmd->add_option("--max-connections", o->max_connections, "connections open at once")->capture_default_str();
  cmd->add_option("--max-message-size", o->max_message_size, "largest packet in bytes")->capture_default_str();
  cmd->add_option("--idle-timeout", o->idle_timeout_s, "seconds without traffic before a connection is closed")
      ->capture_default_str();
  cmd->add_option("--metrics", o->metrics, "serve Prometheus metrics at http://HOST:PORT/metrics");
  cmd->callback([o, &exit_status] { exit_status = run_serve(*o); });
}

}  // namespace msgtrans::cli

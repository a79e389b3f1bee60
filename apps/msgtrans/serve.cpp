// `msgtrans serve`: runs the echo, discard or chat service on any mix of listeners and
// shuts down gracefully on SIGINT / SIGTERM.
#include "chat.hpp"
#include "commands.hpp"
#include "metrics_http.hpp"
#include "serve_auth.hpp"
#include "serve_config.hpp"
#include "workers.hpp"

#include <msgtrans/msgtrans.hpp>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <pthread.h>
#include <unistd.h>

namespace msgtrans::cli {

namespace {

/// Levelled logging to stderr, one fprintf per line (stdio locks the stream, so lines
/// from several loops never interleave). Per connection at most; never per message.
enum class log_level { error = 0, warn = 1, info = 2, debug = 3 };
log_level g_level = log_level::info;
char g_who[48] = "serve";  // "serve worker 2" in a worker process

template <class... A>
void slog(log_level l, const char* fmt, A... args) {
  if (l > g_level) return;
  static const char* names[] = {"error", "warn", "info", "debug"};
  char line[1024];
  std::snprintf(line, sizeof line, fmt, args...);
  std::fprintf(stderr, "%s: %s: %s\n", g_who, names[static_cast<int>(l)], line);
}
void slog(log_level l, const char* text) { slog(l, "%s", text); }

// The log level and the name in log lines; false (logged) for an unknown level.
bool set_logging(const serve_options& o) {
  if (o.worker_index > 0) std::snprintf(g_who, sizeof g_who, "serve worker %zu", o.worker_index);
  if (o.quiet) {
    g_level = log_level::error;
  } else if (o.log_level == "error") {
    g_level = log_level::error;
  } else if (o.log_level == "warn") {
    g_level = log_level::warn;
  } else if (o.log_level == "info") {
    g_level = log_level::info;
  } else if (o.log_level == "debug") {
    g_level = log_level::debug;
  } else {
    slog(log_level::error, "unknown --log-level '%s' (error, warn, info or debug)", o.log_level.c_str());
    return false;
  }
  return true;
}

// Signals are taken by sigwait in run_serve: block them before any loop thread starts.
// SIGHUP reloads the TLS certificates.
sigset_t block_stop_signals() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  return sigs;
}

// One WebSocket listener, "HOST:PORT/PATH"; false (logged) if its settings are refused.
bool add_ws_listener(server_builder& b, const serve_options& o, const std::string& a) {
  // HOST:PORT/PATH; the path defaults to "/".
  ws_server_config c;
  const auto slash = ws_path_start(a);
  c.bind_address = a.substr(0, slash);
  c.path = slash == std::string::npos ? "/" : a.substr(slash);
  // The message size and idle limits are the session's (--max-message-size, --idle-timeout).
  c.keep_alive_interval = std::chrono::milliseconds(static_cast<std::int64_t>(o.ws_keep_alive_interval_s * 1000));
  c.keep_alive_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.ws_keep_alive_timeout_s * 1000));
  c.allowed_origins = o.ws_origins;
  c.tls_cert_file = o.tls_cert;
  c.tls_key_file = o.tls_key;
  if (!o.tls_cert.empty()) {  // wss: the same mutual TLS settings as --tls
    c.tls_client_ca_file = o.tls_client_ca;
    c.require_client_cert = o.require_client_cert;
  }
  c.reuse_port = o.reuse_port;
  try {
    b.listen(c);
  } catch (const std::invalid_argument& e) {
    slog(log_level::error, "--ws %s: %s", a.c_str(), e.what());
    return false;
  }
  return true;
}

// Every --tcp, --tls, --ws and --quic listener; false (logged) for a usage error.
bool add_listeners(server_builder& b, const serve_options& o) {
  for (auto& a : o.tcp) {
    tcp_server_config c;
    c.bind_address = a;
    c.reuse_port = o.reuse_port;
    b.listen(c);
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    slog(log_level::error, "--tls-cert and --tls-key go together");
    return false;
  }
  if (!o.tls.empty() && o.tls_cert.empty()) {
    slog(log_level::error, "--tls needs --tls-cert and --tls-key");
    return false;
  }
  if (!o.tls_client_ca.empty() && o.tls.empty() && o.quic.empty() && (o.ws.empty() || o.tls_cert.empty())) {
    slog(log_level::error, "--tls-client-ca applies to --tls, --quic and wss listeners (--ws with --tls-cert); there is none");
    return false;
  }
  if (o.require_client_cert && o.tls_client_ca.empty()) {
    slog(log_level::error, "--require-client-cert needs --tls-client-ca (the CAs that vouch for clients)");
    return false;
  }
  for (auto& a : o.tls) {
    tcp_server_config c;
    c.bind_address = a;
    c.tls_cert_file = o.tls_cert;
    c.tls_key_file = o.tls_key;
    c.tls_client_ca_file = o.tls_client_ca;
    c.require_client_cert = o.require_client_cert;
    c.reuse_port = o.reuse_port;
    try {
      b.listen(c);
    } catch (const std::invalid_argument& e) {
      slog(log_level::error, "--tls %s: %s", a.c_str(), e.what());
      return false;
    }
  }
  for (auto& a : o.ws)
    if (!add_ws_listener(b, o, a)) return false;
  for (auto& a : o.quic) {
    quic_server_config q;
    q.bind_address = a;
    q.tls_cert_file = o.tls_cert;
    q.tls_key_file = o.tls_key;
    q.tls_client_ca_file = o.tls_client_ca;
    q.require_client_cert = o.require_client_cert;
    try {
      b.listen(q);
    } catch (const std::invalid_argument& e) {
      slog(log_level::error, "--quic %s: %s", a.c_str(), e.what());
      return false;
    }
  }
  if (o.tcp.empty() && o.tls.empty() && o.ws.empty() && o.quic.empty()) {
    slog(log_level::error, "no listener; add --tcp HOST:PORT, --tls HOST:PORT, --ws HOST:PORT/PATH or --quic HOST:PORT");
    return false;
  }
  return true;
}

void set_limits(server_builder& b, const serve_options& o) {
  session_options so;
  so.max_message_size = o.max_message_size;
  so.idle_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.idle_timeout_s * 1000));
  so.first_packet_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.first_packet_timeout_s * 1000));
  so.max_messages_per_second = o.max_messages_per_second;
  so.max_bytes_per_second = o.max_bytes_per_second;
  so.rate_burst = std::max(std::chrono::milliseconds(1),
                           std::chrono::milliseconds(static_cast<std::int64_t>(o.rate_burst_s * 1000)));
  so.rate_limit = o.rate_limit_action == "pause" ? rate_limit_action::pause : rate_limit_action::close;
  b.threads(o.threads).max_connections(o.max_connections).options(so).inbound_memory_limit(o.inbound_memory_limit);
  b.max_connections_per_ip(o.max_connections_per_ip).max_handshakes_per_second_per_ip(o.max_handshakes_per_second_per_ip);
}

// Notices, opens and closes go to the log (a closed session leaves its rooms by itself).
void add_event_log(server_builder& b) {
  // Refusals and limits with no session to log them against; the server lets at most
  // one per kind through every 10 s and counts the rest.
  b.on_notice([](const notice& n) {
    char more[64] = "";
    if (n.suppressed > 0)
      std::snprintf(more, sizeof more, " (%llu more since the last)", static_cast<unsigned long long>(n.suppressed));
    slog(log_level::warn, "%s: %s%s%s%s%s", to_string(n.kind), n.protocol.c_str(), n.protocol.empty() ? "" : " ",
         n.peer.empty() ? "" : "from ", n.peer.empty() ? "" : (n.peer + ": ").c_str(), (n.detail + more).c_str());
  });
  b.on_connected([](const connection_info& c) {
    slog(log_level::info, "open session-%llu %s from %s", static_cast<unsigned long long>(c.session.value),
        c.endpoint.protocol.c_str(), c.endpoint.peer_address.c_str());
  });
  auto log_closed = [](session_id s, const close_info& c) {
    // Limits and protocol errors are worth a warning; ordinary closes are info.
    bool bad = c.reason == close_reason::protocol_error || c.reason == close_reason::limit_reached ||
               c.reason == close_reason::error || c.reason == close_reason::handshake_timeout ||
               c.reason == close_reason::rate_limited;
    slog(bad ? log_level::warn : log_level::info, "close session-%llu: %s%s%s%s",
        static_cast<unsigned long long>(s.value), to_string(c.reason), c.detail.empty() ? "" : " (",
        c.detail.c_str(), c.detail.empty() ? "" : ")");
  };
  b.on_closed(log_closed);
}

// --mode interop: a one-way with biz_type 0xF0 and payload P gets a one-way 0xF1
// "push:P", then a request 0xF2 "ask:P"; its answer A comes back as a one-way 0xF3
// "answered:A" (or "failed:REASON"). interop/README.md is the contract.
constexpr std::uint8_t interop_trigger = 0xF0;
void interop_push_and_ask(server& s, session_id to, std::string_view arg) {
  (void)s.send(to, "push:" + std::string(arg), send_options{0xF1});
  std::string ask = "ask:" + std::string(arg);
  s.request(to, as_bytes(ask), std::chrono::seconds(10), [&s, to](std::error_code ec, packet reply) {
    std::string report = ec ? "failed:" + ec.message() : "answered:" + std::string(as_string(reply.payload));
    (void)s.send(to, report, send_options{0xF3});
  }, send_options{0xF2});
}

// The --mode handlers. `*self` is the server once it is built (before any message).
// False (logged) for an unknown mode.
bool add_service(server_builder& b, const std::string& mode, server* const* self) {
  if (mode == "echo") {
    // One-way comes back one-way, a request gets its response; biz_type, extension
    // header, flags, payload and compression are kept.
    b.on_message([self](const message& m) {
      (void)(*self)->send(m.session, m.payload,
                          send_options{m.biz_type(), m.ext_header, m.header.flags, m.header.compression});
    });
    b.on_request([](request& r) {
      (void)r.respond(r.payload, send_options{r.biz_type(), r.ext_header, r.header.flags, r.header.compression});
    });
  } else if (mode == "interop") {
    // echo, and the trigger of interop/README.md (what the Rust seed_server does too).
    b.on_message([self](const message& m) {
      if (m.biz_type() == interop_trigger) return interop_push_and_ask(**self, m.session, m.text());
      (void)(*self)->send(m.session, m.payload,
                          send_options{m.biz_type(), m.ext_header, m.header.flags, m.header.compression});
    });
    b.on_request([](request& r) {
      (void)r.respond(r.payload, send_options{r.biz_type(), r.ext_header, r.header.flags, r.header.compression});
    });
  } else if (mode == "discard") {
    b.on_message([](const message&) {});
    b.on_request([](request& r) { (void)r.respond(bytes_view{}); });
  } else if (mode == "chat") {
    b.on_message([self](const message& m) { chat_message(**self, m); });
    b.on_request([](request& r) { (void)r.respond(std::string_view("chat: send one-way messages")); });
  } else {
    slog(log_level::error, "unknown --mode '%s' (echo, discard, chat or interop)", mode.c_str());
    return false;
  }
  return true;
}

// The "listening PROTO ADDRESS" lines: on stdout, or to the supervisor from a worker.
void report_listening(server& s, const serve_options& o) {
  std::string listening;
  for (auto& [proto, addr] : s.local_addresses()) listening += "listening " + proto + " " + addr + "\n";
  if (o.ready_fd >= 0) {
    // A worker: the supervisor prints the lines once for all workers.
    for (std::size_t off = 0; off < listening.size();) {
      auto n = ::write(o.ready_fd, listening.data() + off, listening.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(o.ready_fd);
  } else {
    std::fputs(listening.c_str(), stdout);
  }
}

// The --metrics endpoint, if asked for; false (logged, server stopped) if it cannot bind.
bool start_metrics(server& s, const serve_options& o, std::unique_ptr<metrics_endpoint>& metrics) {
  if (o.metrics.empty()) return true;
  metrics = std::make_unique<metrics_endpoint>(o.metrics, [&s] { return serve_metrics_text(s.stats()); },
                                               [](const std::string& w) { slog(log_level::warn, "%s", w.c_str()); });
  if (!metrics->error().empty()) {
    slog(log_level::error, "%s", metrics->error().c_str());
    s.stop(std::chrono::seconds(1));
    return false;
  }
  std::printf("metrics http://%s/metrics\n", metrics->local_address().c_str());
  return true;
}

// Waits for SIGINT / SIGTERM, then stops the server gracefully; on SIGHUP reloads the
// certificates of the TLS listeners (tls://, wss://) and waits on.
void serve_until_signal(server& s, const sigset_t& sigs) {
  int sig = 0;
  while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
    if (auto e = s.reload_tls()) slog(log_level::warn, "SIGHUP: certificate reload: %s", e.message().c_str());
    else slog(log_level::info, "SIGHUP: certificates reloaded");
  }
  slog(log_level::info, "%s, stopping gracefully", sig == SIGINT ? "SIGINT" : "SIGTERM");
  s.stop(std::chrono::seconds(5));
  auto st = s.stats();
  slog(log_level::info, "stopped; %llu connections, %llu packets in, %llu out",
      static_cast<unsigned long long>(st.accepted_total), static_cast<unsigned long long>(st.packets_in),
      static_cast<unsigned long long>(st.packets_out));
}

int run_serve(const serve_options& o) {
  if (!set_logging(o)) return usage;
  const sigset_t sigs = block_stop_signals();
  server_builder b;
  if (!add_listeners(b, o)) return usage;
  try {
    set_limits(b, o);
  } catch (const std::invalid_argument& e) {  // a value no session can use, naming the field
    slog(log_level::error, "%s", e.what());
    return usage;
  }
  add_event_log(b);
  server* self = nullptr;
  if (!add_service(b, o.mode, &self)) return usage;
  if (auto e = add_cluster(b, o); !e.empty()) {
    slog(log_level::error, "%s", e.c_str());
    return usage;
  }
  if (auto e = add_auth(b, o); !e.empty()) {
    slog(log_level::error, "%s", e.c_str());
    return usage;
  }
  std::optional<server> built;
  try {
    built.emplace(b.build());
  } catch (const std::invalid_argument& e) {
    slog(log_level::error, "%s", e.what());
    return usage;
  }
  server& s = *built;
  self = &s;
  if (auto e = s.start()) {  // a cluster that does not answer fails here, naming the URL
    slog(log_level::error, "%s", e.message().c_str());
    return connect_failed;
  }
  report_listening(s, o);
  slog(log_level::debug, "mode %s, %zu threads, max %zu connections, max message %zu bytes, idle timeout %gs",
       o.mode.c_str(), o.threads, o.max_connections, o.max_message_size, o.idle_timeout_s);
  std::unique_ptr<metrics_endpoint> metrics;
  if (!start_metrics(s, o, metrics)) return connect_failed;
  std::fflush(stdout);
  serve_until_signal(s, sigs);
  return ok;
}

}  // namespace

// A duration flag in seconds: finite, 0..1e9 (as in the config file), so converting it
// to milliseconds is defined.
const CLI::Validator seconds_flag(
    [](std::string& text) -> std::string {
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0' || !std::isfinite(v) || v < 0 || v > 1e9)
        return "expected seconds from 0 to 1e9, got " + text;
      return "";
    },
    "SECONDS");

namespace {

// --nats and the other [cluster] settings.
void add_cluster_flags(CLI::App* cmd, serve_options& o) {
  cmd->add_option("--nats", o.nats,
                  "join a cluster over NATS: nats://HOST:PORT servers (comma-separated or repeated); rooms span "
                  "every node of the cluster")
      ->delimiter(',');
  cmd->add_option("--cluster-name", o.cluster_name, "nodes with the same cluster name share rooms")
      ->capture_default_str();
  cmd->add_option("--node-name", o.node_name, "this node's name, unique in the cluster (default: host, pid, random)");
  cmd->add_option("--nats-user", o.nats_user, "NATS user (with --nats-password)");
  cmd->add_option("--nats-password", o.nats_password, "NATS password (visible in ps: prefer [cluster] in --config)");
  cmd->add_option("--nats-token", o.nats_token, "NATS token authentication");
  cmd->add_flag("--nats-tls", o.nats_tls, "require TLS to the NATS servers");
  cmd->add_option("--nats-tls-ca", o.nats_tls_ca, "PEM CAs to trust for NATS (default: the system's)");
  cmd->add_option("--nats-tls-cert", o.nats_tls_cert, "PEM client certificate for NATS (with --nats-tls-key)");
  cmd->add_option("--nats-tls-key", o.nats_tls_key, "PEM private key of --nats-tls-cert");
}

}  // namespace

void add_serve(CLI::App& app, int& exit_status) {
  auto o = std::make_shared<serve_options>();
  auto* cmd = app.add_subcommand("serve", "Run a server (echo by default) on one or more listeners");
  cmd->add_option("--config", o->config,
                  "TOML file with the same settings (keys: README, Command line); flags given here override it")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tcp", o->tcp, "TCP listener HOST:PORT (repeatable; port 0 picks a free port)");
  cmd->add_option("--tls", o->tls,
                  "TLS-over-TCP listener HOST:PORT for tls:// clients (repeatable; needs --tls-cert and --tls-key)");
  cmd->add_option("--ws", o->ws,
                  "WebSocket listener HOST:PORT/PATH (repeatable; other paths get HTTP 404; wss with --tls-cert)");
  cmd->add_option("--quic", o->quic, "QUIC listener HOST:PORT (repeatable; UDP)");
  cmd->add_option("--tls-cert", o->tls_cert,
                  "PEM certificate chain: for --tls, --ws listeners speak wss://, --quic uses it (QUIC default: self-signed for localhost)");
  cmd->add_option("--tls-key", o->tls_key, "PEM private key for --tls-cert");
  cmd->add_option("--tls-client-ca", o->tls_client_ca,
                  "mutual TLS on --tls, wss and --quic listeners: ask clients for a certificate and verify it against these CAs (PEM)");
  cmd->add_flag("--require-client-cert", o->require_client_cert,
                "--tls, wss and --quic listeners: refuse a client without a certificate (needs --tls-client-ca)");
  cmd->add_option("--ws-keep-alive-interval,--ws-ping-interval", o->ws_keep_alive_interval_s,
                  "seconds between WebSocket pings (0 = none); --ws-ping-interval is its old name")
      ->check(seconds_flag)
      ->capture_default_str();
  cmd->add_option("--ws-keep-alive-timeout,--ws-pong-timeout", o->ws_keep_alive_timeout_s,
                  "seconds a ping may wait for its pong; --ws-pong-timeout is its old name")
      ->check(seconds_flag)
      ->capture_default_str();
  cmd->add_option("--ws-origin", o->ws_origins, "accept WebSocket handshakes from this Origin only (repeatable)");
  cmd->add_option("--mode", o->mode, "echo: send everything back; discard: swallow messages, answer requests empty; chat: rooms (\"/join ROOM\", then text goes to the room); interop: echo, and a one-way with biz_type 0xF0 makes the server push and ask (interop/README.md)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "event loops (0 = one per hardware thread); per worker with --workers")
      ->capture_default_str();
  cmd->add_option("--workers", o->workers,
                  "N worker processes sharing each TCP/WebSocket port (SO_REUSEPORT), restarted if they die; "
                  "0 = serve in this process")
      ->capture_default_str();
  cmd->add_option("--max-connections", o->max_connections, "connections open at once")->capture_default_str();
  cmd->add_option("--max-message-size", o->max_message_size, "largest packet in bytes")->capture_default_str();
  cmd->add_option("--idle-timeout", o->idle_timeout_s, "seconds without traffic before a connection is closed")
      ->check(seconds_flag)
      ->capture_default_str();
  cmd->add_option("--first-packet-timeout", o->first_packet_timeout_s,
                  "seconds a new connection may wait before its first packet (0 = off)")
      ->check(seconds_flag)
      ->capture_default_str();
  cmd->add_option("--inbound-memory-limit", o->inbound_memory_limit,
                  "bytes partly received messages and decompression may hold over all connections (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--max-connections-per-ip", o->max_connections_per_ip,
                  "connections open at once from one address, IPv6 per /64 (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--max-handshakes-per-second-per-ip", o->max_handshakes_per_second_per_ip,
                  "new connections per second from one address, N at once (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--max-messages-per-second", o->max_messages_per_second,
                  "packets per second one connection may send, token bucket (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--max-bytes-per-second", o->max_bytes_per_second,
                  "bytes per second one connection may send, token bucket (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--rate-burst", o->rate_burst_s, "seconds' worth of the two rates a connection may send at once")
      ->check(seconds_flag)
      ->capture_default_str();
  cmd->add_option("--rate-limit-action", o->rate_limit_action,
                  "a connection over its rate: close (close reason rate_limited) or pause (stop reading until it refills)")
      ->check(CLI::IsMember({"close", "pause"}))
      ->capture_default_str();
  add_cluster_flags(cmd, *o);
  cmd->add_option("--jwt-secret-file", o->jwt_secret_file,
                  "authenticate every connection: a JWT signed HS256 with the secret in this file");
  cmd->add_option("--jwt-public-key", o->jwt_public_key,
                  "authenticate every connection: a JWT signed RS256/ES256, checked with this PEM public key");
  cmd->add_option("--jwt-audience", o->jwt_audience, "required JWT aud");
  cmd->add_option("--jwt-issuer", o->jwt_issuer, "required JWT iss");
  cmd->add_option("--metrics", o->metrics, "serve Prometheus metrics at http://HOST:PORT/metrics");
  cmd->add_option("--log-level", o->log_level, "stderr log level: error, warn, info (connection open/close) or debug")
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", o->quiet, "log errors only (same as --log-level error)");
  cmd->callback([o, cmd, &exit_status] {
    if (!o->config.empty()) {
      auto e = load_serve_config(o->config, *o, [cmd](const std::string& f) { return cmd->count(f) > 0; });
      if (!e.empty()) {
        std::fprintf(stderr, "serve: error: %s\n", e.c_str());
        exit_status = usage;
        return;
      }
    }
    exit_status = o->workers > 0 ? run_workers(*o, run_serve) : run_serve(*o);
  });
}

}  // namespace msgtrans::cli

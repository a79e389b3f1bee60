// `msgtrans serve --config FILE`: the TOML form of serve's flags.
//
//   mode = "echo"                 # echo, discard or chat
//   threads = 0
//   workers = 0                   # N: N worker processes sharing the ports
//   max_connections = 10000
//   max_message_size = 16777216
//   idle_timeout = 300            # seconds
//   first_packet_timeout = 10     # seconds; 0 = off
//   inbound_memory_limit = 268435456  # bytes for partial messages + decompression; 0 = none
//   max_connections_per_ip = 0    # connections open at once per address (IPv6: per /64); 0 = off
//   max_handshakes_per_second_per_ip = 0  # new connections per second per address; 0 = off
//   max_messages_per_second = 0   # per connection, token bucket; 0 = off
//   max_bytes_per_second = 0      # per connection, token bucket; 0 = off
//   rate_burst = 1                # seconds' worth of the rates a bucket holds
//   rate_limit_action = "close"   # over a rate: "close" (rate_limited) or "pause" reading
//   metrics = "127.0.0.1:9100"
//   log_level = "info"            # or quiet = true
//   [listeners]
//   tcp = ["127.0.0.1:8001"]
//   tls = ["127.0.0.1:8443"]      # TLS over TCP; needs [tls] cert and key
//   ws = ["127.0.0.1:8002/ws"]
//   quic = ["127.0.0.1:8003"]
//   [tls]                         # for listeners.tls, wss (ws with a cert) and quic
//   cert = "cert.pem"
//   key = "key.pem"
//   client_ca = "clients-ca.pem"  # tls, wss and quic: ask clients for certificates from these CAs
//   require_client_cert = false   # listeners.tls: refuse clients without one (needs client_ca)
//   [ws]
//   keep_alive_interval = 30      # seconds between pings; 0 = none
//   keep_alive_timeout = 10       # seconds a ping may wait for its pong
//   origins = ["https://example.com"]
//   [cluster]                     # rooms shared with other nodes over NATS (docs/scaling.md)
//   nats = ["nats://10.0.0.5:4222", "nats://10.0.0.6:4222"]  # or "nats://a:4222,nats://b:4222"
//   cluster_name = "msgtrans"     # nodes with the same name share rooms
//   node_name = "web-1"           # unique per node; default: host, pid and a random part
//   user = "chat"                 # NATS user/password (both or neither), or token
//   password = "secret"
//   token = ""
//   tls = false                   # require TLS to NATS
//   tls_ca = "ca.pem"             # trust these CAs (default: the system's)
//   tls_cert = "client.pem"       # client certificate and its key (both or neither)
//   tls_key = "client.key"
//   [auth]                        # every connection presents a JWT (docs/security.md)
//   jwt_secret_file = "hs256.key" # HS256 shared secret, or:
//   jwt_public_key = "pub.pem"    # RS256 / ES256 public key (its type picks the algorithm)
//   jwt_audience = "chat"         # required aud (optional)
//   jwt_issuer = "https://id.example"  # required iss (optional)
#include "serve_config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

namespace msgtrans::cli {

namespace {

constexpr double max_seconds = 1e9;  // about 31 years

// Each setter returns "" or what is wrong with the value.
using setter = std::function<std::string(const toml::node&, serve_options&)>;

setter text(std::string serve_options::*field) {
  return [field](const toml::node& n, serve_options& o) -> std::string {
    auto v = n.value<std::string>();
    if (!v) return "expected a string";
    o.*field = *v;
    return "";
  };
}
setter texts(std::vector<std::string> serve_options::*field) {
  return [field](const toml::node& n, serve_options& o) -> std::string {
    const auto* a = n.as_array();
    if (!a) return "expected an array of strings";
    std::vector<std::string> out;
    for (auto& e : *a) {
      auto v = e.value<std::string>();
      if (!v) return "expected an array of strings";
      out.push_back(*v);
    }
    o.*field = std::move(out);
    return "";
  };
}
// An array of strings, or one string; either way, each string may list several
// values separated by commas ("nats://a:4222,nats://b:4222").
setter comma_list(std::vector<std::string> serve_options::*field) {
  return [field](const toml::node& n, serve_options& o) -> std::string {
    std::vector<std::string> parts;
    if (auto v = n.value<std::string>()) {
      parts.push_back(*v);
    } else if (const auto* a = n.as_array()) {
      for (auto& e : *a) {
        auto s = e.value<std::string>();
        if (!s) return "expected a string or an array of strings";
        parts.push_back(*s);
      }
    } else {
      return "expected a string or an array of strings";
    }
    std::vector<std::string> out;
    for (auto& p : parts)
      for (std::size_t at = 0; at <= p.size();) {
        const auto comma = std::min(p.find(',', at), p.size());
        if (comma > at) out.push_back(p.substr(at, comma - at));
        at = comma + 1;
      }
    o.*field = std::move(out);
    return "";
  };
}
setter count(std::size_t serve_options::*field) {
  return [field](const toml::node& n, serve_options& o) -> std::string {
    // toml++ 3.3.0 converts a float to an integer before it checks the range (undefined
    // behaviour for 1e300, found by fuzz_serve_config): only floats that fit go to it.
    if (auto* f = n.as_floating_point(); f && !(std::fabs(f->get()) < 0x1p62)) return "expected a non-negative integer";
    auto v = n.value<std::int64_t>();
    if (!v || *v < 0) return "expected a non-negative integer";
    o.*field = static_cast<std::size_t>(*v);
    return "";
  };
}
setter one_of(std::string serve_options::*field, std::vector<std::string> allowed) {
  return [field, allowed](const toml::node& n, serve_options& o) -> std::string {
    auto v = n.value<std::string>();
    if (!v || std::find(allowed.begin(), allowed.end(), *v) == allowed.end()) {
      std::string list;
      for (auto& a : allowed) list += (list.empty() ? "\"" : ", \"") + a + "\"";
      return "expected one of " + list;
    }
    o.*field = *v;
    return "";
  };
}
setter seconds(double serve_options::*field) {
  return [field](const toml::node& n, serve_options& o) -> std::string {
    auto v = n.value<double>();  // integers convert
    if (!v || !(*v >= 0)) return "expected a non-negative number of seconds";  // NaN too
    // Infinity and huge values would overflow the milliseconds and timers they become.
    if (*v > max_seconds) return "expected at most " + std::to_string(static_cast<long long>(max_seconds)) + " seconds";
    o.*field = *v;
    return "";
  };
}
setter flag(bool serve_options::*field) {
  return [field](const toml::node& n, serve_options& o) -> std::string {
    auto v = n.value<bool>();
    if (!v) return "expected true or false";
    o.*field = *v;
    return "";
  };
}

struct key_spec {
  const char* flag;  // the command-line flag that overrides it
  setter set;
};

const std::map<std::string, key_spec>& keys() {
  static const std::map<std::string, key_spec> k = {
      {"mode", {"--mode", text(&serve_options::mode)}},
      {"threads", {"--threads", count(&serve_options::threads)}},
      {"workers", {"--workers", count(&serve_options::workers)}},
      {"max_connections", {"--max-connections", count(&serve_options::max_connections)}},
      {"max_message_size", {"--max-message-size", count(&serve_options::max_message_size)}},
      {"idle_timeout", {"--idle-timeout", seconds(&serve_options::idle_timeout_s)}},
      {"first_packet_timeout", {"--first-packet-timeout", seconds(&serve_options::first_packet_timeout_s)}},
      {"inbound_memory_limit", {"--inbound-memory-limit", count(&serve_options::inbound_memory_limit)}},
      {"max_connections_per_ip", {"--max-connections-per-ip", count(&serve_options::max_connections_per_ip)}},
      {"max_handshakes_per_second_per_ip",
       {"--max-handshakes-per-second-per-ip", count(&serve_options::max_handshakes_per_second_per_ip)}},
      {"max_messages_per_second", {"--max-messages-per-second", count(&serve_options::max_messages_per_second)}},
      {"max_bytes_per_second", {"--max-bytes-per-second", count(&serve_options::max_bytes_per_second)}},
      {"rate_burst", {"--rate-burst", seconds(&serve_options::rate_burst_s)}},
      {"rate_limit_action", {"--rate-limit-action", one_of(&serve_options::rate_limit_action, {"close", "pause"})}},
      {"metrics", {"--metrics", text(&serve_options::metrics)}},
      {"log_level", {"--log-level", text(&serve_options::log_level)}},
      {"quiet", {"--quiet", flag(&serve_options::quiet)}},
      {"listeners.tcp", {"--tcp", texts(&serve_options::tcp)}},
      {"listeners.tls", {"--tls", texts(&serve_options::tls)}},
      {"listeners.ws", {"--ws", texts(&serve_options::ws)}},
      {"listeners.quic", {"--quic", texts(&serve_options::quic)}},
      {"tls.cert", {"--tls-cert", text(&serve_options::tls_cert)}},
      {"tls.key", {"--tls-key", text(&serve_options::tls_key)}},
      {"tls.client_ca", {"--tls-client-ca", text(&serve_options::tls_client_ca)}},
      {"tls.require_client_cert", {"--require-client-cert", flag(&serve_options::require_client_cert)}},
      {"ws.keep_alive_interval", {"--ws-keep-alive-interval", seconds(&serve_options::ws_keep_alive_interval_s)}},
      {"ws.keep_alive_timeout", {"--ws-keep-alive-timeout", seconds(&serve_options::ws_keep_alive_timeout_s)}},
      {"ws.origins", {"--ws-origin", texts(&serve_options::ws_origins)}},
      {"cluster.nats", {"--nats", comma_list(&serve_options::nats)}},
      {"cluster.cluster_name", {"--cluster-name", text(&serve_options::cluster_name)}},
      {"cluster.node_name", {"--node-name", text(&serve_options::node_name)}},
      {"cluster.user", {"--nats-user", text(&serve_options::nats_user)}},
      {"cluster.password", {"--nats-password", text(&serve_options::nats_password)}},
      {"cluster.token", {"--nats-token", text(&serve_options::nats_token)}},
      {"cluster.tls", {"--nats-tls", flag(&serve_options::nats_tls)}},
      {"cluster.tls_ca", {"--nats-tls-ca", text(&serve_options::nats_tls_ca)}},
      {"cluster.tls_cert", {"--nats-tls-cert", text(&serve_options::nats_tls_cert)}},
      {"cluster.tls_key", {"--nats-tls-key", text(&serve_options::nats_tls_key)}},
      {"auth.jwt_secret_file", {"--jwt-secret-file", text(&serve_options::jwt_secret_file)}},
      {"auth.jwt_public_key", {"--jwt-public-key", text(&serve_options::jwt_public_key)}},
      {"auth.jwt_audience", {"--jwt-audience", text(&serve_options::jwt_audience)}},
      {"auth.jwt_issuer", {"--jwt-issuer", text(&serve_options::jwt_issuer)}},
  };
  return k;
}

std::string apply(const toml::table& t, const std::string& prefix, serve_options& o,
                  const std::function<bool(const std::string&)>& given, const std::string& path) {
  for (auto&& [k, v] : t) {
    std::string name = prefix + std::string(k.str());
    auto where = path + ":" + std::to_string(v.source().begin.line) + ": ";
    if (prefix.empty() && v.is_table() && (name == "listeners" || name == "tls" || name == "ws" || name == "cluster" ||
                                              name == "auth")) {
      if (auto e = apply(*v.as_table(), name + ".", o, given, path); !e.empty()) return e;
      continue;
    }
    auto it = keys().find(name);
    if (it == keys().end()) {
      std::string known;
      for (auto& [n, _] : keys()) known += (known.empty() ? "" : ", ") + n;
      return where + "unknown key '" + name + "' (known: " + known + ")";
    }
    if (given(it->second.flag)) continue;  // the flag wins
    if (auto e = it->second.set(v, o); !e.empty()) return where + "'" + name + "': " + e;
  }
  return "";
}

std::string parse_error_text(const std::string& name, const toml::parse_error& e) {
  auto& b = e.source().begin;
  return name + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " + std::string(e.description());
}

}  // namespace

std::string load_serve_config(const std::string& path, serve_options& o,
                              const std::function<bool(const std::string& flag)>& given) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return parse_error_text(path, e);
  }
  return apply(t, "", o, given, path);
}

std::string parse_serve_config(std::string_view text, const std::string& name, serve_options& o,
                               const std::function<bool(const std::string& flag)>& given) {
  toml::table t;
  try {
    t = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    return parse_error_text(name, e);
  }
  return apply(t, "", o, given, name);
}

}  // namespace msgtrans::cli

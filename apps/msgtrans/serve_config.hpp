// Settings of `msgtrans serve`, from flags and from a TOML file (serve --config).
#pragma once

#include <msgtrans/msgtrans.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace msgtrans::cli {

struct serve_options {
  std::string config;  // TOML file, read before the flags (flags win)
  std::vector<std::string> tcp;
  std::vector<std::string> tls;   // TLS over TCP (tls://), HOST:PORT; needs tls_cert/tls_key
  std::vector<std::string> quic;
  std::vector<std::string> ws;    // HOST:PORT[/PATH]
  std::string tls_cert, tls_key;  // --tls, wss and QUIC; QUIC without one: self-signed for localhost
  std::string tls_client_ca;      // --tls: mutual TLS, the CAs that vouch for clients
  bool require_client_cert = false;  // --tls: refuse clients without a certificate
  double ws_keep_alive_interval_s = 30;
  double ws_keep_alive_timeout_s = 10;
  std::vector<std::string> ws_origins;
  std::string mode = "echo";
  std::size_t threads = 0;
  std::size_t max_connections = 10000;
  std::size_t max_message_size = default_max_message_size;
  double idle_timeout_s = 300;
  double first_packet_timeout_s = 10;  // a connection that sends no packet in time is closed (0 = off)
  std::size_t inbound_memory_limit = 256u * 1024 * 1024;  // server-wide, bytes (0 = none)
  // Limits against floods (docs/security.md); 0 = off.
  std::size_t max_connections_per_ip = 0;
  std::size_t max_handshakes_per_second_per_ip = 0;
  std::size_t max_messages_per_second = 0;  // per connection
  std::size_t max_bytes_per_second = 0;     // per connection
  double rate_burst_s = 1;                  // seconds' worth of the rates a bucket holds
  std::string rate_limit_action = "close";  // or "pause"
  std::string metrics;  // HOST:PORT of the Prometheus endpoint, empty = off
  std::string log_level = "info";
  bool quiet = false;
  std::size_t workers = 0;  // 0: serve in this process; N: N supervised worker processes
  // The cluster ([cluster] in the file): rooms shared with other nodes over NATS.
  std::vector<std::string> nats;  // nats://HOST:PORT servers; empty = no cluster
  std::string cluster_name = "msgtrans";
  std::string node_name;           // empty: the library picks host, pid and a random part
  std::string nats_user, nats_password, nats_token;
  bool nats_tls = false;
  std::string nats_tls_ca, nats_tls_cert, nats_tls_key;

  // Authentication ([auth] in the file): every connection presents a JWT.
  std::string jwt_secret_file;  // HS256: the shared secret
  std::string jwt_public_key;   // RS256 / ES256: a PEM public key (its type picks the algorithm)
  std::string jwt_audience, jwt_issuer;  // required aud / iss when set

  // Set by the supervisor for a worker, not by flags.
  bool reuse_port = false;        // listeners share their port (SO_REUSEPORT)
  int ready_fd = -1;              // write the "listening" lines here, then close it
  std::size_t worker_index = 0;   // 1..N in log lines
};

/// Where the path of a --ws listener "HOST:PORT/PATH" starts, or npos: the first '/'
/// after the host part ("[::1]:8002/chat").
inline std::size_t ws_path_start(const std::string& listener) {
  const auto bracket = listener.rfind(']');
  return listener.find('/', bracket == std::string::npos ? 0 : bracket);
}

/// Reads the TOML file `path` into `o`. A key whose flag `given(flag)` reports as set on
/// the command line is left alone: flags override the file. Returns an error text naming
/// the file, the key and what is wrong (unknown keys included), or "" on success.
std::string load_serve_config(const std::string& path, serve_options& o,
                              const std::function<bool(const std::string& flag)>& given);

/// The same for TOML `text` that did not come from a file; `name` stands for the file
/// name in error texts.
std::string parse_serve_config(std::string_view text, const std::string& name, serve_options& o,
                               const std::function<bool(const std::string& flag)>& given);

}  // namespace msgtrans::cli

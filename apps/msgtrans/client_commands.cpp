// `msgtrans send` and `msgtrans request`: one-shot clients for any URL.
#include "commands.hpp"

#include <msgtrans/msgtrans.hpp>

#include <cstdio>
#include <iostream>

namespace msgtrans::cli {

namespace {

struct client_options {
  std::string url;
  std::string text;
  int biz_type = 0;
  std::string ext_header;
  std::string compress = "none";
  double timeout_s = 10;
  bool json = false;
  url_options tls;
  std::string token;
};

std::string json_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  return out;
}

int run(const client_options& o, bool is_request) {
  std::string error;
  auto target = connector_for_url(o.url, o.tls, error);
  if (!target) {
    std::cerr << "msgtrans: " << error << "\n";
    return usage;
  }
  send_options so;
  if (o.biz_type < 0 || o.biz_type > 255) {
    std::cerr << "msgtrans: --biz-type must be 0..255\n";
    return usage;
  }
  so.biz_type = static_cast<std::uint8_t>(o.biz_type);
  so.ext_header = as_bytes(o.ext_header);
  if (o.compress == "zstd") so.compression = compression::zstd;
  else if (o.compress == "zlib") so.compression = compression::zlib;
  else if (o.compress != "none") {
    std::cerr << "msgtrans: --compress must be none, zstd or zlib\n";
    return usage;
  }
  const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.timeout_s * 1000));
  client_builder b;
  b.connect_to(std::move(target)).connect_timeout(timeout);
  if (!o.token.empty()) b.credentials(o.token);
  client c = b.build();
  if (auto ec = c.connect()) {
    std::cerr << "msgtrans: cannot connect to " << o.url << ": " << ec.message() << "\n";
    return ec == errc::timeout ? timed_out : ec == errc::unauthenticated ? unauthenticated : connect_failed;
  }
  if (!is_request) {
    if (auto ec = c.send(as_bytes(o.text), so)) {
      std::cerr << "msgtrans: send failed: " << ec.message() << "\n";
      return failed;
    }
    c.disconnect();  // graceful: flushes the message first
    if (o.json) std::printf("{\"sent\":true,\"bytes\":%zu}\n", o.text.size());
    return ok;
  }
  auto r = c.call(as_bytes(o.text), timeout, so);
  c.disconnect();
  if (!r) {
    std::cerr << "msgtrans: request failed: " << r.error().message() << "\n";
    return r.error() == errc::timeout ? timed_out : r.error() == errc::unauthenticated ? unauthenticated : failed;
  }
  if (o.json) {
    std::printf("{\"message_id\":%u,\"biz_type\":%u,\"flags\":%u,\"compression\":%u,\"ext_header\":\"%s\",\"payload\":\"%s\"}\n",
                r->message_id, r->biz_type, r->flags, static_cast<unsigned>(r->compression),
                json_escape(as_string(r->ext_header)).c_str(), json_escape(as_string(r->payload)).c_str());
  } else {
    std::fwrite(r->payload.data(), 1, r->payload.size(), stdout);
    std::printf("\n");
  }
  return ok;
}

void add_common(CLI::App* cmd, client_options& o) {
  cmd->add_option("url", o.url, "tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH, wss://..., quic://HOST:PORT")->required();
  cmd->add_option("text", o.text, "payload")->required();
  cmd->add_option("--biz-type", o.biz_type, "biz_type byte (0..255)")->capture_default_str();
  cmd->add_option("--ext", o.ext_header, "extension header (text)");
  cmd->add_option("--compress", o.compress, "payload compression: none, zstd or zlib")->capture_default_str();
  cmd->add_option("--timeout", o.timeout_s, "seconds for connect and for the response")->capture_default_str();
  cmd->add_flag("--json", o.json, "print the result as JSON");
  cmd->add_option("--ca", o.tls.tls_ca_file, "trust this CA file (tls, wss, quic)");
  cmd->add_option("--server-name", o.tls.tls_server_name, "TLS server name, if not the URL's host");
  cmd->add_flag("--insecure", o.tls.tls_insecure_skip_verify, "skip certificate verification (development only)");
  cmd->add_flag("--no-alpn", o.tls.quic_no_alpn, "quic: offer no ALPN (needed by the Rust original's server, docs/interop.md)");
  cmd->add_option("--client-cert", o.tls.tls_cert_file, "mutual TLS (tls://, wss://, quic://): PEM client certificate chain");
  cmd->add_option("--client-key", o.tls.tls_key_file, "mutual TLS: PEM private key of --client-cert");
  cmd->add_option("--token", o.token, "credentials for a server that authenticates (a JWT, say)");
}

}  // namespace

void add_client_commands(CLI::App& app, int& exit_status) {
  auto req = std::make_shared<client_options>();
  auto* r = app.add_subcommand("request", "Send a request and print the response");
  add_common(r, *req);
  r->callback([req, &exit_status] { exit_status = run(*req, true); });

  auto snd = std::make_shared<client_options>();
  auto* s = app.add_subcommand("send", "Send a one-way message");
  add_common(s, *snd);
  s->callback([snd, &exit_status] { exit_status = run(*snd, false); });
}

}  // namespace msgtrans::cli

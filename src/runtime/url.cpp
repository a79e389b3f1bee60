// The URL scheme table: one line per transport.
#include <msgtrans/quic.hpp>
#include <msgtrans/tcp.hpp>
#include <msgtrans/url.hpp>
#include <msgtrans/ws.hpp>

#include <functional>
#include <stdexcept>
#include <utility>

namespace msgtrans {

namespace {

using factory = std::function<std::unique_ptr<connector>(std::string_view rest, const url_options&, std::string&)>;

// make_connector validates and throws; a URL's mistakes are reported through `error`.
template <class Config>
std::unique_ptr<connector> made(const Config& c, std::string& error) {
  try {
    return make_connector(c);
  } catch (const std::invalid_argument& e) {
    error = e.what();
    return nullptr;
  }
}

std::unique_ptr<connector> tcp_from_url(std::string_view rest, const url_options& o, std::string& error) {
  if (rest.empty() || rest.find('/') != std::string_view::npos) {
    error = "tcp URL must be tcp://host:port";
    return nullptr;
  }
  if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
    error = "a client certificate (tls_cert_file / tls_key_file) needs tls://, not tcp://";
    return nullptr;
  }
  if (o.quic_no_alpn) {
    error = "quic_no_alpn (--no-alpn) is for quic:// only, not tcp://";
    return nullptr;
  }
  tcp_client_config c;
  c.address = std::string(rest);
  return made(c, error);
}

// tls://host:port: TCP's framing inside TLS; the TLS settings come from url_options.
std::unique_ptr<connector> tls_from_url(std::string_view rest, const url_options& o, std::string& error) {
  if (rest.empty() || rest.find('/') != std::string_view::npos) {
    error = "tls URL must be tls://host:port";
    return nullptr;
  }
  if (o.quic_no_alpn) {
    error = "quic_no_alpn (--no-alpn) is for quic:// only, not tls://";
    return nullptr;
  }
  tcp_client_config c;
  c.address = std::string(rest);
  c.tls = true;
  c.tls_ca_file = o.tls_ca_file;
  c.tls_server_name = o.tls_server_name;
  c.tls_insecure_skip_verify = o.tls_insecure_skip_verify;
  c.tls_cert_file = o.tls_cert_file;
  c.tls_key_file = o.tls_key_file;
  return made(c, error);
}

std::unique_ptr<connector> quic_from_url(std::string_view rest, const url_options& o, std::string& error) {
  if (rest.empty() || rest.find('/') != std::string_view::npos) {
    error = "quic URL must be quic://host:port";
    return nullptr;
  }
  quic_client_config c;
  c.address = std::string(rest);
  c.tls_ca_file = o.tls_ca_file;
  c.tls_server_name = o.tls_server_name;
  c.tls_insecure_skip_verify = o.tls_insecure_skip_verify;
  c.tls_cert_file = o.tls_cert_file;
  c.tls_key_file = o.tls_key_file;
  if (o.quic_no_alpn) c.alpn.clear();
  return made(c, error);
}

// ws://host[:port][/path] and wss://...; the TLS settings come from url_options.
factory ws_from_url(std::string scheme) {
  return [scheme](std::string_view rest, const url_options& o, std::string& error) -> std::unique_ptr<connector> {
    if (o.quic_no_alpn) {
      error = "quic_no_alpn (--no-alpn) is for quic:// only, not " + scheme + "://";
      return nullptr;
    }
    ws_client_config c;
    c.url = scheme + "://" + std::string(rest);
    c.tls_ca_file = o.tls_ca_file;
    c.tls_server_name = o.tls_server_name;
    c.tls_insecure_skip_verify = o.tls_insecure_skip_verify;
    c.tls_cert_file = o.tls_cert_file;
    c.tls_key_file = o.tls_key_file;
    return made(c, error);
  };
}

const std::vector<std::pair<std::string, factory>>& schemes() {
  static const std::vector<std::pair<std::string, factory>> table = {
      {"tcp", tcp_from_url},
      {"tls", tls_from_url},
      {"quic", quic_from_url},
      {"ws", ws_from_url("ws")},
      {"wss", ws_from_url("wss")},
  };
  return table;
}

}  // namespace

std::unique_ptr<connector> connector_for_url(std::string_view url, const url_options& o, std::string& error) {
  auto sep = url.find("://");
  if (sep == std::string_view::npos) {
    error = "'" + std::string(url) + "' is not a URL (expected scheme://host:port, e.g. tcp://127.0.0.1:8001)";
    return nullptr;
  }
  auto scheme = url.substr(0, sep);
  for (auto& [name, make] : schemes())
    if (name == scheme) return make(url.substr(sep + 3), o, error);
  error = "unknown scheme '" + std::string(scheme) + "' (known:";
  for (auto& s : url_schemes()) error += " " + s;
  error += ")";
  return nullptr;
}

std::vector<std::string> url_schemes() {
  std::vector<std::string> v;
  for (auto& [name, f] : schemes()) v.push_back(name);
  return v;
}

}  // namespace msgtrans

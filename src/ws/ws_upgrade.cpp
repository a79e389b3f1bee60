// The HTTP upgrade as pure functions. See ws_upgrade.hpp.
#include "ws/ws_upgrade.hpp"

#include "net/address.hpp"
#include "ws/ws_frame.hpp"

#include <algorithm>
#include <stdexcept>

namespace msgtrans::ws {

namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool has_token(std::string_view list, std::string_view token) noexcept {
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool origin_allowed(const http_request& req, const upgrade_rules& rules) {
  if (rules.allowed_origins.empty()) return true;
  const std::string_view origin = header_value(req.fields, "origin");
  return std::any_of(rules.allowed_origins.begin(), rules.allowed_origins.end(),
                     [&](const std::string& o) { return iequals(o, origin); });
}

std::invalid_argument url_error(const std::string& what, const std::string& url) {
  return std::invalid_argument("ws_client_config.url: " + what + " \"" + url + "\"");
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view header_value(const header_fields& fields, std::string_view name) noexcept {
  for (const auto& [n, v] : fields)
    if (iequals(n, name)) return v;
  return {};
}

bool header_has_token(const header_fields& fields, std::string_view name, std::string_view token) noexcept {
  for (const auto& [n, v] : fields)
    if (iequals(n, name) && has_token(v, token)) return true;
  return false;
}

// ---- server -----------------------------------------------------------------------------

upgrade_answer refuse(int status, std::string_view reason, std::string_view extra_headers, std::string_view body) {
  upgrade_answer a;
  a.status = status;
  std::string why(body.empty() ? reason : body);
  while (!why.empty() && why.back() == '\n') why.pop_back();
  a.refusal = std::to_string(status) + " " + std::string(reason) + ": " + why;
  a.response = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n" +
               std::string(extra_headers) + "Content-Type: text/plain\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + std::string(body);
  return a;
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) noexcept {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

namespace {
int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
// application/x-www-form-urlencoded value: %XX and '+' for a space.
std::string percent_decode(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '+') out += ' ';
    else if (v[i] == '%' && i + 2 < v.size() && hex_digit(v[i + 1]) >= 0 &&
             hex_digit(v[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(v[i + 1]) * 16 + hex_digit(v[i + 2]));
      i += 2;
    } else out += v[i];
  }
  return out;
}
}  // namespace

std::string credentials_of(const http_request& req) {
  const std::string_view auth = header_value(req.fields, "Authorization");
  if (auth.size() > 7 && iequals(auth.substr(0, 7), "Bearer ")) {
    auto t = auth.substr(7);
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    if (!t.empty()) return std::string(t);
  }
  auto query = split_target(req.target).second;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    if (pair.size() > 6 && pair.substr(0, 6) == "token=") return percent_decode(pair.substr(6));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

upgrade_answer refuse_auth(bool missing_credentials, std::string_view reason) {
  std::string body(reason);
  body += '\n';
  if (missing_credentials) return refuse(401, "Unauthorized", "WWW-Authenticate: Bearer\r\n", body);
  return refuse(403, "Forbidden", "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n", body);
}

upgrade_answer refuse_header_too_large() { return refuse(431, "Request Header Fields Too Large", "", ""); }
upgrade_answer refuse_body() { return refuse(400, "Bad Request", "", "a WebSocket upgrade has no body\n"); }
upgrade_answer refuse_malformed() { return refuse(400, "Bad Request", "", "malformed HTTP request\n"); }

upgrade_answer answer_upgrade(const http_request& req, const upgrade_rules& rules) {
  std::string_view target = req.target.substr(0, req.target.find('?'));
  if (req.method != "GET" || req.version < 11)
    return refuse(400, "Bad Request", "", "a WebSocket upgrade is an HTTP/1.1 GET\n");
  if (target != rules.path) return refuse(404, "Not Found", "", "no WebSocket endpoint at this path\n");
  if (!header_has_token(req.fields, "connection", "upgrade") || !header_has_token(req.fields, "upgrade", "websocket"))
    return refuse(426, "Upgrade Required", "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                  "this endpoint speaks WebSocket only\n");
  if (header_value(req.fields, "sec-websocket-version") != "13")
    return refuse(426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n", "WebSocket version 13 only\n");
  const std::string_view key = header_value(req.fields, "sec-websocket-key");
  if (!is_valid_client_key(key)) return refuse(400, "Bad Request", "", "bad Sec-WebSocket-Key\n");
  if (!origin_allowed(req, rules)) return refuse(403, "Forbidden", "", "origin not allowed\n");
  upgrade_answer a;
  a.response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: " + accept_key(key) + "\r\n\r\n";
  return a;
}

// ---- addresses and URLs -------------------------------------------------------------------

client_target parse_url(const std::string& url) {
  client_target u;
  std::string_view s = url;
  if (s.substr(0, 5) == "ws://") {
    s.remove_prefix(5);
  } else if (s.substr(0, 6) == "wss://") {
    u.tls = true;
    s.remove_prefix(6);
  } else {
    throw std::invalid_argument("ws_client_config.url: must start with ws:// or wss:// (got \"" + url + "\")");
  }
  auto slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(s.substr(slash));
  if (authority.empty()) throw url_error("no host in", url);
  const std::string default_port = u.tls ? "443" : "80";
  std::string why;
  net::address a;
  if (auto parsed = net::address::parse(authority, why)) {
    a = std::move(*parsed);
  } else {
    // No port: the scheme's default.
    std::string_view h = authority;
    if (h.front() == '[') {
      if (h.back() != ']') throw url_error("bad IPv6 host in", url);
      h = h.substr(1, h.size() - 2);
    } else if (h.find(':') != std::string_view::npos) {
      throw url_error("bad port in", url);
    }
    a.host = std::string(h);
    a.port = u.tls ? 443 : 80;
  }
  if (a.host.empty()) throw url_error("no host in", url);
  u.host = a.host;
  u.port = std::to_string(a.port);
  u.host_is_ip = a.is_ip_literal();
  const bool v6 = u.host.find(':') != std::string::npos;
  u.host_header = v6 ? "[" + u.host + "]" : u.host;
  if (u.port != default_port) u.host_header += ":" + u.port;
  return u;
}

// ---- client -----------------------------------------------------------------------------

void check_extra_headers(std::span<const std::pair<std::string, std::string>> headers) {
  static constexpr std::string_view reserved[] = {"host", "upgrade", "connection", "sec-websocket-key",
                                                  "sec-websocket-version", "sec-websocket-extensions",
                                                  "content-length", "transfer-encoding"};
  auto bad = [](const std::string& s, bool is_name) {
    return std::any_of(s.begin(), s.end(),
                       [&](char c) { return c == '\r' || c == '\n' || (is_name && (c == ':' || c == ' ')); });
  };
  for (const auto& [name, value] : headers) {
    for (auto r : reserved)
      if (iequals(name, r))
        throw std::invalid_argument("ws_client_config.headers: \"" + name + "\" is set by the transport");
    if (name.empty() || bad(name, true) || bad(value, false))
      throw std::invalid_argument("ws_client_config.headers: bad header \"" + name + "\"");
  }
}

std::string client_request(const client_target& t, std::string_view key,
                           std::span<const std::pair<std::string, std::string>> headers) {
  std::string req = "GET " + t.target + " HTTP/1.1\r\nHost: " + t.host_header +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + std::string(key) +
                    "\r\nSec-WebSocket-Version: 13\r\n";
  for (const auto& [name, value] : headers) req += name + ": " + value + "\r\n";
  req += "\r\n";
  return req;
}

std::string check_response(const http_response& res, std::string_view expected_accept) {
  if (res.status != 101) return "the server answered HTTP " + std::to_string(res.status) + ", not 101";
  if (!header_has_token(res.fields, "upgrade", "websocket")) return "no \"Upgrade: websocket\" in the response";
  if (!header_has_token(res.fields, "connection", "upgrade")) return "no \"Connection: Upgrade\" in the response";
  if (header_value(res.fields, "sec-websocket-accept") != expected_accept)
    return "wrong Sec-WebSocket-Accept (not derived from our key)";
  if (!header_value(res.fields, "sec-websocket-extensions").empty())
    return "the server chose an extension we did not offer";
  return {};
}

}  // namespace msgtrans::ws

/// @file ws_upgrade.hpp
/// The HTTP side of a WebSocket connection as pure functions: the server's answer to an
/// upgrade request (101 with Sec-WebSocket-Accept, or an HTTP error), the client's
/// request and its check of the server's response, and the ws:// URL. No sockets, no
/// Beast: the adapter parses HTTP and hands the fields over.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace msgtrans::ws {

/// Header fields as received, in order (names in any case).
using header_fields = std::vector<std::pair<std::string_view, std::string_view>>;

/// The first value of header `name` (ASCII case-insensitive), or "" if there is none.
std::string_view header_value(const header_fields& fields, std::string_view name) noexcept;
/// True when some `name` header holds `token` in its comma-separated list
/// (case-insensitive), as for "Connection: keep-alive, Upgrade".
bool header_has_token(const header_fields& fields, std::string_view name, std::string_view token) noexcept;
/// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// An upgrade request, parsed.
struct http_request {
  std::string_view method;  ///< "GET"
  unsigned version = 11;    ///< 10 for HTTP/1.0, 11 for HTTP/1.1
  std::string_view target;  ///< "/msg?token=1"
  header_fields fields;
};

/// What the server accepts.
struct upgrade_rules {
  std::string_view path = "/";                 ///< the only path (the query is ignored)
  std::span<const std::string> allowed_origins;  ///< empty: any origin, and none
};

/// The server's answer: 101 (accepted) or an HTTP error, ready to write.
struct upgrade_answer {
  int status = 101;
  std::string response;  ///< the whole HTTP response
  std::string refusal;   ///< for the notice: "404 Not Found: no WebSocket endpoint at this path"
  bool accepted() const noexcept { return status == 101; }
};

/// Checks a request: 400 (not an HTTP/1.1 GET, bad Sec-WebSocket-Key), 404 (other
/// path), 426 (not an upgrade, or not version 13), 403 (origin not allowed), else 101.
upgrade_answer answer_upgrade(const http_request& req, const upgrade_rules& rules);
/// An HTTP error response that closes the connection. `extra_headers` are whole lines
/// ("Name: value\r\n"); `body` is plain text (the notice says it, or `reason` if empty).
upgrade_answer refuse(int status, std::string_view reason, std::string_view extra_headers, std::string_view body);
/// The refusals of requests that could not be parsed.
upgrade_answer refuse_header_too_large();  ///< 431
upgrade_answer refuse_body();              ///< 400: an upgrade has no body
upgrade_answer refuse_malformed();         ///< 400: not HTTP

/// The credentials an upgrade request carries: the token of `Authorization: Bearer TOKEN`
/// (scheme case-insensitive), else the percent-decoded `token` query parameter, else "".
std::string credentials_of(const http_request& req);
/// The target's path and query ("/ws?a=1" -> {"/ws", "a=1"}).
std::pair<std::string_view, std::string_view> split_target(std::string_view target) noexcept;
/// The refusal of an authentication: 401 (no credentials) or 403 (refused ones), both
/// with a WWW-Authenticate: Bearer header (so a client tells them from other 403s), the
/// reason as the body.
upgrade_answer refuse_auth(bool missing_credentials, std::string_view reason);

/// A ws:// or wss:// URL, parsed (host and port by net::address's rules).
struct client_target {
  bool tls = false;
  std::string host;  ///< without brackets
  std::string port;
  std::string host_header;  ///< for "Host:" (the port only when not the default)
  std::string target;       ///< path and query, "/" when none
  bool host_is_ip = false;
};
/// Parses `url`; throws std::invalid_argument naming ws_client_config.url.
client_target parse_url(const std::string& url);
/// Throws std::invalid_argument naming ws_client_config.headers for a header the
/// transport sets itself, or one with CR/LF (or, in the name, ':' or ' ').
void check_extra_headers(std::span<const std::pair<std::string, std::string>> headers);
/// The client's upgrade request with this key and the extra headers.
std::string client_request(const client_target& t, std::string_view key,
                           std::span<const std::pair<std::string, std::string>> headers);

/// A server's response to the upgrade, parsed.
struct http_response {
  int status = 0;
  header_fields fields;
};
/// Checks the server's answer: 101, Upgrade: websocket, Connection: Upgrade,
/// Sec-WebSocket-Accept for our key, no extension. Returns "" when it is right, else
/// what is wrong.
std::string check_response(const http_response& res, std::string_view expected_accept);

}  // namespace msgtrans::ws

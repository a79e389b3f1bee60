// The HTTP upgrade as pure functions: each refusal, the accept key, the client's request
// and its check of the server's response, the ws:// URL.
#include "ws/ws_frame.hpp"
#include "ws/ws_upgrade.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

using namespace msgtrans::ws;

namespace {

constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";

http_request good_request() {
  http_request r;
  r.method = "GET";
  r.version = 11;
  r.target = "/msg";
  r.fields = {{"Host", "127.0.0.1"},
              {"Upgrade", "websocket"},
              {"Connection", "Upgrade"},
              {"Sec-WebSocket-Key", rfc_key},
              {"Sec-WebSocket-Version", "13"}};
  return r;
}

void set(http_request& r, std::string_view name, std::string_view value) {
  for (auto& [n, v] : r.fields)
    if (iequals(n, name)) v = value;
}

const std::vector<std::string> no_origins;
upgrade_answer answer(const http_request& r, const std::vector<std::string>& origins = no_origins) {
  return answer_upgrade(r, {"/msg", origins});
}

}  // namespace

TEST(ws_upgrade, accepts_with_the_rfc_accept_key) {
  auto a = answer(good_request());
  EXPECT_TRUE(a.accepted());
  EXPECT_EQ(a.response.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u) << a.response;
  EXPECT_NE(a.response.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  EXPECT_NE(a.response.find("Upgrade: websocket\r\n"), std::string::npos);
  EXPECT_EQ(a.response.find("Sec-WebSocket-Extensions"), std::string::npos);
  EXPECT_EQ(a.response.substr(a.response.size() - 4), "\r\n\r\n");
}

TEST(ws_upgrade, tokens_cases_and_query_are_lenient_as_http_says) {
  auto r = good_request();
  r.target = "/msg?token=1";  // the query is not part of the path
  set(r, "connection", "keep-alive, Upgrade");
  set(r, "upgrade", "WebSocket");
  r.fields.emplace_back("origin", "https://GOOD.example");
  const std::vector<std::string> origins{"https://good.example"};
  EXPECT_TRUE(answer(r, origins).accepted());
}

TEST(ws_upgrade, each_refusal_status) {
  struct refusal_case {
    const char* what;
    http_request req;
    int status;
    const char* says;
  };
  std::vector<refusal_case> cases;
  auto r = good_request();
  r.method = "POST";
  cases.push_back({"POST", r, 400, "400 Bad Request: a WebSocket upgrade is an HTTP/1.1 GET"});
  r = good_request();
  r.version = 10;
  cases.push_back({"HTTP/1.0", r, 400, "HTTP/1.1 GET"});
  r = good_request();
  r.target = "/elsewhere";
  cases.push_back({"path", r, 404, "404 Not Found: no WebSocket endpoint at this path"});
  r = good_request();
  r.fields.erase(r.fields.begin() + 1, r.fields.begin() + 3);  // no Upgrade, no Connection
  cases.push_back({"plain GET", r, 426, "426 Upgrade Required: this endpoint speaks WebSocket only"});
  r = good_request();
  set(r, "sec-websocket-version", "8");
  cases.push_back({"version", r, 426, "WebSocket version 13 only"});
  r = good_request();
  set(r, "sec-websocket-key", "short");
  cases.push_back({"key", r, 400, "bad Sec-WebSocket-Key"});
  for (const auto& c : cases) {
    auto a = answer(c.req);
    EXPECT_FALSE(a.accepted()) << c.what;
    EXPECT_EQ(a.status, c.status) << c.what;
    EXPECT_NE(a.refusal.find(c.says), std::string::npos) << c.what << ": " << a.refusal;
    EXPECT_EQ(a.response.rfind("HTTP/1.1 " + std::to_string(c.status) + " ", 0), 0u) << a.response;
    EXPECT_NE(a.response.find("Connection: close\r\n"), std::string::npos);
  }
  r = good_request();
  set(r, "sec-websocket-version", "8");
  EXPECT_NE(answer(r).response.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
}

TEST(ws_upgrade, allowed_origins_refuse_others_and_none_with_403) {
  const std::vector<std::string> origins{"https://good.example"};
  auto r = good_request();
  EXPECT_EQ(answer(r, origins).status, 403) << "no Origin";
  r.fields.emplace_back("Origin", "https://evil.example");
  auto a = answer(r, origins);
  EXPECT_EQ(a.status, 403);
  EXPECT_EQ(a.refusal, "403 Forbidden: origin not allowed");
  EXPECT_TRUE(answer(good_request()).accepted()) << "no list: any origin, and none";
}

TEST(ws_upgrade, refusals_of_unparsed_requests) {
  auto big = refuse_header_too_large();
  EXPECT_EQ(big.status, 431);
  EXPECT_EQ(big.refusal, "431 Request Header Fields Too Large: Request Header Fields Too Large");
  EXPECT_NE(big.response.find("Content-Length: 0\r\n"), std::string::npos);
  EXPECT_EQ(refuse_body().status, 400);
  auto bad = refuse_malformed();
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.refusal, "400 Bad Request: malformed HTTP request");
  const std::string body = "malformed HTTP request\n";
  EXPECT_EQ(bad.response.substr(bad.response.size() - body.size()), body);
  EXPECT_NE(bad.response.find("Content-Length: " + std::to_string(body.size())), std::string::npos);
}

// ---- client -----------------------------------------------------------------------------

TEST(ws_upgrade, client_request_and_response_check) {
  auto t = parse_url("ws://127.0.0.1:8002/chat?room=1");
  const std::vector<std::pair<std::string, std::string>> extra{{"Origin", "https://app"}};
  auto req = client_request(t, rfc_key, extra);
  EXPECT_EQ(req.rfind("GET /chat?room=1 HTTP/1.1\r\nHost: 127.0.0.1:8002\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("Sec-WebSocket-Key: " + std::string(rfc_key) + "\r\n"), std::string::npos);
  EXPECT_NE(req.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_NE(req.find("Origin: https://app\r\n"), std::string::npos);
  EXPECT_EQ(req.substr(req.size() - 4), "\r\n\r\n");

  const std::string accept = accept_key(rfc_key);
  http_response ok{101, {{"upgrade", "websocket"}, {"connection", "Upgrade"}, {"Sec-WebSocket-Accept", accept}}};
  EXPECT_EQ(check_response(ok, accept), "");
  auto bad = ok;
  bad.status = 404;
  EXPECT_NE(check_response(bad, accept).find("404"), std::string::npos);
  bad = ok;
  bad.fields[0].second = "h2c";
  EXPECT_NE(check_response(bad, accept).find("Upgrade"), std::string::npos);
  bad = ok;
  bad.fields[1].second = "close";
  EXPECT_NE(check_response(bad, accept).find("Connection"), std::string::npos);
  bad = ok;
  bad.fields[2].second = "c29tZXRoaW5nIGVsc2U=";
  EXPECT_NE(check_response(bad, accept).find("Sec-WebSocket-Accept"), std::string::npos);
  bad = ok;
  bad.fields.emplace_back("Sec-WebSocket-Extensions", "permessage-deflate");
  EXPECT_NE(check_response(bad, accept).find("extension"), std::string::npos);
}

TEST(ws_upgrade, urls) {
  auto a = parse_url("ws://example.com");
  EXPECT_FALSE(a.tls);
  EXPECT_EQ(a.host, "example.com");
  EXPECT_EQ(a.port, "80");
  EXPECT_EQ(a.target, "/");
  EXPECT_EQ(a.host_header, "example.com");
  EXPECT_FALSE(a.host_is_ip);
  auto b = parse_url("wss://[::1]:8443/x");
  EXPECT_TRUE(b.tls);
  EXPECT_EQ(b.host, "::1");
  EXPECT_EQ(b.port, "8443");
  EXPECT_EQ(b.host_header, "[::1]:8443");
  EXPECT_TRUE(b.host_is_ip);
  auto c = parse_url("wss://[::1]/");
  EXPECT_EQ(c.port, "443");
  EXPECT_EQ(c.host_header, "[::1]");
  for (const char* bad : {"http://x/", "ws:///path", "ws://host:port/", "ws://[::1/"}) {
    try {
      parse_url(bad);
      ADD_FAILURE() << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("ws_client_config.url"), std::string::npos) << e.what();
    }
  }
}

TEST(ws_upgrade, extra_headers_may_not_be_the_transports_own) {
  using headers = std::vector<std::pair<std::string, std::string>>;
  EXPECT_NO_THROW(check_extra_headers(headers{{"Authorization", "Bearer x"}}));
  EXPECT_THROW(check_extra_headers(headers{{"sec-websocket-key", "x"}}), std::invalid_argument);
  EXPECT_THROW(check_extra_headers(headers{{"X-Evil", "a\r\nHost: b"}}), std::invalid_argument);
  EXPECT_THROW(check_extra_headers(headers{{"Bad Name", "v"}}), std::invalid_argument);
}

#include "net/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>

namespace msgtrans::net {

std::optional<address> address::parse(std::string_view s, std::string& why) {
  auto bad = [&](std::string reason) -> std::optional<address> {
    why = "bad address '" + std::string(s) + "': " + std::move(reason) + " (expected host:port or [v6]:port)";
    return std::nullopt;
  };
  std::string_view host, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return bad("no ']' after the IPv6 address");
    if (close + 1 >= s.size() || s[close + 1] != ':') return bad("no port");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    if (host.empty()) return bad("empty IPv6 address");
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("an IPv6 address needs brackets");
  }
  if (port.empty()) return bad("no port");
  unsigned v = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (ec != std::errc{} || p != port.data() + port.size() || v > 65535) return bad("port must be 0..65535");
  for (char c : host)
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '[' || c == ']') return bad("bad character in host");
  return address{std::string(host), static_cast<std::uint16_t>(v)};
}

std::optional<address> address::parse_bind(std::string_view s, std::string& why) {
  auto a = parse(s, why);
  if (a && a->host.empty()) a->host = "0.0.0.0";
  return a;
}

std::optional<address> address::parse_connect(std::string_view s, std::string& why) {
  auto a = parse(s, why);
  if (a && a->host.empty()) {
    why = "bad address '" + std::string(s) + "': no host (expected host:port or [v6]:port)";
    return std::nullopt;
  }
  return a;
}

std::string address::to_string() const { return format(host, port); }

bool address::is_ip_literal() const {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string format(std::string_view ip, std::uint16_t port) {
  std::string s;
  const bool v6 = ip.find(':') != std::string_view::npos;
  s.reserve(ip.size() + 8);
  if (v6) s += '[';
  s += ip;
  if (v6) s += ']';
  s += ':';
  s += std::to_string(port);
  return s;
}

std::string format(const sockaddr* sa) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (sa && sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    return format(ip, ntohs(in->sin_port));
  }
  if (sa && sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    return format(ip, ntohs(in6->sin6_port));
  }
  return "?";
}

}  // namespace msgtrans::net

// "host:port" and "[v6]:port" splitting, shared by the transports. Sans-I/O.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace msgtrans::detail {

struct host_port {
  std::string host;
  std::uint16_t port = 0;
};

/// Splits "host:port" / "[v6]:port". Returns false on a missing or bad port.
inline bool split_host_port(std::string_view s, host_port& out) {
  std::string_view host, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return false;  // bare v6 needs brackets
  }
  unsigned v = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (ec != std::errc{} || p != port.data() + port.size() || v > 65535 || port.empty()) return false;
  out.host = host.empty() ? "0.0.0.0" : std::string(host);
  out.port = static_cast<std::uint16_t>(v);
  return true;
}

/// "1.2.3.4:5" or "[::1]:5".
template <class Endpoint>
std::string to_string(const Endpoint& ep) {
  auto a = ep.address();
  std::string s = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return s + ":" + std::to_string(ep.port());
}

}  // namespace msgtrans::detail

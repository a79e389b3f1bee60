// One address type for every transport: "host:port" / "[v6]:port", parsed, formatted
// and resolved by the same rules everywhere. Sans-I/O (resolving lives in resolve.hpp).
//
// Rules:
// - "host:port", or "[v6]:port" (a bare IPv6 literal with colons needs the brackets);
// - the port is 0..65535 in decimal digits (0 lets a listener pick a free port);
// - the host is a name or an IP literal; an empty host (":8001") is allowed only where a
//   listener binds, and means every IPv4 address (0.0.0.0). A connector refuses it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;

namespace msgtrans::net {

struct address {
  std::string host;        ///< a name or an IP literal, without brackets; may be empty (see above)
  std::uint16_t port = 0;

  /// Parses `text`; nullopt with the reason in `why` ("... (expected host:port)").
  static std::optional<address> parse(std::string_view text, std::string& why);
  /// Parses an address a listener binds: an empty host becomes "0.0.0.0".
  static std::optional<address> parse_bind(std::string_view text, std::string& why);
  /// Parses an address a connector dials: the host must not be empty.
  static std::optional<address> parse_connect(std::string_view text, std::string& why);

  /// "host:port", or "[v6]:port" when the host holds a colon.
  std::string to_string() const;
  /// True if the host is an IPv4 or IPv6 literal (not a name).
  bool is_ip_literal() const;
};

/// "1.2.3.4:5" / "[::1]:5" of an IP address and port.
std::string format(std::string_view ip, std::uint16_t port);
/// The same of a socket address (AF_INET / AF_INET6); "?" for anything else.
std::string format(const sockaddr* sa);

/// "1.2.3.4:5" / "[::1]:5" of an Asio endpoint (tcp or udp).
template <class Endpoint>
std::string format_endpoint(const Endpoint& ep) {
  return format(ep.address().to_string(), ep.port());
}

}  // namespace msgtrans::net

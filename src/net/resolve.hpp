// Resolving an address that a listener binds, for TCP and UDP alike.
#pragma once

#include "net/address.hpp"

#include <msgtrans/error.hpp>

#include <boost/asio/io_context.hpp>

#include <string>

namespace msgtrans::net {

/// Parses `text` (address::parse_bind) and resolves it passively (numeric port, first
/// result). Errors are address_error with "NAME: ..." naming the text.
template <class Protocol>
error_info resolve_bind(boost::asio::io_context& loop, const std::string& text, const std::string& name,
                        typename Protocol::endpoint& out) {
  std::string why;
  auto addr = address::parse_bind(text, why);
  if (!addr) return {errc::address_error, name + ": " + why};
  boost::system::error_code ec;
  typename Protocol::resolver resolver(loop);
  auto results = resolver.resolve(addr->host, std::to_string(addr->port),
                                  Protocol::resolver::passive | Protocol::resolver::numeric_service, ec);
  if (ec || results.empty())
    return {errc::address_error, name + ": cannot resolve '" + addr->host + "': " + ec.message()};
  out = results.begin()->endpoint();
  return {};
}

}  // namespace msgtrans::net

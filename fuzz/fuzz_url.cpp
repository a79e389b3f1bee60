// The address and URL parsers: connector_for_url and net::address.
#include "net/address.hpp"

#include <msgtrans/url.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  std::string why;
  if (auto a = msgtrans::net::address::parse(s, why)) {
    // What parses formats back to something that parses to the same address.
    auto again = msgtrans::net::address::parse(a->to_string(), why);
    if (!again || again->host != a->host || again->port != a->port) __builtin_trap();
    if (msgtrans::net::address::parse_connect(s, why) && a->host.empty()) __builtin_trap();
  } else if (why.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  std::string error;
  try {
    auto c = msgtrans::connector_for_url(s, {}, error);
    if (!c && error.empty()) __builtin_trap();
  } catch (const std::invalid_argument&) {
    // connector_for_url reports through `error`; make_* validation throwing is a bug here.
    __builtin_trap();
  }
  return 0;
}

// The address and URL parsers: connector_for_url and host:port splitting.
#include "core/address.hpp"

#include <msgtrans/url.hpp>

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  msgtrans::detail::host_port hp;
  if (msgtrans::detail::split_host_port(s, hp) && hp.host.empty()) __builtin_trap();
  std::string error;
  auto c = msgtrans::connector_for_url(s, {}, error);
  if (!c && error.empty()) __builtin_trap();  // a refusal always says why
  return 0;
}

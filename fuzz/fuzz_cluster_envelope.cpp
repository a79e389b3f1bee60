// What a node accepts from the bus: the envelope decoder, presence bodies, room names and
// their subject tokens. Anything a broker (or someone publishing on it) hands a node.
#include "cluster/envelope.hpp"
#include "cluster/room_name.hpp"

#include <cstdint>
#include <cstring>
#include <string>

using namespace msgtrans;
using namespace msgtrans::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const bytes_view in(reinterpret_cast<const std::byte*>(data), size);
  if (auto e = decode_envelope(in)) {
    // What decodes encodes back to the same bytes.
    const auto again = encode(*e);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) __builtin_trap();
    (void)for_each_presence(e->body, [](std::string_view room, std::uint32_t) {
      if (room.empty() || room.size() > 255) __builtin_trap();
    });
  }
  // Room names: a valid name's token holds only subject-safe bytes, and decodes back.
  const std::string_view name(reinterpret_cast<const char*>(data), size);
  if (room_name_error(name).empty()) {
    const auto token = subject_token(name);
    std::string back;
    for (std::size_t i = 0; i < token.size(); ++i) {
      const char c = token[i];
      if (c == '.' || c == '*' || c == '>' || c == ' ' || static_cast<unsigned char>(c) < 0x21) __builtin_trap();
      if (c == '%') {
        if (i + 2 >= token.size()) __builtin_trap();
        back.push_back(static_cast<char>(std::stoi(token.substr(i + 1, 2), nullptr, 16)));
        i += 2;
      } else {
        back.push_back(c);
      }
    }
    if (back != name) __builtin_trap();
  }
  return 0;
}

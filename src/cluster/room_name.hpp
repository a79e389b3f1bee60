// Room names (1 to 255 bytes of UTF-8) and their broker subjects: a name is opaque to
// the broker, so "a.b", "*" and ">" are ordinary names, never separators or wildcards.
#pragma once

#include <string>
#include <string_view>

namespace msgtrans::detail {

/// Why `name` is not a room name, or empty when it is one.
std::string_view room_name_error(std::string_view name) noexcept;
/// Throws std::invalid_argument("invalid room name: ...") unless `name` is one.
void check_room_name(std::string_view name);
/// One subject token for any bytes: [A-Za-z0-9_-] stay, every other byte becomes %XX
/// (so '.', '*', '>', whitespace, control bytes and '%' itself never reach the broker
/// raw). Injective: two names never share a token.
std::string subject_token(std::string_view bytes);

}  // namespace msgtrans::detail

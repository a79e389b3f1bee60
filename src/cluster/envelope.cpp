#include "cluster/envelope.hpp"

#include <cstring>

namespace msgtrans::detail {

namespace {

template <class T>
void put(std::byte* p, T v) noexcept {
  for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<std::byte>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xFF);
}
template <class T>
T get(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = sizeof(T); i-- > 0;) v = v << 8 | static_cast<std::uint8_t>(p[i]);
  return static_cast<T>(v);
}

constexpr char magic[4] = {'M', 'T', 'C', '1'};

}  // namespace

byte_buffer encode(const envelope& e) {
  byte_buffer out(envelope_header_size + e.ext.size() + e.body.size());
  std::byte* p = out.data();
  std::memcpy(p, magic, 4);
  p[4] = static_cast<std::byte>(e.kind);
  p[5] = static_cast<std::byte>(e.biz_type);
  put<std::uint16_t>(p + 6, e.flags);
  put<std::uint32_t>(p + 8, e.origin);
  put<std::uint64_t>(p + 12, e.session);
  put<std::uint64_t>(p + 20, e.correlation);
  put<std::uint32_t>(p + 28, e.timeout_ms);
  put<std::uint16_t>(p + 32, e.error);
  put<std::uint16_t>(p + 34, static_cast<std::uint16_t>(e.ext.size()));
  if (!e.ext.empty()) std::memcpy(p + envelope_header_size, e.ext.data(), e.ext.size());
  if (!e.body.empty()) std::memcpy(p + envelope_header_size + e.ext.size(), e.body.data(), e.body.size());
  return out;
}

std::optional<envelope> decode_envelope(bytes_view d) noexcept {
  if (d.size() < envelope_header_size || std::memcmp(d.data(), magic, 4) != 0) return std::nullopt;
  const std::byte* p = d.data();
  const auto kind = static_cast<std::uint8_t>(p[4]);
  if (kind < 1 || kind > 6) return std::nullopt;
  envelope e;
  e.kind = static_cast<envelope_kind>(kind);
  e.biz_type = static_cast<std::uint8_t>(p[5]);
  e.flags = get<std::uint16_t>(p + 6);
  e.origin = get<std::uint32_t>(p + 8);
  e.session = get<std::uint64_t>(p + 12);
  e.correlation = get<std::uint64_t>(p + 20);
  e.timeout_ms = get<std::uint32_t>(p + 28);
  e.error = get<std::uint16_t>(p + 32);
  const std::size_t ext = get<std::uint16_t>(p + 34);
  if (envelope_header_size + ext > d.size()) return std::nullopt;
  e.ext = d.subspan(envelope_header_size, ext);
  e.body = d.subspan(envelope_header_size + ext);
  return e;
}

void append_presence(byte_buffer& body, std::string_view room, std::uint32_t members) {
  body.push_back(static_cast<std::byte>(room.size()));
  for (char c : room) body.push_back(static_cast<std::byte>(c));
  for (int k = 0; k < 4; ++k) body.push_back(static_cast<std::byte>((members >> (8 * k)) & 0xFF));
}

}  // namespace msgtrans::detail

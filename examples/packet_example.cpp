// Encodes a request packet, decodes it again, and prints both.
#include <msgtrans/packet.hpp>

#include <cstdio>

static void print(const char* what, const msgtrans::packet& p) {
  std::printf("%s: type=%u biz_type=%u message_id=%u flags=0x%04x ext_header=\"%.*s\" payload=\"%.*s\"\n", what,
              static_cast<unsigned>(p.type), p.biz_type, p.message_id, p.flags,
              static_cast<int>(p.ext_header.size()), reinterpret_cast<const char*>(p.ext_header.data()),
              static_cast<int>(p.payload.size()), reinterpret_cast<const char*>(p.payload.data()));
}

int main() {
  auto req = msgtrans::packet::request(1, msgtrans::as_bytes("What time is it?"), 10);
  req.ext_header = msgtrans::to_buffer(msgtrans::as_bytes("trace:42"));
  req.flags = msgtrans::flags::high_priority;
  print("encoding", req);

  auto wire = msgtrans::encode(req);
  if (!wire) {
    std::fprintf(stderr, "encode failed: %s\n", wire.error().message().c_str());
    return 1;
  }
  std::printf("wire (%zu bytes):", wire->size());
  for (std::byte b : *wire) std::printf(" %02x", std::to_integer<unsigned>(b));
  std::printf("\n");

  auto back = msgtrans::decode(*wire);
  if (!back) {
    std::fprintf(stderr, "decode failed: %s\n", back.error().message().c_str());
    return 1;
  }
  print("decoded ", *back);
  return *back == req ? 0 : 1;
}

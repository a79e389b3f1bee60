// Built against an installed msgtrans: encodes and decodes one packet.
#include <msgtrans/packet.hpp>

#include <cstdio>

int main() {
  auto p = msgtrans::packet::request(7, msgtrans::as_bytes("hello"), 3);
  p.compression = msgtrans::compression::zstd;
  auto wire = msgtrans::encode(p);
  if (!wire) return 1;
  auto back = msgtrans::decode(*wire);
  if (!back || back->payload != p.payload) return 1;
  std::printf("consumer: round trip of %zu bytes ok\n", wire->size());
  return 0;
}

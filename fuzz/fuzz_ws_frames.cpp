// The WebSocket server read path after the handshake, without a socket: a byte stream
// is cut into frames as the server does (header checks for the server role and the size
// limit, unmasking, close payloads), and each final binary message is decoded as one
// packet. Also checks that re-encoding a parsed header reads back the same.
#include "ws/ws_frame.hpp"

#include <msgtrans/packet.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

using namespace msgtrans;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bytes_view in(reinterpret_cast<const std::byte*>(data), size);
  constexpr std::uint64_t max_payload = 64 * 1024;
  std::vector<std::byte> message;
  while (!in.empty()) {
    auto r = ws::parse_frame_header(in, ws::role::server, max_payload);
    if (r.status != ws::parse_result::ok) break;  // need_more or fail: the connection ends
    const auto& h = r.header;
    if (h.payload_len > max_payload && h.op != ws::opcode::continuation) __builtin_trap();  // must be refused
    if (in.size() - h.header_len < h.payload_len) break;
    std::vector<std::byte> payload(in.begin() + static_cast<std::ptrdiff_t>(h.header_len),
                                   in.begin() + static_cast<std::ptrdiff_t>(h.header_len + h.payload_len));
    if (h.masked && !payload.empty()) ws::apply_mask(payload.data(), payload.size(), h.mask, 0);
    // Re-encoding the header (as a final frame) must give a header that parses to the same values.
    std::byte hdr[ws::max_header_size];
    const std::size_t n = ws::encode_frame_header(hdr, h.op, h.payload_len, h.masked ? h.mask.data() : nullptr);
    auto again = ws::parse_frame_header({hdr, n}, ws::role::server, ~std::uint64_t{0});
    if (again.status == ws::parse_result::ok &&
        (again.header.payload_len != h.payload_len || again.header.op != h.op || again.header.header_len != n))
      __builtin_trap();
    if (h.op == ws::opcode::close) {
      (void)ws::parse_close_payload(payload);
      break;
    }
    if (h.op == ws::opcode::binary || h.op == ws::opcode::continuation) {
      message.insert(message.end(), payload.begin(), payload.end());
      if (message.size() > max_payload) break;  // 1009
      if (h.fin) {
        (void)decode_view(message);
        message.clear();
      }
    }
    in = in.subspan(static_cast<std::size_t>(h.header_len + h.payload_len));
  }
  return 0;
}

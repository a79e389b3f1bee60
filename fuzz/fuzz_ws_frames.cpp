// The WebSocket server read path after the handshake, without a socket: ws::session (the
// transport's own protocol state) is fed the input in chunks, on fake time, as the
// adapter feeds it; every message it hands on must fit the size limit, nothing may be
// handed on once it is closing, and the frames it writes back must parse as server
// frames. Also checks that re-encoding a parsed header reads back the same.
#include "ws/ws_frame.hpp"
#include "ws/ws_session.hpp"

#include <msgtrans/packet.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

using namespace msgtrans;

namespace {

constexpr std::size_t max_payload = 64 * 1024;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Re-encoding each complete header (as a final frame) gives a header that parses to the
// same values.
void check_headers(bytes_view in) {
  while (!in.empty()) {
    auto r = ws::parse_frame_header(in, ws::role::server, max_payload);
    if (r.status != ws::parse_result::ok) return;
    const auto& h = r.header;
    check(h.payload_len <= max_payload || h.op == ws::opcode::continuation || (static_cast<int>(h.op) & 8));
    std::byte hdr[ws::max_header_size];
    const std::size_t n = ws::encode_frame_header(hdr, h.op, h.payload_len, h.masked ? h.mask.data() : nullptr);
    auto again = ws::parse_frame_header({hdr, n}, ws::role::server, ~std::uint64_t{0});
    check(again.status != ws::parse_result::ok ||
          (again.header.payload_len == h.payload_len && again.header.op == h.op && again.header.header_len == n));
    if (in.size() - h.header_len < h.payload_len) return;
    in = in.subspan(static_cast<std::size_t>(h.header_len + h.payload_len));
  }
}

// The session's output parses as unmasked server frames, nothing after a close.
void check_output(ws::session& s) {
  ws::write_batch b;
  s.build_batch({}, false, true, b);
  std::vector<std::byte> out;
  for (auto seg : b.segments) out.insert(out.end(), seg.begin(), seg.end());
  bytes_view rest(out);
  bool closed = false;
  while (!rest.empty()) {
    check(!closed);
    auto r = ws::parse_frame_header(rest, ws::role::client, ~std::uint64_t{0} >> 1);
    check(r.status == ws::parse_result::ok);
    check(rest.size() >= r.header.header_len + r.header.payload_len);
    closed = r.header.op == ws::opcode::close;
    rest = rest.subspan(static_cast<std::size_t>(r.header.header_len + r.header.payload_len));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check_headers({reinterpret_cast<const std::byte*>(data), size});

  ws::session_config cfg;
  cfg.self = ws::role::server;
  cfg.limits.max_message_size = max_payload;
  cfg.keep_alive_interval = std::chrono::milliseconds(100);
  cfg.keep_alive_timeout = std::chrono::milliseconds(50);
  auto now = ws::time_point{} + std::chrono::seconds(1);
  ws::session s(cfg, now);
  std::vector<std::byte> buf;
  std::size_t pos = 0;
  // The first byte picks the chunk size (the reads the adapter would see).
  const std::size_t chunk = size ? 1 + data[0] % 64 : 1;
  while (pos < size && !s.finished()) {
    const std::size_t n = std::min(chunk, size - pos);
    buf.insert(buf.end(), reinterpret_cast<const std::byte*>(data) + pos, reinterpret_cast<const std::byte*>(data) + pos + n);
    pos += n;
    now += std::chrono::milliseconds(7);
    for (;;) {
      const bool was_open = s.is_open();
      auto r = s.receive(buf, now);
      if (r.has_message) {
        check(was_open);
        check(r.message.size() <= max_payload);
        (void)decode_view(r.message);  // what the runtime's session does next
      }
      s.message_done();
      if (r.consumed == 0) break;
      check(r.consumed <= buf.size());
      buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r.consumed));
    }
    if (now >= s.next_deadline()) s.on_timer(now);
    check_output(s);
    s.on_written();
  }
  (void)s.on_eof({}, true, buf);
  check(s.finished());
  return 0;
}

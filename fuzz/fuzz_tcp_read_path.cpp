// The whole server read path of the TCP transport without a socket: bytes are cut by
// the TCP frame decoder, handed to a real session (validation, decompression, request /
// one-way dispatch, responder, encoding into the write queue), and the session's writes
// go to an in-memory connection. Handlers echo, as `msgtrans serve` does.
#include "echo_session_host.hpp"
#include "runtime/session_core.hpp"

#include "memory_connection.hpp"

#include <cstdint>
#include <cstring>

namespace {

using namespace msgtrans;

using fuzz::memory_connection;
using fuzz::wire;

using echo_host = fuzz::echo_session_host;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  boost::asio::io_context io;
  echo_host host;
  auto mem = std::make_shared<wire>();
  auto conn = std::make_unique<memory_connection>(mem);
  session_options o;
  o.max_message_size = 64 * 1024;  // small limits keep the fuzzer fast
  o.write_high_water = 16 * 1024;
  auto s = std::make_shared<detail::session_core>(host, io, std::move(conn), session_id{1}, o, true);
  boost::asio::post(io, [&] { s->start(); });
  io.poll();
  fuzz::feed_tcp(io, *mem, data, size, o.limits());
  s->close(close_info{close_reason::shutdown, {}, "fuzz done"});
  io.poll();
  if (!mem->closed) mem->close(close_info{close_reason::shutdown, {}, "fuzz done"});
  io.poll();
  return 0;
}

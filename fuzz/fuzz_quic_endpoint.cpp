// The QUIC server's handling of datagrams as a whole: a real endpoint (src/quic/endpoint.cpp)
// bound to a loopback UDP socket gets the fuzz input as datagrams sent from a real socket.
// That covers routing by connection ID, Version Negotiation, Retry, stateless resets,
// refusals when full, and new connections from client Initials (ngtcp2_accept, then the
// connection's own packet parsing and the server side of the TLS handshake).
//
// Input: byte 0 picks the mode.
//  - even: the rest is datagrams, each a length byte and that many bytes;
//  - odd: a genuine client Initial (captured once from a real msgtrans connector) is sent
//    edited: the rest is triplets (offset high, offset low, value) written into a copy,
//    so mutations reach past ngtcp2_accept into the connection's packet parsing. The
//    unedited Initial follows, so the edited one meets an existing connection too.
//
// Each input gets a fresh io_context and endpoint; the TLS credentials (a self-signed
// certificate) are made once. No state carries over from one input to the next. The
// endpoint's replies are read and dropped. Checked, besides "no crash, leak or sanitizer
// report": the endpoint never holds more connections than max_connections, nor more
// handshakes than max_pending_handshakes.
#include "quic/endpoint.hpp"

#include <msgtrans/quic.hpp>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

using namespace msgtrans;
using namespace msgtrans::quic_detail;
namespace asio = boost::asio;
using udp = asio::ip::udp;

void check_at(bool ok, const char* what, int line) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_quic_endpoint.cpp:%d: check failed: %s\n", line, what);
  std::abort();
}
#define check(...) check_at((__VA_ARGS__), #__VA_ARGS__, __LINE__)

quic_server_config server_cfg() {
  quic_server_config c;
  c.bind_address = "127.0.0.1:0";
  c.max_connections = 6;
  c.max_pending_handshakes = 4;
  c.connection.initial_rtt = std::chrono::milliseconds(10);
  return c;
}

// The first datagram of a real client: a full-size Initial.
std::vector<std::uint8_t> capture_client_initial() {
  asio::io_context io;
  udp::socket trap(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  quic_client_config cfg;
  cfg.address = "127.0.0.1:" + std::to_string(trap.local_endpoint().port());
  cfg.tls_insecure_skip_verify = true;
  cfg.connection.max_udp_payload = 1200;  // a network-sized Initial (on loopback it would be padded to 65,000)
  auto conn = make_connector(cfg);
  conn->connect(io, std::chrono::milliseconds(500), {}, [](msgtrans::error_info, std::unique_ptr<connection>) {});
  std::vector<std::uint8_t> pkt(65536);
  std::size_t n = 0;
  udp::endpoint from;
  trap.async_receive_from(asio::buffer(pkt), from, [&](boost::system::error_code ec, std::size_t k) {
    if (!ec) n = k;
  });
  while (n == 0 && io.run_one() > 0) {
  }
  io.run();  // the connect attempt times out and ends
  check(n >= 1200 && n < pkt.size());
  pkt.resize(n);
  return pkt;
}

struct fixture {
  quic_server_config cfg = server_cfg();
  std::shared_ptr<endpoint_group> group = std::make_shared<endpoint_group>(cfg, transport_context{}, 1);
  std::vector<std::uint8_t> initial = capture_client_initial();
  int sender = -1;

  fixture() {
    std::string detail;
    auto cred = std::make_shared<tls_credentials>();
    check(!cred->init_server({}, {}, "", detail));
    group->set_credentials(std::move(cred));
    sender = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    check(sender >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(::bind(sender, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
};

fixture& get() {
  static fixture f;
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  fixture& f = get();
  std::vector<std::vector<std::uint8_t>> datagrams;
  if (data[0] & 1) {
    auto edited = f.initial;
    for (std::size_t i = 1; i + 2 < size && i < 1 + 3 * 64; i += 3) {
      const std::size_t off = ((std::size_t{data[i]} << 8) | data[i + 1]) % edited.size();
      edited[off] = data[i + 2];
    }
    datagrams.push_back(std::move(edited));
    datagrams.push_back(f.initial);
  } else {
    for (std::size_t i = 1; i < size && datagrams.size() < 16;) {
      const std::size_t len = std::min<std::size_t>(data[i], size - i - 1);
      datagrams.emplace_back(data + i + 1, data + i + 1 + len);
      i += 1 + len;
    }
  }

  asio::io_context io;
  // The last input's connections went with its io_context, uncounted: start from zero.
  f.group->connections = 0;
  f.group->handshakes = 0;
  f.group->idle = 0;
  auto ep = std::make_shared<endpoint>(io, f.cfg, f.group, 0);
  f.group->members = {ep};
  std::string detail;
  check(!ep->bind(udp::endpoint(asio::ip::make_address("127.0.0.1"), 0), detail));
  ep->start_receive([](std::unique_ptr<connection>) {});
  const auto to = ep->bound_endpoint();
  for (const auto& d : datagrams)
    (void)::sendto(f.sender, d.data(), d.size(), 0, to.data(), static_cast<socklen_t>(to.size()));
  for (int round = 0; round < 64 && io.poll() > 0; ++round) {
  }
  check(f.group->connections.load() == ep->connection_count());
  check(ep->connection_count() <= f.cfg.max_connections);
  check(ep->handshake_count() <= f.cfg.max_pending_handshakes);
  std::uint8_t sink[2048];
  while (::recv(f.sender, sink, sizeof sink, 0) > 0) {
  }
  ep->stop();
  ep.reset();
  return 0;  // io's destructor frees the connections its pending handlers hold
}

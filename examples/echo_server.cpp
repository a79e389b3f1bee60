// Echo server on TCP, WebSocket and QUIC at once: one-way messages come back, requests
// get the payload as response.
// Usage: echo_server [TCP_ADDRESS [WS_ADDRESS/PATH [QUIC_ADDRESS]]]
//        (defaults 127.0.0.1:8001, 127.0.0.1:8002/ws, 127.0.0.1:8003; port 0 picks a free port)
// QUIC uses a self-signed certificate for localhost: clients connect with
// url_options::tls_insecure_skip_verify (or trust a certificate from `msgtrans cert`).
#include <msgtrans/msgtrans.hpp>

#include <csignal>
#include <cstdio>

int main(int argc, char** argv) {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  const std::string tcp = argc > 1 ? argv[1] : "127.0.0.1:8001";
  const std::string ws = argc > 2 ? argv[2] : "127.0.0.1:8002/ws";
  const std::string quic = argc > 3 ? argv[3] : "127.0.0.1:8003";
  msgtrans::ws_server_config wsc;
  wsc.bind_address = ws.substr(0, ws.find('/'));
  wsc.path = ws.find('/') == std::string::npos ? "/" : ws.substr(ws.find('/'));
  msgtrans::quic_server_config qc;
  qc.bind_address = quic;

  msgtrans::server* self = nullptr;
  auto server = msgtrans::server_builder{}
                    .listen(msgtrans::tcp_server_config{tcp})
                    .listen(wsc)
                    .listen(qc)
                    .on_connected([](const msgtrans::connection_info& i) {
                      std::printf("connected: session-%llu from %s over %s\n",
                                  static_cast<unsigned long long>(i.session.value), i.endpoint.peer_address.c_str(),
                                  i.endpoint.protocol.c_str());
                      std::fflush(stdout);
                    })
                    .on_message([&self](const msgtrans::message& m) { self->send(m.session, m.payload); })
                    .on_request([](msgtrans::request& r) { r.respond(r.payload); })
                    .build();
  self = &server;
  if (auto e = server.start()) return std::fprintf(stderr, "%s\n", e.message().c_str()), 1;
  for (auto& [proto, addr] : server.local_addresses()) std::printf("listening %s %s\n", proto.c_str(), addr.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  server.stop();
  return 0;
}

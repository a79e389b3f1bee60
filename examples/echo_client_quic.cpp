// Echo client over QUIC. Usage: echo_client_quic [quic://HOST:PORT]
// echo_server's QUIC certificate is self-signed, so this example skips verification
// (development only); in production leave it on and set url_options::tls_ca_file instead.
#include "echo_client.hpp"

int main(int argc, char** argv) {
  msgtrans::url_options opts;
  opts.tls_insecure_skip_verify = true;
  return run_echo_client(argc > 1 ? argv[1] : "quic://127.0.0.1:8003", opts);
}

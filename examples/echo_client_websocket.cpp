// Echo client over WebSocket. Usage: echo_client_websocket [ws://HOST:PORT/PATH]
// (wss:// URLs work too; pass the server's certificate with url_options::tls_ca_file.)
#include "echo_client.hpp"

int main(int argc, char** argv) { return run_echo_client(argc > 1 ? argv[1] : "ws://127.0.0.1:8002/ws"); }

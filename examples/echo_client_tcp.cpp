// Echo client over TCP. Usage: echo_client_tcp [tcp://HOST:PORT]
#include "echo_client.hpp"

int main(int argc, char** argv) { return run_echo_client(argc > 1 ? argv[1] : "tcp://127.0.0.1:8001"); }

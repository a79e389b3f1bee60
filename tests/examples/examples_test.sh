#!/usr/bin/env bash
# Smoke test: every example runs and does what it says. Usage: examples_test.sh BIN_DIR
set -euo pipefail
bin="$1"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
wait_line() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

"$bin/packet_example" | grep -q '^decoded ' || fail packet_example
"$bin/request_response" >"$work/rr"
grep -q "server answers: what time is it?" "$work/rr" || fail "request_response: client->server"
grep -q "client answers: who are you?" "$work/rr" || fail "request_response: server->client"
"$bin/readme_tour" | grep -q "readme tour: ok" || fail "readme_tour (the README's API tour)"
"$bin/unix_socket_transport" | grep -q "hello over a unix socket" || fail unix_socket_transport

"$bin/echo_server" 127.0.0.1:0 127.0.0.1:0/ws 127.0.0.1:0 >"$work/echo" &
pids+=($!)
for _ in $(seq 100); do [ "$(grep -c '^listening' "$work/echo")" -ge 3 ] && break; sleep 0.05; done
[ "$(grep -c '^listening' "$work/echo")" = 3 ] || fail "echo_server did not start: $(cat "$work/echo")"
tcp=$(grep '^listening tcp' "$work/echo" | cut -d' ' -f3)
ws=$(grep '^listening ws' "$work/echo" | cut -d' ' -f3)
quic=$(grep '^listening quic' "$work/echo" | cut -d' ' -f3)
for client in "tcp tcp://$tcp" "websocket ws://${ws%%/*}/ws" "quic quic://$quic"; do
  set -- $client
  "$bin/echo_client_$1" "$2" >"$work/client" || fail "echo_client_$1 exited non-zero"
  grep -q "response: What time is it?" "$work/client" || fail "echo_client_$1: response"
  [ "$(grep -c '^echo: ' "$work/client")" = 2 ] || fail "echo_client_$1: echoes"
  grep -q "^disconnected" "$work/client" || fail "echo_client_$1: no clean disconnect"
done
[ "$(grep -c '^connected: .* over tcp$' "$work/echo")" = 1 ] || fail "echo_server: no tcp connection seen"
[ "$(grep -c '^connected: .* over ws$' "$work/echo")" = 1 ] || fail "echo_server: no ws connection seen"
[ "$(grep -c '^connected: .* over quic$' "$work/echo")" = 1 ] || fail "echo_server: no quic connection seen"

"$bin/chat_server" 127.0.0.1:0 >"$work/chat" &
pids+=($!)
wait_line "$work/chat" || fail "chat_server did not start"
chat=$(cut -d' ' -f3 "$work/chat")
/usr/bin/python3 - "$chat" <<'PY' || fail "chat_server: room message not delivered"
import socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
def pkt(i, text):
    b = text.encode()
    return struct.pack(">BBBBIHIH", 1, 0, 0, 0, i, 0, len(b), 0) + b
def read(s):
    h = b""
    while len(h) < 16: h += s.recv(16 - len(h))
    ext, n = struct.unpack(">H", h[8:10])[0], struct.unpack(">I", h[10:14])[0]
    body = b""
    while len(body) < ext + n: body += s.recv(ext + n - len(body))
    return body[ext:].decode()
a = socket.create_connection((host, int(port)), timeout=5)
b = socket.create_connection((host, int(port)), timeout=5)
a.sendall(pkt(1, "/join lobby")); assert read(a) == "joined lobby"
b.sendall(pkt(1, "/join lobby")); assert read(b) == "joined lobby"
a.sendall(pkt(2, "hi all"))
got = read(b)
assert got.endswith(": hi all") and got.startswith("[lobby]"), got
PY
# cluster_chat: two nodes on different ports share a room through a nats-server.
command -v nats-server >/dev/null || PATH=$PATH:/usr/sbin
command -v nats-server >/dev/null || fail "nats-server is not installed (scripts/setup.sh installs it)"
nport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -a 127.0.0.1 -p "$nport" >"$work/nats" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "Listening for client connections" "$work/nats" && break; sleep 0.05; done
for n in 1 2; do
  "$bin/cluster_chat" "nats://127.0.0.1:$nport" 127.0.0.1:0/chat 127.0.0.1:0 "node-$n" >"$work/cc$n" &
  pids+=($!)
  for _ in $(seq 100); do [ "$(grep -c '^listening' "$work/cc$n")" -ge 2 ] && break; sleep 0.05; done
  grep -q '^listening tcp' "$work/cc$n" || fail "cluster_chat node-$n did not start"
done
/usr/bin/python3 "$(dirname "$0")/../cli/chat_cluster.py" room 2 "$(grep '^listening tcp' "$work/cc1" | cut -d' ' -f3)" \
  "$(grep '^listening tcp' "$work/cc2" | cut -d' ' -f3)" >/dev/null || fail "cluster_chat: room message not shared"
echo "examples: 1 passed, 0 failed"

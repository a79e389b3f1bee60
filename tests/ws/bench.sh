#!/usr/bin/env bash
# Load measurement, one run, same load generator (ws_load) against:
#   the ws transport alone (ws_echo_fixture, 1 loop), `msgtrans serve --ws` (runtime,
#   1 loop), a Node ws echo server, and a raw TCP byte echo (the syscall limit).
# Usage: tests/ws/bench.sh [BUILD_DIR] [SECONDS]   (default build, 3 s per point)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../../build}/bin"
secs="${2:-3}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start NAME CMD... : runs CMD, waits for its "listening" line, sets $port.
start() {
  local out; out=$(mktemp)
  "$@" >"$out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    if grep -q '^listening' "$out"; then break; fi
    sleep 0.05
  done
  port=$(sed -n 's/^listening [a-z]* [^:]*:\([0-9]*\).*/\1/p' "$out" | head -1)
}

start "$bin/ws_echo_fixture" --bind 127.0.0.1:0 --path /bench --ping-ms 0; fixture=$port
start "$bin/msgtrans" serve --ws 127.0.0.1:0/bench --threads 1 --ws-keep-alive-interval 0; serve=$port
start node "$here/node_echo_server.mjs"; nodews=$port
start "$bin/ws_load" echo-server 0; raw=$port

for point in "100 1 512" "10 64 64" "1 1 64"; do
  set -- $point
  echo "== $1 conns x $2 in flight x $3 B"
  "$bin/ws_load" raw 127.0.0.1 "$raw" - "$1" "$2" "$3" "$secs" | sed 's/^/raw-tcp-echo  /'
  "$bin/ws_load" ws 127.0.0.1 "$fixture" /bench "$1" "$2" "$3" "$secs" | sed 's/^/ws-transport  /'
  "$bin/ws_load" ws 127.0.0.1 "$serve" /bench "$1" "$2" "$3" "$secs" | sed 's/^/serve-ws      /'
  "$bin/ws_load" ws 127.0.0.1 "$nodews" / "$1" "$2" "$3" "$secs" | sed 's/^/node-ws       /'
done

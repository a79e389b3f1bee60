#!/usr/bin/env bash
# Idle-connection scale of one `msgtrans serve` process, TCP and WebSocket.
#   bench/conn_scale.sh [-n CONNECTIONS]   (default 19000: the fd limit here is 20,000)
# Starts the server (one thread, one process), opens N idle connections with
# build/bin/conn_scale, and prints/records the server's RSS per connection. Writes
# docs/bench/conn_scale.jsonl (one JSON line per protocol).
#
# Past 20,000 connections one process runs out of file descriptors (the hard limit is
# fixed here): that needs `msgtrans serve --workers N` (SO_REUSEPORT workers, not built
# yet) and several conn_scale processes, each under its own 20k limit.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
n=19000
while getopts "n:" opt; do
  case "$opt" in
    n) n="$OPTARG" ;;
    *) echo "usage: $0 [-n CONNECTIONS]" >&2; exit 2 ;;
  esac
done
bin="$root/build/bin"
for b in msgtrans conn_scale; do
  [ -x "$bin/$b" ] || { echo "conn_scale: $bin/$b missing: cmake --build build -j2 --target msgtrans_cli conn_scale" >&2; exit 1; }
done

work="$(mktemp -d /tmp/msgtrans-connscale.XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; }
trap cleanup EXIT INT TERM

mkdir -p docs/bench
out="docs/bench/conn_scale.jsonl"
: >"$out"
for proto in tcp ws; do
  if [ "$proto" = tcp ]; then
    "$bin/msgtrans" serve --tcp 127.0.0.1:0 --threads 1 --max-connections $((n + 100)) >"$work/serve.log" 2>&1 &
  else
    # No pings while idle: the tool holds the connections without answering them.
    "$bin/msgtrans" serve --ws 127.0.0.1:0/ --threads 1 --max-connections $((n + 100)) \
      --ws-ping-interval 0 >"$work/serve.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do grep -q '^listening' "$work/serve.log" && break; sleep 0.1; done
  a="$(awk '$1 == "listening" { print $3; exit }' "$work/serve.log")"
  a="${a%%/*}"
  sleep 0.5
  args=("$a" -n "$n" --pid "$pid" --hold 2)
  [ "$proto" = ws ] && args+=(--ws /)
  echo "conn_scale: $proto $a, $n connections" >&2
  line="$("$bin/conn_scale" "${args[@]}" --json || true)"
  echo "  $line" >&2
  echo "$line" >>"$out"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
  sleep 2  # let the TIME_WAIT/closing sockets of this round drain a little
done
echo "conn_scale: wrote $out" >&2

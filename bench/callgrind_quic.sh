#!/usr/bin/env bash
# Instructions per message of a QUIC echo server (1 thread) under callgrind: `msgtrans serve
# --quic` or the limit, bench/quic_raw_echo. Two runs of `msgtrans bench` (C connections x K
# in flight x 64 B) of D1 and D2 seconds; (Ir2 - Ir1) / (messages2 - messages1), so start-up,
# handshakes and shutdown cancel out. Deterministic enough to compare two builds or the two
# servers on a noisy machine, which timings are not. Under callgrind the server is ~50x slower,
# so it sees bigger batches than at full speed; compare servers within one setting only.
#
#   bench/callgrind_quic.sh [-s msgtrans|raw] [-c C] [-k K] [-a D1] [-b D2] [-o FILE]
# Prints "Ir/message server=.. C=.. K=..: N". -o keeps the second run's callgrind file.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
server=msgtrans c=1 k=32 d1=2 d2=6 keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    -s) server="$2"; shift 2 ;; -c) c="$2"; shift 2 ;; -k) k="$2"; shift 2 ;;
    -a) d1="$2"; shift 2 ;; -b) d2="$2"; shift 2 ;; -o) keep="$2"; shift 2 ;;
    *) echo "usage: $0 [-s msgtrans|raw] [-c C] [-k K] [-a D1] [-b D2] [-o FILE]" >&2; exit 2 ;;
  esac
done
bin="$root/build/bin"
work="$(mktemp -d /tmp/msgtrans-cgq.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$bin/msgtrans" cert --out-cert "$work/cert.pem" --out-key "$work/key.pem" --name localhost 2>/dev/null
run() {  # run SECS: prints "IR MESSAGES"
  local cmd
  if [ "$server" = raw ]; then cmd=("$bin/quic_raw_echo" 127.0.0.1 0 "$work/cert.pem" "$work/key.pem")
  else cmd=("$bin/msgtrans" serve --quic 127.0.0.1:0 --threads 1 -q); fi
  rm -f "$work"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "${cmd[@]}" >"$work/out" 2>"$work/err" &
  local pid=$!
  for _ in $(seq 600); do grep -q '^listening quic' "$work/out" 2>/dev/null && break; sleep 0.1; done
  local a
  a=$(awk '$1 == "listening" && $2 == "quic" {print $3; exit}' "$work/out")
  [ -n "$a" ] || { echo "callgrind_quic: server did not start: $(cat "$work/err")" >&2; exit 1; }
  local m
  m=$("$bin/msgtrans" bench "quic://$a" --insecure -c "$c" -k "$k" -s 64 -d "$1" -w 0 --connect-timeout 60 --json -q |
      /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
  kill -INT "$pid"
  wait "$pid" || true
  [ -n "$keep" ] && cp "$work"/cg.* "$keep"
  echo "$(callgrind_annotate "$work"/cg.* 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}') $m"
}
read -r ir1 m1 < <(run "$d1")
read -r ir2 m2 < <(run "$d2")
echo "Ir/message server=$server C=$c K=$k: $(( (ir2 - ir1) / (m2 - m1) )) (messages $m1 / $m2)"

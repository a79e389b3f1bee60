#!/usr/bin/env bash
# Instructions per message of `msgtrans serve` (TCP, 1 thread), under callgrind: the
# difference between a run of N1 and one of N2 64-byte echo requests over one connection,
# K in flight, divided by N2 - N1 (start-up and shutdown cancel out). Deterministic enough
# to compare two builds or two settings on a noisy machine, which timings are not.
#
#   bench/callgrind_echo.sh [-k K] [-a N1] [-b N2] [--auth]
# --auth: the server checks a JWT (--jwt-secret-file) and the driver presents one first.
# Prints "Ir/message K=.. auth=..: N". Needs valgrind and a release build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
k=64 n1=2000 n2=12000 auth=0
while [ $# -gt 0 ]; do
  case "$1" in
    -k) k="$2"; shift 2 ;; -a) n1="$2"; shift 2 ;; -b) n2="$2"; shift 2 ;; --auth) auth=1; shift ;;
    *) echo "usage: $0 [-k K] [-a N1] [-b N2] [--auth]" >&2; exit 2 ;;
  esac
done
work="$(mktemp -d /tmp/msgtrans-cg.XXXXXX)"
trap 'rm -rf "$work"' EXIT
secret="callgrind-secret-0123456789abcdef0123"
ir() {  # ir N: the server's total instructions for N requests
  local args=(serve --tcp 127.0.0.1:0 --threads 1 -q) tok=()
  if [ "$auth" = 1 ]; then
    printf '%s' "$secret" >"$work/secret"
    args+=(--jwt-secret-file "$work/secret")
    tok=("$(/usr/bin/python3 -c 'import jwt,sys,time; print(jwt.encode({"sub":"u","exp":int(time.time())+3600}, sys.argv[1], algorithm="HS256"))' "$secret")")
  fi
  rm -f "$work"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$root/build/bin/msgtrans" "${args[@]}" >"$work/out" 2>"$work/err" &
  local pid=$!
  for _ in $(seq 600); do grep -q '^listening' "$work/out" 2>/dev/null && break; sleep 0.1; done
  local port
  port=$(awk '$2 == "tcp" {print $3}' "$work/out" | cut -d: -f2)
  [ -n "$port" ] || { echo "callgrind_echo: serve did not start: $(cat "$work/err")" >&2; exit 1; }
  /usr/bin/python3 "$root/bench/drive_requests.py" "$port" "$1" "$k" "${tok[@]}" >/dev/null
  kill -INT "$pid"
  wait "$pid" || true
  callgrind_annotate "$work"/cg.* 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}
a=$(ir "$n1")
b=$(ir "$n2")
echo "Ir/message K=$k auth=$auth: $(( (b - a) / (n2 - n1) ))"

#!/usr/bin/env bash
# msgtrans QUIC against its limit (bench/quic_raw_echo.cpp), in interleaved pairs on the same
# client: for each round and workload, one run on the raw echo and one on `msgtrans serve
# --quic --threads T`, back to back, so both see the same machine load. Prints one line per
# pair (rate ratio, p50 / p99.9 ratios) and the median ratio per workload, with the load
# average before and after. Ratios are the claim; absolute numbers drift on a shared machine.
#
#   bench/quic_pairs.sh [-n ROUNDS] [-d SECS] [-w WARMUP] [-t THREADS] [-W "w1 w2 ..."]
# Workloads: 1x32x64 (1 conn x 32 in flight x 64 B), lockstep (1 x 1 x 64 B), 100x1x64, bulk
# (1 x 4 x 1 MiB). Needs a release build (msgtrans_cli, quic_raw_echo).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/bin"
rounds=3 dur=3 warm=1 threads=1 workloads="1x32x64 lockstep 100x1x64 bulk"
while getopts "n:d:w:t:W:" opt; do
  case "$opt" in
    n) rounds="$OPTARG" ;; d) dur="$OPTARG" ;; w) warm="$OPTARG" ;; t) threads="$OPTARG" ;; W) workloads="$OPTARG" ;;
    *) echo "usage: $0 [-n ROUNDS] [-d SECS] [-w WARMUP] [-t THREADS] [-W workloads]" >&2; exit 2 ;;
  esac
done
for b in msgtrans quic_raw_echo; do
  [ -x "$bin/$b" ] || { echo "quic_pairs: $bin/$b missing (cmake --build --preset release --target msgtrans_cli quic_raw_echo)" >&2; exit 1; }
done
work="$(mktemp -d /tmp/msgtrans-qpairs.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
start() {  # start NAME CMD...: waits for the "listening quic" line
  local name="$1"; shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^listening quic' "$work/$name.log" && return 0; sleep 0.1; done
  echo "quic_pairs: $name did not start: $(cat "$work/$name.log")" >&2; exit 1
}
addr() { awk '$1 == "listening" && $2 == "quic" { print $3; exit }' "$work/$1.log"; }
"$bin/msgtrans" cert --out-cert "$work/cert.pem" --out-key "$work/key.pem" --name localhost 2>/dev/null
start raw "$bin/quic_raw_echo" 127.0.0.1 0 "$work/cert.pem" "$work/key.pem"
start mt "$bin/msgtrans" serve --quic 127.0.0.1:0 --threads "$threads" -q
args_of() {
  case "$1" in
    1x32x64) echo "-c 1 -k 32 -s 64" ;; lockstep) echo "-c 1 -k 1 -s 64" ;; 100x1x64) echo "-c 100 -k 1 -s 64" ;;
    bulk) echo "-c 1 -k 4 -s 1048576" ;; *) echo "quic_pairs: unknown workload $1" >&2; exit 2 ;;
  esac
}
one() {  # one SERVER WORKLOAD: prints "rate p50 p999 mbps"
  # shellcheck disable=SC2046
  "$bin/msgtrans" bench "quic://$(addr "$1")" --insecure $(args_of "$2") -d "$dur" -w "$warm" --json -q |
    /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); l=j["latency_us"]
print(j["messages_per_sec"], l["p50"], l["p999"], j["mb_per_sec"])'
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for w in $workloads; do : >"$work/ratios.$w"; done
for r in $(seq "$rounds"); do
  for w in $workloads; do
    read -r rr rp50 rp999 rmb < <(one raw "$w")
    read -r mr mp50 mp999 mmb < <(one mt "$w")
    /usr/bin/python3 - "$w" "$r" "$rr" "$rp50" "$rp999" "$rmb" "$mr" "$mp50" "$mp999" "$mmb" "$work/ratios.$w" <<'EOF'
import sys
w, r, rr, rp50, rp999, rmb, mr, mp50, mp999, mmb, f = sys.argv[1:]
rr, rp50, rp999, rmb, mr, mp50, mp999, mmb = map(float, (rr, rp50, rp999, rmb, mr, mp50, mp999, mmb))
ratio = mr / rr if rr else 0
print(f"{w:9s} round {r}: raw {rr:10,.0f} msg/s p50 {rp50:7.1f} p99.9 {rp999:8.1f} us {rmb*8/1000:5.2f} Gbit/s | "
      f"msgtrans {mr:10,.0f} msg/s p50 {mp50:7.1f} p99.9 {mp999:8.1f} us {mmb*8/1000:5.2f} Gbit/s | "
      f"rate {ratio:.2f}x  p50 {mp50/rp50 if rp50 else 0:.2f}x  p99.9 {mp999/rp999 if rp999 else 0:.2f}x  "
      f"load {open('/proc/loadavg').read().split()[0]}")
open(f, "a").write(f"{ratio} {mp50/rp50 if rp50 else 0} {mp999/rp999 if rp999 else 0}\n")
EOF
  done
done
for w in $workloads; do
  /usr/bin/python3 - "$w" "$work/ratios.$w" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[2]) if l.strip()]
med = [statistics.median(c) for c in zip(*rows)]
print(f"median {sys.argv[1]:9s} over {len(rows)} pairs: rate {med[0]:.2f}x  p50 {med[1]:.2f}x  p99.9 {med[2]:.2f}x")
EOF
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# Soak test (not part of CI): mixed traffic over TCP, WebSocket and QUIC against one
# `msgtrans serve`, with connections churning (each load run opens fresh connections),
# for SECONDS (default 600). Samples the server's RSS and open descriptors every second.
# Writes docs/reliability/soak.csv and, when gnuplot is present, docs/reliability/soak-rss.png,
# and prints: RSS at start / end / max, descriptors at start and end, requests answered
# and errors. Usage: scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
bin=build/bin/msgtrans
out=docs/reliability
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$bin" serve --tcp 127.0.0.1:0 --ws 127.0.0.1:0/soak --quic 127.0.0.1:0 --threads 1 >"$work/serve" 2>"$work/serve.err" &
spid=$!
pids+=($spid)
for _ in $(seq 100); do [ "$(wc -l <"$work/serve")" -ge 3 ] && break; sleep 0.1; done
tcp=$(awk '$2=="tcp"{print $3}' "$work/serve")
ws=$(awk '$2=="ws"{print $3}' "$work/serve")
quic=$(awk '$2=="quic"{print $3}' "$work/serve")
[ -n "$tcp" ] && [ -n "$ws" ] && [ -n "$quic" ] || { echo "soak: server did not start"; cat "$work/serve.err"; exit 1; }

rss() { awk '/VmRSS/{print $2}' "/proc/$spid/status"; }
fds() { ls "/proc/$spid/fd" | wc -l; }
fd_start=$(fds)
echo "t,rss_kb,fds" >"$out/soak.csv"
end=$(( $(date +%s) + seconds ))

# Churning load: short runs, so connections open and close all the time.
load() {  # URL ARGS...
  local url=$1; shift
  local i=0
  while [ "$(date +%s)" -lt "$end" ]; do
    "$bin" bench "$url" -d 5 -w 0 -q --json --insecure "$@" >>"$work/results.$BASHPID" 2>/dev/null || true
    i=$((i + 1))
  done
}
load "tcp://$tcp" -c 20 -k 4 -s 256 & pids+=($!)
load "ws://$ws" -c 20 -k 4 -s 512 & pids+=($!)
load "quic://$quic" -c 4 -k 8 -s 1024 & pids+=($!)

t0=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
  echo "$(( $(date +%s) - t0 )),$(rss),$(fds)" >>"$out/soak.csv"
  sleep 1
done
wait "${pids[@]:1}" 2>/dev/null || true
sleep 2  # let the last connections close
fd_end=$(fds)
messages=$(cat "$work"/results.* | grep -o '"messages":[0-9]*' | cut -d: -f2 | paste -sd+ | bc)
errors=$(cat "$work"/results.* | grep -o '"errors":[0-9]*' | cut -d: -f2 | paste -sd+ | bc)
runs=$(cat "$work"/results.* | grep -c '"messages"')
rss_first=$(sed -n 2p "$out/soak.csv" | cut -d, -f2)
rss_last=$(tail -1 "$out/soak.csv" | cut -d, -f2)
rss_max=$(tail -n +2 "$out/soak.csv" | cut -d, -f2 | sort -n | tail -1)
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal png size 900,400
set output "$out/soak-rss.png"
set datafile separator ","
set xlabel "seconds"
set ylabel "server RSS (KiB)"
set title "msgtrans serve RSS under churning mixed load (tcp + ws + quic)"
plot "$out/soak.csv" using 1:2 skip 1 with lines title "RSS"
GP
fi
echo "soak: ${seconds}s, ${runs} load runs, ${messages} requests answered, ${errors} errors"
echo "soak: RSS start ${rss_first} KiB, end ${rss_last} KiB, max ${rss_max} KiB"
echo "soak: descriptors start ${fd_start}, end ${fd_end}"

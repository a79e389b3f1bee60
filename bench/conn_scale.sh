#!/usr/bin/env bash
# Idle-connection scale of `msgtrans serve`, TCP and WebSocket.
#
#   bench/conn_scale.sh [-n CONNECTIONS] [-w WORKERS] [-c CLIENTS] [-P "tcp ws"] [-o FILE] [-a]
#
# Default (-n 19000, no -w, one client): one server process (one thread) and one
# build/bin/conn_scale process, which opens N idle connections and reports the server's
# RSS per connection, the kernel's share, the time taken and a fresh request.
#
# Past 20,000 connections (the per-process file-descriptor limit here, which cannot be
# raised): -w W runs `msgtrans serve --workers W` (W processes on one SO_REUSEPORT port,
# one thread and at most 19,800 connections each) and -c C runs C conn_scale processes
# (N/C connections each, at most 19,900; disjoint source addresses 127.1.x.y, 5,000
# connections per address). The script then measures, for all of them together: server
# RSS summed over the workers, connections held per worker (open descriptors), the
# kernel's counters (/proc/net/sockstat, slab), the time until every connection is open
# and accepted (no accept queue holds any), and a request on a fresh connection while
# holding them; then each client checks that none of its connections was closed. A run stops early
# when MemAvailable falls under 1.5 GiB ("limit" in the record).
#
# Writes one JSON line per protocol to FILE (default docs/bench/conn_scale.jsonl; -a
# appends instead of replacing it).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
n=19000
workers=0
clients=1
protos="tcp ws"
out="docs/bench/conn_scale.jsonl"
append=0
while getopts "n:w:c:P:o:a" opt; do
  case "$opt" in
    n) n="$OPTARG" ;;
    w) workers="$OPTARG" ;;
    c) clients="$OPTARG" ;;
    P) protos="$OPTARG" ;;
    o) out="$OPTARG" ;;
    a) append=1 ;;
    *) echo "usage: $0 [-n CONNECTIONS] [-w WORKERS] [-c CLIENTS] [-P \"tcp ws\"] [-o FILE] [-a]" >&2; exit 2 ;;
  esac
done
bin="$root/build/bin"
for b in msgtrans conn_scale; do
  [ -x "$bin/$b" ] || { echo "conn_scale: $bin/$b missing: cmake --build build -j2 --target msgtrans_cli conn_scale" >&2; exit 1; }
done

work="$(mktemp -d /tmp/msgtrans-connscale.XXXXXX)"
pid=""
cpids=()
cleanup() {
  for p in "${cpids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$(dirname "$out")"
[ "$append" = 1 ] || : >"$out"

mem_available_mib() { awk '$1 == "MemAvailable:" { print int($2 / 1024) }' /proc/meminfo; }
rss_kib() { local t=0 p; for p in "$@"; do t=$((t + $(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $t; }
sockstat() { awk '$1 == "TCP:" { for (i = 2; i < NF; i += 2) if ($i == "'"$1"'") print $(i + 1) }' /proc/net/sockstat; }
# Slab caches that grow with each TCP connection (both ends live here).
slab_bytes() {
  awk '$1 ~ /^(TCP|sock_inode_cache|request_sock_TCP|filp|dentry|tcp_bind_bucket|eventpoll_epi|eventpoll_pwq)$/ { t += $2 * $4 } END { print t + 0 }' /proc/slabinfo 2>/dev/null || echo -1
}
now_ns() { date +%s%N; }
start_server() {  # start_server PROTO ARGS...: sets pid and addr
  local proto=$1
  shift
  if [ "$proto" = tcp ]; then
    "$bin/msgtrans" serve --tcp 127.0.0.1:0 "$@" >"$work/serve.log" 2>"$work/serve.err" &
  else
    # No pings while idle: the tool holds the connections without answering them.
    "$bin/msgtrans" serve --ws 127.0.0.1:0/ --ws-keep-alive-interval 0 "$@" >"$work/serve.log" 2>"$work/serve.err" &
  fi
  pid=$!
  for _ in $(seq 200); do grep -q '^listening' "$work/serve.log" && break; sleep 0.1; done
  addr="$(awk '$1 == "listening" { print $3; exit }' "$work/serve.log")"
  addr="${addr%%/*}"
  [ -n "$addr" ] || { echo "conn_scale: server did not start: $(cat "$work/serve.err")" >&2; exit 1; }
}
stop_server() {
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
}

for proto in $protos; do
  if [ "$workers" = 0 ] && [ "$clients" = 1 ]; then
    # One server process, one client process: conn_scale measures everything itself.
    start_server "$proto" --threads 1 --max-connections $((n + 100))
    sleep 0.5
    args=("$addr" -n "$n" --pid "$pid" --hold 2)
    [ "$proto" = ws ] && args+=(--ws /)
    echo "conn_scale: $proto $addr, $n connections" >&2
    line="$("$bin/conn_scale" "${args[@]}" --json || true)"
    echo "  $line" >&2
    echo "$line" >>"$out"
    stop_server
    sleep 2  # let the TIME_WAIT/closing sockets of this round drain a little
    continue
  fi

  # Several processes on each side.
  [ "$workers" -ge 1 ] || { echo "conn_scale: -c needs -w (one server process holds at most ~19,900)" >&2; exit 2; }
  per=$(((n + clients - 1) / clients))
  [ "$per" -le 19900 ] || { echo "conn_scale: $per connections per client process is over the fd limit: raise -c" >&2; exit 2; }
  per_worker=$(((n + workers - 1) / workers))
  [ "$per_worker" -le 18500 ] || echo "conn_scale: warning: ~$per_worker connections per worker is close to its 19,800 limit: raise -w" >&2
  sources=$(((per + 4999) / 5000))
  start_server "$proto" --workers "$workers" --threads 1 --max-connections 19800 --idle-timeout 900 --log-level warn
  sleep 0.5
  wpids=($(pgrep -P "$pid"))
  fds_before=0
  for p in "${wpids[@]}"; do fds_before=$((fds_before + $(ls "/proc/$p/fd" | wc -l))); done
  rss_before=$(rss_kib "${wpids[@]}")
  inuse_before=$(sockstat inuse)
  mem_before=$(sockstat mem)
  slab_before=$(slab_bytes)
  echo "conn_scale: $proto $addr, $n connections, $workers workers (${wpids[*]}), $clients client processes" >&2
  t0=$(now_ns)
  cpids=()
  for ((i = 0; i < clients; i++)); do
    k=$per
    [ $i = $((clients - 1)) ] && k=$((n - per * (clients - 1)))
    args=("$addr" -n "$k" --src-offset $((i * sources)) --per-source 5000 --timeout 900 --hold-until-signal)
    [ "$proto" = ws ] && args+=(--ws /)
    "$bin/conn_scale" "${args[@]}" >"$work/c$i.out" 2>&1 &
    cpids+=($!)
  done
  # Wait for every client's open report; watch memory meanwhile.
  limit=""
  mem_min=$(mem_available_mib)
  while :; do
    reported=$(cat "$work"/c*.out 2>/dev/null | grep -c '"opened"' || true)
    [ "$reported" -ge "$clients" ] && break
    m=$(mem_available_mib)
    [ "$m" -lt "$mem_min" ] && mem_min=$m
    if [ "$m" -lt 1536 ]; then limit="memory: MemAvailable under 1.5 GiB"; break; fi
    for ((i = 0; i < clients; i++)); do
      if ! kill -0 "${cpids[$i]}" 2>/dev/null && ! grep -q '"opened"' "$work/c$i.out"; then
        limit="client process $i ended early: $(head -c 300 "$work/c$i.out")"
      fi
    done
    [ -z "$limit" ] || break
    sleep 0.2
  done
  t_open=$(now_ns)
  # Accepted: no listening socket of the port has a connection waiting in its queue.
  port="${addr##*:}"
  for _ in $(seq 600); do
    q=$(ss -Htln "sport = :$port" | awk '{ s += $2 } END { print s + 0 }')
    [ "$q" = 0 ] && break
    sleep 0.1
  done
  t_accept=$(now_ns)
  sleep 2  # let the server settle before reading its memory
  wpids_now=($(pgrep -P "$pid"))
  rss_after=$(rss_kib "${wpids_now[@]}")
  inuse_after=$(sockstat inuse)
  mem_after=$(sockstat mem)
  slab_after=$(slab_bytes)
  held=()
  for p in "${wpids_now[@]}"; do held+=($(($(ls "/proc/$p/fd" | wc -l) - fds_before / ${#wpids[@]}))); done
  m=$(mem_available_mib)
  [ "$m" -lt "$mem_min" ] && mem_min=$m
  # A fresh request while holding them all (conn_scale -n 0: connect, one request, its
  # response; the round trip in microseconds, -1 if not answered).
  fargs=("$addr" -n 0 --hold 0 --json)
  [ "$proto" = ws ] && fargs+=(--ws /)
  fresh_us=$("$bin/conn_scale" "${fargs[@]}" 2>/dev/null | sed -n 's/.*"fresh_request_us":\(-\{0,1\}[0-9]*\).*/\1/p')
  fresh_us=${fresh_us:--1}
  for p in "${cpids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${cpids[@]}"; do wait "$p" 2>/dev/null || true; done
  cpids=()
  opened=0 failed=0 dropped=0
  for f in "$work"/c*.out; do
    opened=$((opened + $(sed -n 's/.*"opened":\([0-9]*\).*/\1/p' "$f" | head -1)))
    failed=$((failed + $(sed -n 's/.*"failed":\([0-9]*\).*/\1/p' "$f" | head -1)))
    d=$(sed -n 's/.*"dropped":\([0-9]*\).*/\1/p' "$f" | head -1)
    dropped=$((dropped + ${d:-0}))
  done
  restarts=$(grep -c 'restarting it' "$work/serve.err" || true)
  stop_server
  rm -f "$work"/c*.out
  held_sum=0 held_min=999999 held_max=0
  for h in "${held[@]}"; do
    held_sum=$((held_sum + h))
    [ "$h" -lt "$held_min" ] && held_min=$h
    [ "$h" -gt "$held_max" ] && held_max=$h
  done
  nd=$((opened > 0 ? opened : 1))
  line=$(awk -v proto="$proto" -v w="$workers" -v c="$clients" -v req="$n" -v op="$opened" -v fa="$failed" -v dr="$dropped" \
    -v held="$held_sum" -v hmin="$held_min" -v hmax="$held_max" -v restarts="$restarts" \
    -v topen="$(((t_open - t0) / 1000000))" -v tacc="$(((t_accept - t0) / 1000000))" -v rb="$rss_before" -v ra="$rss_after" \
    -v ib="$inuse_before" -v ia="$inuse_after" -v mb="$mem_before" -v ma="$mem_after" -v sb="$slab_before" -v sa="$slab_after" \
    -v nd="$nd" -v fresh="$fresh_us" -v memmin="$mem_min" -v limit="$limit" 'BEGIN {
      printf "{\"proto\":\"%s\",\"workers\":%d,\"client_processes\":%d,\"requested\":%d,\"opened\":%d,\"failed\":%d,\"dropped\":%d,", proto, w, c, req, op, fa, dr
      printf "\"held_by_workers\":%d,\"held_per_worker_min\":%d,\"held_per_worker_max\":%d,\"worker_restarts\":%d,", held, hmin, hmax, restarts
      printf "\"open_seconds\":%.3f,\"accept_seconds\":%.3f,", topen / 1000, tacc / 1000
      printf "\"server_rss_kib_before\":%d,\"server_rss_kib_after\":%d,\"server_rss_bytes_per_conn\":%.1f,", rb, ra, (ra - rb) * 1024 / nd
      printf "\"tcp_inuse_delta\":%d,\"tcp_mem_bytes_per_conn\":%.1f,", ia - ib, (ma - mb) * 4096 / nd
      printf "\"slab_bytes_per_conn_both_ends\":%.1f,\"slab_bytes_total_delta\":%.0f,", (sb >= 0 ? (sa - sb) / nd : -1), sa - sb
      printf "\"fresh_request_us\":%d,\"mem_available_mib_min\":%d,\"limit\":\"%s\"}\n", fresh, memmin, limit
    }')
  echo "  $line" >&2
  echo "$line" >>"$out"
  sleep 5  # let the closed sockets of this round drain
done
echo "conn_scale: wrote $out" >&2

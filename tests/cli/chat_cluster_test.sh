#!/usr/bin/env bash
# serve --mode chat on the library's rooms, across processes: --workers 2 shares one room
# through the supervisor's private nats-server (stopped last); two serve processes share a
# room through a nats-server of this test (--nats); bad room names get an error and the
# connection works on; an unreachable --nats fails the start, naming the URL.
# Usage: chat_cluster_test.sh BIN_DIR
set -euo pipefail
bin="$1/msgtrans"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; for f in "$work"/*.err; do [ -s "$f" ] && { echo "== $f"; tail -20 "$f"; }; done; exit 1; }
py() { /usr/bin/python3 "$here/chat_cluster.py" "$@"; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for FILE PATTERN: until a line matches (10 s)
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
serve() {  # serve NAME ARGS...: serve in the background, wait for its listening line
  local name=$1; shift
  "$bin" serve "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "${name}_pid=$!"
  wait_for "$work/$name.out" '^listening tcp' || fail "$name did not start: $(cat "$work/$name.out")"
  eval "${name}_addr=$(grep '^listening tcp' "$work/$name.out" | cut -d' ' -f3)"
}
stop() { kill -TERM "$1"; wait "$1" || fail "serve exit status"; }
command -v nats-server >/dev/null || PATH=$PATH:/usr/sbin
command -v nats-server >/dev/null || fail "nats-server is not installed (scripts/setup.sh installs it)"

# 1. --workers 2: eight members of one room, spread by the kernel over both workers.
serve workers --workers 2 --mode chat --tcp 127.0.0.1:0
grep -q 'private nats-server (pid [0-9]*) at nats://127.0.0.1:[0-9]* links' "$work/workers.err" || fail "no private nats-server line"
nats_pid=$(sed -n 's/.*private nats-server (pid \([0-9]*\)).*/\1/p' "$work/workers.err")
py room 8 "$workers_addr" || fail "--workers 2: room delivery"
stop "$workers_pid"
grep -q 'private nats-server stopped' "$work/workers.err" || fail "private nats-server not stopped"
w_line=$(grep -n 'all workers stopped' "$work/workers.err" | cut -d: -f1)
n_line=$(grep -n 'private nats-server stopped' "$work/workers.err" | cut -d: -f1)
[ -n "$w_line" ] && [ "$w_line" -lt "$n_line" ] || fail "nats-server not stopped last (after the workers)"
! kill -0 "$nats_pid" 2>/dev/null || fail "private nats-server $nats_pid still running"

# 2. Two serve processes on one nats-server of ours: a member on each.
nport=$(free_port)
nats-server -a 127.0.0.1 -p "$nport" >"$work/nats.err" 2>&1 &
pids+=($!)
wait_for "$work/nats.err" "Listening for client connections on 127.0.0.1:$nport" || fail "nats-server did not start"
serve a --mode chat --tcp 127.0.0.1:0 --nats "nats://127.0.0.1:$nport" --cluster-name test --node-name a --metrics 127.0.0.1:0 -q
serve b --mode chat --tcp 127.0.0.1:0 --nats "nats://127.0.0.1:1,nats://127.0.0.1:$nport" --cluster-name test --node-name b -q
py room 2 "$a_addr" "$b_addr" || fail "two servers on one NATS: room delivery"
wait_for "$work/a.out" '^metrics ' || fail "no metrics line"
url=$(grep '^metrics ' "$work/a.out" | cut -d' ' -f2)
/usr/bin/python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" "$url" >"$work/metrics"
grep -q '^msgtrans_cluster_state{state="connected"} 1$' "$work/metrics" || fail "cluster state not connected: $(grep cluster_state "$work/metrics")"
in=$(sed -n 's/^msgtrans_cluster_messages_in_total //p' "$work/metrics")
[ "${in:-0}" -ge 1 ] || fail "cluster_messages_in_total ${in:-missing}"

# 3. Bad room names, over the CLI.
py badname "$a_addr" || fail "bad room names"
stop "$a_pid"
stop "$b_pid"

# [cluster] in the config file; --nats overrides its servers.
closed=$(free_port)
printf '[listeners]\ntcp = ["127.0.0.1:0"]\n[cluster]\nnats = "nats://127.0.0.1:%s"\ncluster_name = "test"\nnode_name = "c"\nuser = ""\npassword = ""\ntoken = ""\n' "$closed" >"$work/c.toml"
serve c --config "$work/c.toml" --mode chat --nats "nats://127.0.0.1:$nport" -q
py room 1 "$c_addr" || fail "config + --nats: chat"
stop "$c_pid"
printf '[cluster]\nservers = ["x"]\n' >"$work/bad.toml"
set +e
"$bin" serve --config "$work/bad.toml" --tcp 127.0.0.1:0 2>"$work/bad.err"; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "unknown key 'cluster.servers'" "$work/bad.err" || fail "unknown [cluster] key: rc $rc $(cat "$work/bad.err")"

# 4. No NATS answering: serve exits non-zero, stderr names the URL; from --nats, and from
# the file's [cluster] (no flag overrides it there).
for how in "--nats nats://127.0.0.1:$closed" "--config $work/c.toml"; do
  set +e
  timeout 30 "$bin" serve --mode chat --tcp 127.0.0.1:0 $how >"$work/closed.out" 2>"$work/closed.err"
  rc=$?
  set -e
  [ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "serve $how with no NATS answering: exit $rc"
  grep -q "127.0.0.1:$closed" "$work/closed.err" || fail "serve $how: the error does not name the URL: $(cat "$work/closed.err")"
  ! grep -q '^listening' "$work/closed.out" || fail "serve $how: listening although the cluster did not start"
done
echo "chat_cluster: 4 passed, 0 failed"

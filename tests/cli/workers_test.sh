#!/usr/bin/env bash
# `msgtrans serve --workers 2`: both workers answer on the shared ports, a worker killed
# with SIGKILL is restarted (with a growing delay when it keeps dying) and service goes
# on, SIGTERM stops everything with exit code 0; startup errors end the supervisor.
# Usage: workers_test.sh BIN_DIR
set -euo pipefail
bin="$1/msgtrans"
work=$(mktemp -d)
pid=""
other=""
cleanup() {
  for p in $pid $other; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$work/err" 2>/dev/null || true; exit 1; }
# wait_for FILE REGEX [TRIES]: polls (every 0.05 s, 10 s by default) until a line matches.
wait_for() { for _ in $(seq "${3:-200}"); do grep -Eq "$2" "$1" && return 0; sleep 0.05; done; return 1; }

"$bin" serve --workers 2 --threads 1 --tcp 127.0.0.1:0 --ws 127.0.0.1:0/ws >"$work/out" 2>"$work/err" &
pid=$!
wait_for "$work/out" '^listening ws ' || fail "no listening lines: $(cat "$work/out")"
wait_for "$work/err" 'workers running' || fail "no 'workers running' line"
[ "$(grep -c '^listening tcp 127\.0\.0\.1:[0-9]*$' "$work/out")" = 1 ] || fail "tcp listening lines: $(cat "$work/out")"
[ "$(grep -c '^listening ws 127\.0\.0\.1:[0-9]*/ws$' "$work/out")" = 1 ] || fail "ws listening lines: $(cat "$work/out")"
tcp=$(awk '$2 == "tcp" { print $3 }' "$work/out")
ws=$(awk '$2 == "ws" { print $3 }' "$work/out")
[ "${tcp##*:}" != 0 ] || fail "port 0 not replaced by the real port"

# The supervisor's children are exactly the two workers it names.
read -r w1 w2 < <(sed -n 's/.*workers running (pids \([0-9]*\), \([0-9]*\)).*/\1 \2/p' "$work/err")
[ "$(pgrep -P "$pid" | sort | tr '\n' ' ')" = "$(printf '%s\n' "$w1" "$w2" | sort | tr '\n' ' ')" ] ||
  fail "children $(pgrep -P "$pid" | tr '\n' ' ') are not the workers $w1 $w2"

# Both workers take connections on the same ports (the kernel hashes 20 connections over
# two sockets: all on one has odds of 2^-19).
for i in $(seq 20); do
  out=$("$bin" request "tcp://$tcp" "hello $i") || fail "request $i"
  [ "$out" = "hello $i" ] || fail "request $i answered '$out'"
done
[ "$("$bin" request "ws://$ws" "over ws")" = "over ws" ] || fail "ws request"
grep -q '^serve worker 1: info: open session' "$work/err" || fail "worker 1 took no connection"
grep -q '^serve worker 2: info: open session' "$work/err" || fail "worker 2 took no connection"

# SIGKILL one worker: the supervisor restarts it, and requests are still answered.
kill -KILL "$w1"
wait_for "$work/err" "worker 1 \\(pid $w1\\) killed by signal 9; restarting it in" || fail "death of worker 1 not seen"
wait_for "$work/err" "worker 1 \\(pid [0-9]+\\) is up again" || fail "worker 1 not restarted"
kill -0 "$w1" 2>/dev/null && fail "killed worker $w1 still there"
w1b=$(sed -n 's/.*worker 1 (pid \([0-9]*\)) is up again.*/\1/p' "$work/err" | tail -1)
[ "$w1b" != "$w1" ] && [ "$(ps -o ppid= -p "$w1b" | tr -d ' ')" = "$pid" ] || fail "new worker $w1b is not a child of $pid"
for i in $(seq 10); do
  [ "$("$bin" request "tcp://$tcp" "again $i")" = "again $i" ] || fail "request $i after the restart"
done

# Killed again soon after its start: the next restart waits longer (no crash-loop spin).
kill -KILL "$w1b"
wait_for "$work/err" "worker 1 \\(pid $w1b\\) killed by signal 9" || fail "second death not seen"
for _ in $(seq 200); do [ "$(grep -c 'worker 1 (pid [0-9]*) is up again' "$work/err")" -ge 2 ] && break; sleep 0.05; done
[ "$(grep -c 'worker 1 (pid [0-9]*) is up again' "$work/err")" = 2 ] || fail "worker 1 not restarted the second time"
delays=$(sed -n 's/.*worker 1 (pid [0-9]*) killed by signal 9; restarting it in \([0-9.]*\) s/\1/p' "$work/err" | tr '\n' ' ')
read -r d1 d2 <<<"$delays"
awk -v a="$d1" -v b="$d2" 'BEGIN { exit !(b > a) }' || fail "restart delays did not grow: $delays"
[ "$("$bin" request "tcp://$tcp" "third")" = "third" ] || fail "request after the second restart"

# SIGTERM: every worker stops gracefully, the supervisor exits 0, no worker is left.
workers=$(pgrep -P "$pid" | tr '\n' ' ')
kill -TERM "$pid"
wait "$pid" || fail "supervisor did not exit 0 on SIGTERM"
pid=""
for w in $workers; do kill -0 "$w" 2>/dev/null && fail "worker $w still running after the supervisor stopped"; done
[ "$(grep -c 'info: SIGTERM, stopping gracefully' "$work/err")" = 2 ] || fail "workers did not stop gracefully"
grep -q 'all workers stopped' "$work/err" || fail "no final line"

# Startup errors end the supervisor with the worker's exit code, without restarts.
set +e
"$bin" serve --workers 2 --tcp 127.0.0.1:0 --mode bogus >/dev/null 2>"$work/err"; rc=$?
[ $rc = 1 ] || fail "a bad --mode should exit 1, got $rc"
grep -q 'restarting' "$work/err" && fail "a worker that cannot start was restarted"
"$bin" serve --workers 100000 --tcp 127.0.0.1:0 >/dev/null 2>"$work/err"; rc=$?
[ $rc = 1 ] || fail "--workers 100000 should exit 1 (at most 1024), got $rc"
"$bin" serve --workers 2 --quic 127.0.0.1:0 >/dev/null 2>"$work/err"; rc=$?
[ $rc = 1 ] || fail "--quic with --workers should exit 1 (not supported), got $rc"
set -e
# A port held by a listener without SO_REUSEPORT cannot be shared: exit 2, as without --workers.
"$bin" serve --tcp 127.0.0.1:0 --threads 1 >"$work/out2" 2>/dev/null &
other=$!
wait_for "$work/out2" '^listening' || fail "plain server did not start"
taken=$(awk '{ print $3 }' "$work/out2")
set +e
"$bin" serve --workers 2 --tcp "$taken" >/dev/null 2>"$work/err"; rc=$?
set -e
[ $rc = 2 ] || fail "binding a taken port should exit 2, got $rc"
kill -TERM "$other"
wait "$other" || true
other=""

# The same from a config file: `workers = 3`.
printf 'workers = 3\nthreads = 1\n[listeners]\ntcp = ["127.0.0.1:0"]\n' >"$work/serve.toml"
"$bin" serve --config "$work/serve.toml" >"$work/out" 2>"$work/err" &
pid=$!
wait_for "$work/err" 'workers running' || fail "workers from the config file did not start"
grep -q '3 workers running' "$work/err" || fail "workers = 3 not applied: $(grep running "$work/err")"
[ "$(pgrep -P "$pid" | wc -l)" = 3 ] || fail "not 3 worker processes"
[ "$("$bin" request "tcp://$(awk '{ print $3 }' "$work/out")" "cfg")" = "cfg" ] || fail "request (config file)"
kill -TERM "$pid"
wait "$pid" || fail "config-file supervisor did not exit 0"
pid=""
echo "workers: 1 passed, 0 failed"

#!/usr/bin/env bash
# The msgtrans tool end to end: serve on two ports, request and send, bad URLs, and a
# graceful stop on SIGTERM. Usage: cli_test.sh BIN_DIR
set -euo pipefail
bin="$1/msgtrans"
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work/err" 2>/dev/null || true; exit 1; }

"$bin" serve --tcp 127.0.0.1:0 --tcp 127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do [ "$(wc -l <"$work/out")" -ge 2 ] && break; sleep 0.05; done
[ "$(grep -c '^listening tcp 127.0.0.1:[0-9]*$' "$work/out")" = 2 ] || fail "listening lines: $(cat "$work/out")"
a=$(sed -n 1p "$work/out" | cut -d' ' -f3)
b=$(sed -n 2p "$work/out" | cut -d' ' -f3)
[ "${a##*:}" != 0 ] || fail "port 0 not replaced by the real port"

out=$("$bin" request "tcp://$a" "hello")
[ "$out" = hello ] || fail "request via first listener: '$out'"
out=$("$bin" request "tcp://$b" "zip me" --compress zlib --biz-type 9 --ext tag --json)
echo "$out" | grep -q '"biz_type":9' || fail "biz_type not echoed: $out"
echo "$out" | grep -q '"ext_header":"tag"' || fail "ext header not echoed: $out"
echo "$out" | grep -q '"payload":"zip me"' || fail "payload: $out"
"$bin" send "tcp://$a" "fire and forget" || fail "send"

set +e
"$bin" request "nope://x" "y" 2>/dev/null; [ $? = 1 ] || fail "bad scheme should exit 1"
"$bin" request "tcp://127.0.0.1:1" "y" 2>/dev/null; [ $? = 2 ] || fail "refused connect should exit 2"
"$bin" serve --tcp "$a" 2>/dev/null; [ $? = 2 ] || fail "bind conflict should exit 2"
# Durations must be finite seconds in 0..1e9 (found by fuzz_serve_config in the file form).
for v in inf nan -1 1e10; do
  # --ws-ping-interval and --ws-pong-timeout are the old names of the keep-alive flags.
  for flag in --idle-timeout --ws-keep-alive-interval --ws-keep-alive-timeout --ws-ping-interval --ws-pong-timeout; do
    "$bin" serve --tcp 127.0.0.1:0 "$flag" "$v" >/dev/null 2>"$work/dur"; [ $? = 1 ] || fail "$flag $v should exit 1"
    grep -q "expected seconds" "$work/dur" || fail "$flag $v: $(cat "$work/dur")"
  done
done
set -e

# The load generator against the same server: messages flow and no errors occur.
"$bin" bench "tcp://$a" -c 4 -k 8 -d 1 -w 0.2 -q --json >"$work/bench.json" || fail "bench exited non-zero"
grep -q '"errors":0' "$work/bench.json" || fail "bench reported errors: $(cat "$work/bench.json")"
grep -q '"messages":0,' "$work/bench.json" && fail "bench moved no messages"
"$bin" bench "tcp://$a" -m flood -c 2 -d 0.5 -w 0.1 -q --json >"$work/flood.json" || fail "flood bench"
"$bin" bench "tcp://$a" -m rate -r 2000 -c 2 -d 0.5 -w 0.1 -q --json >"$work/rate.json" || fail "rate bench"
set +e
"$bin" bench "tcp://127.0.0.1:1" -c 3 -d 0.2 -w 0 -q --connect-timeout 1 >/dev/null 2>&1; [ $? = 2 ] || fail "bench against nothing should end (exit 2), not hang"
set -e

kill -TERM $pid
wait $pid || fail "serve did not exit 0 on SIGTERM"
grep -q "stopping gracefully" "$work/err" || fail "no graceful stop message"
echo "cli: 1 passed, 0 failed"

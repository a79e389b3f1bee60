#!/usr/bin/env bash
# serve logging and chat mode. Default logging names each connection's open and close
# (with the reason); --quiet prints nothing on a normal run; --mode chat delivers room
# messages over TCP and WebSocket. Usage: chat_log_test.sh BIN_DIR
set -euo pipefail
bin="$1/msgtrans"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work/err" 2>/dev/null || true; exit 1; }
start() {  # start ARGS...: serve in the background, wait for its listening lines
  "$bin" serve "$@" >"$work/out" 2>"$work/err" &
  pid=$!
  local want; want=$(printf '%s\n' "$@" | grep -c '^--\(tcp\|ws\|quic\)$' || true)
  for _ in $(seq 100); do [ "$(grep -c '^listening' "$work/out")" -ge "$want" ] && break; sleep 0.05; done
  [ "$(grep -c '^listening' "$work/out")" -ge "$want" ] || fail "serve did not start: $(cat "$work/out")"
}
stop() { kill -TERM $pid; wait $pid || fail "serve exit status"; pid=; }

# Default level: open and close lines with the reason.
start --tcp 127.0.0.1:0
a=$(grep '^listening tcp' "$work/out" | cut -d' ' -f3)
[ "$("$bin" request "tcp://$a" hello)" = hello ] || fail "echo"
stop
grep -q '^serve: info: open session-[0-9]* tcp from 127.0.0.1:' "$work/err" || fail "no open line"
grep -q '^serve: info: close session-[0-9]*: peer_closed' "$work/err" || fail "no close line with reason"
grep -q 'stopping gracefully' "$work/err" || fail "no stop line"

# --quiet: nothing at all on a normal run...
start --tcp 127.0.0.1:0 --quiet
a=$(grep '^listening tcp' "$work/out" | cut -d' ' -f3)
[ "$("$bin" request "tcp://$a" hello)" = hello ] || fail "echo (quiet)"
stop
[ ! -s "$work/err" ] || fail "--quiet printed: $(cat "$work/err")"
# ...but errors still show.
set +e
"$bin" serve --quiet --tcp 127.0.0.1:0 --mode nope 2>"$work/err"; [ $? = 1 ] || fail "bad mode exit code"
set -e
grep -q "^serve: error: unknown --mode 'nope'" "$work/err" || fail "error hidden by --quiet"
set +e
"$bin" serve --tcp 127.0.0.1:0 --log-level loud 2>/dev/null; [ $? = 1 ] || fail "bad --log-level should exit 1"
set -e

# Chat rooms over TCP and WebSocket (independent Python peers).
start --mode chat --tcp 127.0.0.1:0 --ws 127.0.0.1:0/chat -q
t=$(grep '^listening tcp' "$work/out" | cut -d' ' -f3)
w=$(grep '^listening ws' "$work/out" | cut -d' ' -f3)
/usr/bin/python3 "$here/chat_client.py" tcp "$t" || fail "tcp chat"
/usr/bin/python3 "$here/chat_client.py" ws "ws://${w%%/*}/chat" || fail "ws chat"
stop
echo "chat_log: 1 passed, 0 failed"

#!/usr/bin/env bash
# msgtrans serve --ws (with --tcp in the same process), request/send/bench over ws:// and
# wss://, certificate verification from the command line. Usage: ws_cli_test.sh MSGTRANS
set -euo pipefail
bin="$1"
. "$(dirname "$0")/../support/serve_harness.sh"  # work, pids, fail, ok, serve

serve plain 2 --tcp 127.0.0.1:0 --ws 127.0.0.1:0/chat --threads 1
plain_pid=${pids[-1]}
grep -q '^listening ws 127.0.0.1:[1-9][0-9]*/chat$' "$work/out.plain" || fail "ws listening line: $(cat "$work/out.plain")"
ws=$(grep '^listening ws ' "$work/out.plain" | cut -d' ' -f3)
tcp=$(grep '^listening tcp ' "$work/out.plain" | cut -d' ' -f3)
ok "serve --tcp --ws in one process prints 'listening ws HOST:PORT/PATH'"

[ "$("$bin" request "ws://$ws" "hello over ws")" = "hello over ws" ] || fail "request ws://"
[ "$("$bin" request "tcp://$tcp" "hello over tcp")" = "hello over tcp" ] || fail "request tcp:// next to ws"
"$bin" send "ws://$ws" "one way" || fail "send ws://"
out=$("$bin" request "ws://$ws" "zipped" --compress zstd --biz-type 3 --json)
echo "$out" | grep -q '"payload":"zipped"' || fail "compressed request: $out"
ok "request / send over ws://, tcp:// alongside"

set +e
"$bin" request "ws://${ws%/chat}/elsewhere" "x" 2>"$work/err.path"; rc=$?
set -e
[ $rc = 2 ] || fail "wrong path should fail to connect (exit 2), got $rc"
ok "wrong path refused (HTTP 404)"

"$bin" bench "ws://$ws" -c 4 -k 16 -d 0.5 -w 0.1 -q --json >"$work/bench.json" 2>&1 || fail "bench ws://: $(cat "$work/bench.json")"
grep -q '"errors":0' "$work/bench.json" || fail "bench errors: $(cat "$work/bench.json")"
grep -q '"messages":0,' "$work/bench.json" && fail "bench moved nothing"
ok "msgtrans bench over ws://"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
serve tls 1 --ws 127.0.0.1:0/secure --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --threads 1
grep -q '^listening wss 127.0.0.1:[1-9][0-9]*/secure$' "$work/out.tls" || fail "wss listening line"
wss=$(cut -d' ' -f3 "$work/out.tls")
port=${wss#*:}; port=${port%%/*}
set +e
"$bin" request "wss://localhost:$port/secure" "x" 2>"$work/err.verify"; rc=$?
set -e
[ $rc = 2 ] || fail "unknown certificate should be refused (exit 2), got $rc"
grep -qi "certificate verify failed" "$work/err.verify" || fail "error should say why: $(cat "$work/err.verify")"
[ "$("$bin" request "wss://localhost:$port/secure" "trusted" --ca "$work/cert.pem")" = trusted ] || fail "wss with --ca"
[ "$("$bin" request "wss://127.0.0.1:$port/secure" "by ip" --ca "$work/cert.pem")" = "by ip" ] || fail "wss by IP"
[ "$("$bin" request "wss://localhost:$port/secure" "insecure" --insecure)" = insecure ] || fail "wss --insecure"
ok "wss: verification on by default, --ca trusts, --insecure skips"

kill -TERM "$plain_pid"
wait "$plain_pid" || fail "serve did not exit 0 on SIGTERM"
ok "graceful stop"
echo "ws_cli: $passed passed, 0 failed"

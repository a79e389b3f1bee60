#!/usr/bin/env bash
# Certificate reload without dropping connections (issue 17): `msgtrans serve --tls
# --ws` (wss) is given a new certificate and SIGHUP while 100 tls:// clients keep
# requesting: no request fails, and new connections see the new certificate (trusted
# with its CA file, the old CA refused). A bad file on SIGHUP is a warning and the
# current certificate stays. With --workers the supervisor passes SIGHUP to every worker.
# Usage: tls_reload_test.sh MSGTRANS
set -euo pipefail
bin="$1"
. "$(dirname "$0")/../support/serve_harness.sh"  # work, pids, fail, ok, serve
# wait_log NAME N TEXT: until the log holds TEXT N times (the server's own report).
wait_log() {
  for _ in $(seq 200); do [ "$(grep -c -- "$3" "$work/err.$1")" -ge "$2" ] && return; sleep 0.05; done
  fail "no '$3' (x$2) in the log of $1"
}
# Two self-signed certificates for 127.0.0.1: the one served first (a) and its successor (b).
for c in a b; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$c" \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$work/$c.key" -out "$work/$c.pem" 2>/dev/null
done
cp "$work/a.pem" "$work/cert.pem"
cp "$work/a.key" "$work/key.pem"

serve one 2 --tls 127.0.0.1:0 --ws 127.0.0.1:0/ws --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --threads 2
tls=$(awk '$2 == "tls" {print $3}' "$work/out.one")
wss=$(awk '$2 == "wss" {print $3}' "$work/out.one")
[ -n "$tls" ] && [ -n "$wss" ] || fail "listening lines: $(cat "$work/out.one")"
pid=${pids[-1]}

"$bin" bench "tls://$tls" -c 100 -k 1 -d 4 -w 0 --json -q --ca "$work/a.pem" >"$work/bench.json" &
bench=$!
wait_log one 100 "open session-"   # all 100 connected, requests flowing
cp "$work/b.pem" "$work/cert.pem"
cp "$work/b.key" "$work/key.pem"
kill -HUP "$pid"
wait_log one 1 "SIGHUP: certificates reloaded"
ok "SIGHUP while 100 clients request: reloaded"
for u in "tls://$tls" "wss://$wss"; do
  out=$("$bin" request "$u" "new" --ca "$work/b.pem") || fail "$u: the new certificate is not served"
  [ "$out" = new ] || fail "$u answered '$out'"
  if "$bin" request "$u" "old" --ca "$work/a.pem" >/dev/null 2>"$work/old.err"; then fail "$u: still the old certificate"; fi
  grep -q "certificate" "$work/old.err" || fail "$u: the refusal does not name the certificate: $(cat "$work/old.err")"
  ok "$u: a new connection gets the new certificate, the old CA is refused"
done
wait "$bench" || true
/usr/bin/python3 - "$work/bench.json" <<'PY' || fail "bench across the reload: $(cat "$work/bench.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["connected"] == 100 and r["connect_failures"] == 0, r
assert r["messages"] > 1000 and r["errors"] == 0, r
PY
grep -q "close session-.*: \(error\|protocol_error\)" "$work/err.one" && fail "a connection dropped across the reload"
ok "the 100 connections opened before the reload carried on: no request failed, none dropped"

echo "not a certificate" >"$work/cert.pem"
kill -HUP "$pid"
wait_log one 1 "SIGHUP: certificate reload: tls 127.0.0.1"
"$bin" request "tls://$tls" "still" --ca "$work/b.pem" >/dev/null || fail "a bad file replaced the certificate"
ok "a bad certificate file on SIGHUP: a warning naming it, the current certificate stays"

# --workers: the supervisor passes SIGHUP on; every worker reloads.
cp "$work/a.pem" "$work/cert.pem"
cp "$work/a.key" "$work/key.pem"
serve workers 1 --tls 127.0.0.1:0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --workers 2 --threads 1
wtls=$(awk '$2 == "tls" {print $3}' "$work/out.workers")
cp "$work/b.pem" "$work/cert.pem"
cp "$work/b.key" "$work/key.pem"
kill -HUP "${pids[-1]}"
wait_log workers 2 "SIGHUP: certificates reloaded"
for i in 1 2 3 4 5 6; do
  "$bin" request "tls://$wtls" "w$i" --ca "$work/b.pem" >/dev/null || fail "--workers: connection $i got the old certificate"
done
ok "--workers 2: SIGHUP reaches both workers; six new connections all get the new certificate"
echo "tls reload: $passed passed, 0 failed"

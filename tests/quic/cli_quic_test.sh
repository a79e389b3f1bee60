#!/usr/bin/env bash
# `msgtrans serve --quic` and `msgtrans request quic://` end to end, with a TCP listener
# in the same process. Usage: cli_quic_test.sh BIN_DIR
set -euo pipefail
bin="$1/msgtrans"
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work/err" 2>/dev/null || true; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:TRUE \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1 || fail "openssl could not make a certificate"

"$bin" serve --quic 127.0.0.1:0 --tcp 127.0.0.1:0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" \
  >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do [ "$(wc -l <"$work/out")" -ge 2 ] && break; sleep 0.05; done
grep -q '^listening quic 127.0.0.1:[0-9]*$' "$work/out" || fail "listening lines: $(cat "$work/out")"
grep -q '^listening tcp 127.0.0.1:[0-9]*$' "$work/out" || fail "listening lines: $(cat "$work/out")"
q=$(grep '^listening quic' "$work/out" | cut -d' ' -f3)
[ "${q##*:}" != 0 ] || fail "port 0 not replaced by the real port"

out=$("$bin" request "quic://$q" "hello over quic" --ca "$work/cert.pem")
[ "$out" = "hello over quic" ] || fail "request with --ca: '$out'"
out=$("$bin" request "quic://$q" "insecure" --insecure)
[ "$out" = "insecure" ] || fail "request with --insecure: '$out'"
set +e
"$bin" request "quic://$q" "unverified" --timeout 3 2>/dev/null; rc=$?
set -e
[ $rc != 0 ] || fail "an unknown certificate must be refused without --insecure / --ca"

kill -TERM $pid
wait $pid || fail "serve did not exit 0 on SIGTERM"
echo "cli quic: 1 passed, 0 failed"

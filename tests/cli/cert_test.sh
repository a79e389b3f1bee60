#!/usr/bin/env bash
# `msgtrans cert`: the certificate it writes names what --name says, and a wss:// server
# using it is trusted by a client given it as --ca. Usage: cert_test.sh BIN_DIR
set -euo pipefail
bin="$1/msgtrans"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work/err" 2>/dev/null || true; exit 1; }

"$bin" cert --out-cert "$work/c.pem" --out-key "$work/k.pem" --name localhost --name 127.0.0.1 --days 2 \
  2>"$work/err" || fail "cert exited non-zero"
openssl x509 -in "$work/c.pem" -noout -subject | grep -q "CN *= *localhost" || fail "subject: $(openssl x509 -in "$work/c.pem" -noout -subject)"
openssl x509 -in "$work/c.pem" -noout -ext subjectAltName | grep -q "IP Address:127.0.0.1" || fail "no IP SAN"
openssl x509 -in "$work/c.pem" -noout -checkend $((3 * 86400)) >/dev/null && fail "--days 2 not honoured"
[ "$(stat -c %a "$work/k.pem")" = 600 ] || fail "key file not 0600"
openssl pkey -in "$work/k.pem" -noout || fail "key does not parse"

"$bin" serve --ws 127.0.0.1:0/ws --quic 127.0.0.1:0 --tls-cert "$work/c.pem" --tls-key "$work/k.pem" \
  >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do [ "$(grep -c '^listening' "$work/out")" -ge 2 ] && break; sleep 0.05; done
ws=$(grep '^listening wss' "$work/out" | cut -d' ' -f3) || fail "no wss listener: $(cat "$work/out")"
ws=${ws%%/*}
quic=$(grep '^listening quic' "$work/out" | cut -d' ' -f3) || fail "no quic listener: $(cat "$work/out")"
out=$("$bin" request "wss://localhost:${ws##*:}/ws" hello --ca "$work/c.pem") || fail "wss request with --ca"
[ "$out" = hello ] || fail "wss echo: '$out'"
out=$("$bin" request "quic://localhost:${quic##*:}" hi --ca "$work/c.pem") || fail "quic request with --ca"
[ "$out" = hi ] || fail "quic echo: '$out'"
# Without --ca the same server is not trusted: the check above is a real one.
if "$bin" request "wss://localhost:${ws##*:}/ws" hello --timeout 3 >/dev/null 2>&1; then fail "untrusted cert accepted"; fi

set +e
"$bin" cert --out-cert "$work/nodir/c.pem" --out-key "$work/nodir/k.pem" 2>/dev/null; [ $? = 4 ] || fail "unwritable path should exit 4"
"$bin" cert --out-cert "$work/x.pem" 2>/dev/null; [ $? = 1 ] || fail "missing --out-key should exit 1"
set -e
echo "cert: 1 passed, 0 failed"

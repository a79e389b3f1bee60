#!/usr/bin/env bash
# tls:// from the command line and against independent TLS peers: msgtrans serve --tls
# (with --tcp, with --workers, from a TOML file), request/bench tls:// with --ca and
# --insecure, openssl s_client carrying a wire-format request, TLS 1.1 refused, session
# resumption. Usage: tls_cli_test.sh MSGTRANS
set -euo pipefail
bin="$1"
here=$(cd "$(dirname "$0")" && pwd)
. "$(dirname "$0")/../support/serve_harness.sh"  # work, pids, fail, ok, serve

# A CA, and a server certificate it signed for localhost and 127.0.0.1.
cd "$work"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -days 2 -subj /CN=cli-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req $ec -subj /CN=localhost -keyout key.pem -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext \
  -out cert.pem 2>/dev/null
cd - >/dev/null

serve one 2 --tcp 127.0.0.1:0 --tls 127.0.0.1:0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --threads 1
grep -q '^listening tls 127.0.0.1:[1-9][0-9]*$' "$work/out.one" || fail "tls listening line: $(cat "$work/out.one")"
tls=$(grep '^listening tls ' "$work/out.one" | cut -d' ' -f3)
tcp=$(grep '^listening tcp ' "$work/out.one" | cut -d' ' -f3)
port=${tls#*:}
ok "serve --tcp --tls prints 'listening tls HOST:PORT'"

[ "$("$bin" request "tls://localhost:$port" "hello over tls" --ca "$work/ca.pem")" = "hello over tls" ] ||
  fail "request tls:// --ca"
[ "$("$bin" request "tls://127.0.0.1:$port" "by ip" --ca "$work/ca.pem")" = "by ip" ] || fail "request tls:// by IP"
[ "$("$bin" request "tcp://$tcp" "plain alongside")" = "plain alongside" ] || fail "request tcp:// next to tls"
"$bin" send "tls://localhost:$port" "one way" --ca "$work/ca.pem" || fail "send tls://"
set +e
"$bin" request "tls://localhost:$port" "x" 2>"$work/err.verify"; rc=$?
set -e
[ $rc = 2 ] || fail "a certificate from an unknown CA should be refused (exit 2), got $rc"
grep -q "unable to get local issuer certificate" "$work/err.verify" || fail "error should say why: $(cat "$work/err.verify")"
set +e
"$bin" request "tls://localhost:$port" "x" --ca "$work/ca.pem" --server-name other.example 2>"$work/err.name"; rc=$?
set -e
[ $rc = 2 ] || fail "a wrong name should be refused (exit 2), got $rc"
grep -q "hostname mismatch" "$work/err.name" || fail "error should say why: $(cat "$work/err.name")"
[ "$("$bin" request "tls://localhost:$port" "insecure" --insecure)" = insecure ] || fail "request tls:// --insecure"
ok "request / send tls:// with --ca, --insecure; unknown CA and wrong name refused, saying why"

"$bin" bench "tls://localhost:$port" --ca "$work/ca.pem" -c 4 -k 16 -d 0.5 -w 0.1 -q --json >"$work/bench.json" 2>&1 ||
  fail "bench tls://: $(cat "$work/bench.json")"
grep -q '"errors":0' "$work/bench.json" || fail "bench errors: $(cat "$work/bench.json")"
grep -q '"messages":0,' "$work/bench.json" && fail "bench moved nothing"
ok "msgtrans bench over tls://"

out=$(/usr/bin/python3 "$here/s_client_request.py" "127.0.0.1:$port" "$work/ca.pem" localhost 77 "from s_client") ||
  fail "s_client request: $out"
[ "$out" = "id=77 type=2 payload=from s_client" ] || fail "s_client got: $out"
ok "openssl s_client sends a wire-format request over tls:// and reads the response"

set +e
echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_1 -CAfile "$work/ca.pem" >"$work/s11.out" 2>&1; rc=$?
set -e
[ $rc != 0 ] || fail "a TLS 1.1 client should be refused: $(cat "$work/s11.out")"
# (s_client prints the version it tried as "Protocol"; the cipher says nothing was agreed.)
grep -q "alert protocol version" "$work/s11.out" || fail "no protocol_version alert: $(cat "$work/s11.out")"
grep -q "Cipher is (NONE)" "$work/s11.out" || fail "TLS 1.1 was negotiated: $(cat "$work/s11.out")"
echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_2 -CAfile "$work/ca.pem" >"$work/s12.out" 2>&1 ||
  fail "TLS 1.2 should be accepted: $(cat "$work/s12.out")"
grep -q "Protocol  *: TLSv1.2" "$work/s12.out" || fail "TLS 1.2 not negotiated: $(cat "$work/s12.out")"
ok "TLS 1.1 refused, TLS 1.2 accepted"

# Resumption: a TLS 1.2 session saved by one s_client is resumed by the next.
echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_2 -CAfile "$work/ca.pem" \
  -sess_out "$work/sess.pem" >"$work/r1.out" 2>&1 || fail "first s_client: $(cat "$work/r1.out")"
echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_2 -CAfile "$work/ca.pem" \
  -sess_in "$work/sess.pem" >"$work/r2.out" 2>&1 || fail "second s_client: $(cat "$work/r2.out")"
grep -q "^Reused, " "$work/r2.out" || fail "session not resumed: $(grep -E '^(New|Reused)' "$work/r2.out")"
ok "session resumption (ticket) on"

# --workers: both workers serve the TLS port.
serve workers 1 --tls 127.0.0.1:0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --workers 2 --threads 1
grep -q '^listening tls 127.0.0.1:[1-9][0-9]*$' "$work/out.workers" || fail "workers listening line: $(cat "$work/out.workers")"
wport=$(grep '^listening tls ' "$work/out.workers" | cut -d' ' -f3 | cut -d: -f2)
for i in 1 2 3 4; do
  [ "$("$bin" request "tls://localhost:$wport" "w$i" --ca "$work/ca.pem")" = "w$i" ] || fail "request to workers"
done
ok "serve --tls --workers 2"

# The TOML form: listeners.tls with [tls] cert and key.
cat >"$work/serve.toml" <<TOML
threads = 1
[listeners]
tls = ["127.0.0.1:0"]
[tls]
cert = "$work/cert.pem"
key = "$work/key.pem"
TOML
serve toml 1 --config "$work/serve.toml"
grep -q '^listening tls 127.0.0.1:[1-9][0-9]*$' "$work/out.toml" || fail "toml listening line: $(cat "$work/out.toml")"
tport=$(cut -d' ' -f3 "$work/out.toml" | cut -d: -f2)
[ "$("$bin" request "tls://localhost:$tport" "from toml" --ca "$work/ca.pem")" = "from toml" ] || fail "request to toml server"
ok "listeners.tls and [tls] in the config file"

# Mutual TLS: client certificates from client-ca are required. Python's ssl module is
# the independent peer; msgtrans request --client-cert the library's client.
cd "$work"
openssl req -x509 $ec -days 2 -subj /CN=client-ca -keyout client-ca.key -out client-ca.pem 2>/dev/null
openssl req -x509 $ec -days 2 -subj /CN=rogue-ca -keyout rogue-ca.key -out rogue-ca.pem 2>/dev/null
openssl req $ec -subj /CN=alice -keyout alice.key -out alice.csr 2>/dev/null
openssl x509 -req -in alice.csr -CA client-ca.pem -CAkey client-ca.key -CAcreateserial -days 2 -out alice.pem 2>/dev/null
openssl x509 -req -in alice.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial -days 2 -out mallory.pem 2>/dev/null
cd - >/dev/null
serve mtls 3 --tls 127.0.0.1:0 --ws 127.0.0.1:0/ws --quic 127.0.0.1:0 --tls-cert "$work/cert.pem" \
  --tls-key "$work/key.pem" --tls-client-ca "$work/client-ca.pem" --require-client-cert --threads 1
port_of() { grep "^listening $1 " "$work/out.mtls" | cut -d' ' -f3 | cut -d: -f2 | cut -d/ -f1; }
mport=$(port_of tls)
py() { /usr/bin/python3 "$here/mtls_client.py" 127.0.0.1 "$mport" "$work/ca.pem" "$@"; }
out=$(py "$work/alice.pem" "$work/alice.key") || fail "python client with the right CA's certificate: $out"
[ "$out" = "ok mutual" ] || fail "python mTLS got: $out"
set +e
out=$(py "$work/mallory.pem" "$work/alice.key"); rc=$?
set -e
[ $rc = 3 ] || fail "a certificate from another CA should be refused (3), got $rc: $out"
grep -qi "unknown.ca\|certificate verify failed\|bad.certificate" <<<"$out" || fail "refusal should say why: $out"
set +e
out=$(py); rc=$?
set -e
[ $rc = 3 ] || fail "no client certificate should be refused (3), got $rc: $out"
grep -qi "certificate.required" <<<"$out" || fail "refusal should say why: $out"
ok "mutual TLS: python ssl with the right CA's certificate accepted, another CA's and none refused"
[ "$("$bin" request "tls://localhost:$mport" "mtls cli" --ca "$work/ca.pem" --client-cert "$work/alice.pem" \
  --client-key "$work/alice.key")" = "mtls cli" ] || fail "request --client-cert"
set +e
"$bin" request "tls://localhost:$mport" "x" --ca "$work/ca.pem" --client-cert "$work/mallory.pem" \
  --client-key "$work/alice.key" --timeout 5 >"$work/out.mallory" 2>"$work/err.mallory"; rc=$?
set -e
[ $rc != 0 ] || fail "request with another CA's certificate should fail"
ok "request tls:// --client-cert/--client-key; another CA's refused"
# The same flags on wss:// and quic:// (one --tls-client-ca for every TLS listener).
for url in "wss://localhost:$(port_of wss)/ws" "quic://localhost:$(port_of quic)"; do
  [ "$("$bin" request "$url" "mtls $url" --ca "$work/ca.pem" --client-cert "$work/alice.pem" \
    --client-key "$work/alice.key")" = "mtls $url" ] || fail "request $url --client-cert"
  set +e
  "$bin" request "$url" "x" --ca "$work/ca.pem" --timeout 5 >/dev/null 2>"$work/err.nocert.client"; rc=$?
  set -e
  [ $rc != 0 ] || fail "$url without a client certificate should be refused"
done
rm -f "$work/err.nocert.client"
set +e
"$bin" request "ws://localhost:1/" "x" --client-cert "$work/alice.pem" --client-key "$work/alice.key" \
  2>"$work/err.certws"; rc=$?
set -e
[ $rc != 0 ] && grep -q "wss://" "$work/err.certws" || fail "--client-cert on ws:// should be refused: $(cat "$work/err.certws")"
rm -f "$work/err.certws"
ok "mutual TLS on wss:// and quic:// too: --client-cert accepted, none refused; not accepted for plain ws://"

cat >"$work/mtls.toml" <<TOML
threads = 1
[listeners]
tls = ["127.0.0.1:0"]
[tls]
cert = "$work/cert.pem"
key = "$work/key.pem"
client_ca = "$work/client-ca.pem"
require_client_cert = true
TOML
serve mtlstoml 1 --config "$work/mtls.toml"
mport=$(cut -d' ' -f3 "$work/out.mtlstoml" | cut -d: -f2)
out=$(py "$work/alice.pem" "$work/alice.key") || fail "toml mTLS with the right certificate: $out"
set +e
out=$(py); rc=$?
set -e
[ $rc = 3 ] || fail "toml require_client_cert: a client without a certificate should be refused, got $rc: $out"
ok "[tls] client_ca and require_client_cert in the config file"

set +e
"$bin" serve --tls 127.0.0.1:0 >"$work/out.nocert" 2>"$work/err.nocert"; rc=$?
set -e
[ $rc != 0 ] || fail "--tls without a certificate should be refused"
grep -q -- "--tls needs --tls-cert and --tls-key" "$work/err.nocert" || fail "no-cert error: $(cat "$work/err.nocert")"
ok "--tls without --tls-cert refused"

echo "all $passed passed"

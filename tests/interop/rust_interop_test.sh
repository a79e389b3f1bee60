#!/usr/bin/env bash
# Interoperability with the original Rust crate msgtrans =1.0.10 (interop/rust, pinned by
# its Cargo.lock): usage rust_interop_test.sh BIN_DIR RUST_BIN_DIR
#   A. seed_client (Rust client) against `msgtrans serve --mode interop`: tcp, ws, quic;
#   B. cpp_seed_client (the same script on the C++ client) and msgtrans request/send/bench
#      against seed_server (Rust server);
#   C. QUIC both ways: ALPN, certificate verification (CA file / --insecure).
# Every check compares what arrived byte for byte. docs/interop.md cites the check names.
set -euo pipefail
bin="$1/msgtrans" cbin="$1/cpp_seed_client" rbin="$2"
source "$(dirname "$0")/../support/serve_harness.sh"

# A free port for TCP and UDP both (the Rust server cannot listen on port 0 and report it).
free_port() { /usr/bin/python3 -c 'import socket
while True:
  t=socket.socket(); t.bind(("127.0.0.1",0)); p=t.getsockname()[1]; u=socket.socket(type=socket.SOCK_DGRAM)
  try: u.bind(("127.0.0.1",p)); print(p); break
  except OSError: pass'; }
addr_of() { awk -v p="$2" '$1=="listening" && $2==p {print $3}' "$work/out.$1"; }

# Certificates: an end-entity one for localhost (openssl), and msgtrans cert's (a CA).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE \
  -keyout "$work/ee.key" -out "$work/ee.pem" 2>/dev/null
"$bin" cert --out-cert "$work/ca.pem" --out-key "$work/ca.key" >/dev/null 2>&1

# ---- A. Rust client -> C++ server ----
serve plain 2 --mode interop --tcp 127.0.0.1:0 --ws 127.0.0.1:0/ws
serve quic 1 --mode interop --quic 127.0.0.1:0 --tls-cert "$work/ee.pem" --tls-key "$work/ee.key"
serve quicca 1 --mode interop --quic 127.0.0.1:0 --tls-cert "$work/ca.pem" --tls-key "$work/ca.key"
steps="connect one_way request_64KiB request_1MiB inflight_1000 server_push server_request biz_ext_roundtrip clean_close request_1MiB_plus_1"
seed_client() {  # NAME URL ARGS...: every step ok, and the summary line
  local name=$1; shift
  "$rbin/seed_client" "$@" >"$work/sc.$name" 2>"$work/sc.$name.err" || { cat "$work/sc.$name"; fail "seed_client $name exited $?"; }
  for s in $steps; do grep -q "^ok $s\b" "$work/sc.$name" || { cat "$work/sc.$name"; fail "seed_client $name: step $s"; }; done
  grep -qx "10 passed, 0 failed" "$work/sc.$name" || fail "seed_client $name: summary"
  ok "rust_client.$name: $(tail -1 "$work/sc.$name")"
}
seed_client tcp "tcp://$(addr_of plain tcp)"
# On TCP the original drops an echoed packet over 1 MiB (its receive cap); ws and quic carry it.
grep -q "^ok request_1MiB_plus_1 - known defect of the original" "$work/sc.tcp" || fail "tcp over-cap step not the known defect"
ok "rust_client.tcp_over_cap: the original's TCP receiver refuses 1 MiB + 1 (documented defect)"
seed_client ws "ws://$(addr_of plain ws)"
grep -qx "ok request_1MiB_plus_1" "$work/sc.ws" || fail "ws over-cap"
seed_client quic_ca "quic://$(addr_of quic quic)" --ca "$work/ee.pem"
seed_client quic_insecure "quic://$(addr_of quic quic)" --insecure
# Verification is real: without --ca the Mozilla roots do not know our certificate.
if "$rbin/seed_client" "quic://$(addr_of quic quic)" >"$work/sc.noca" 2>&1; then fail "quic without --ca connected"; fi
grep -q "^FAIL connect: .*UnknownIssuer" "$work/sc.noca" || { cat "$work/sc.noca"; fail "quic without --ca: not UnknownIssuer"; }
ok "rust_client.quic_verify: an untrusted certificate is refused (UnknownIssuer)"
# rustls (webpki) refuses a CA certificate used as the server's own: msgtrans cert makes one.
if "$rbin/seed_client" "quic://$(addr_of quicca quic)" --ca "$work/ca.pem" >"$work/sc.caee" 2>&1; then fail "CaUsedAsEndEntity accepted?"; fi
grep -q "CaUsedAsEndEntity" "$work/sc.caee" || { cat "$work/sc.caee"; fail "msgtrans cert + rustls: unexpected"; }
ok "rust_client.quic_msgtrans_cert: rustls refuses msgtrans cert's CA:TRUE certificate (CaUsedAsEndEntity)"

# ---- B. C++ client -> Rust server ----
tp=$(free_port) wp=$(free_port) qp=$(free_port)
SEED_CERT_OUT="$work/seed.pem" "$rbin/seed_server" --tcp 127.0.0.1:$tp --ws 127.0.0.1:$wp/ws --quic 127.0.0.1:$qp \
  >"$work/out.seed" 2>"$work/err.seed" &
pids+=($!)
for _ in $(seq 300); do [ "$(grep -c '^listening' "$work/out.seed")" -ge 3 ] && break; sleep 0.05; done
[ "$(grep -c '^listening' "$work/out.seed")" = 3 ] || fail "seed_server did not start: $(cat "$work/out.seed")"
grep -qx "listening ws 127.0.0.1:$wp/ws" "$work/out.seed" || fail "seed_server listening line"
ok "seed_server: listening tcp, ws, quic"

want() {  # NAME EXPECTED ARGS... : msgtrans ARGS... prints exactly EXPECTED
  local name=$1 expected=$2; shift 2
  local got; got=$("$bin" "$@" 2>"$work/cli.$name.err") || fail "$name: exit $?: $(cat "$work/cli.$name.err")"
  [ "$got" = "$expected" ] || fail "$name: got $got, want $expected"
  ok "cpp_client.$name"
}
# The C++ client's script (tests/interop/cpp_seed_client.cpp): the same ten steps.
cpp_client() {  # NAME URL ARGS...
  local name=$1; shift
  "$cbin" "$@" >"$work/cc.$name" 2>"$work/cc.$name.err" || { cat "$work/cc.$name"; fail "cpp_seed_client $name exited $?"; }
  for s in $steps; do grep -q "^ok $s\b" "$work/cc.$name" || { cat "$work/cc.$name"; fail "cpp_seed_client $name: step $s"; }; done
  grep -qx "10 passed, 0 failed" "$work/cc.$name" || fail "cpp_seed_client $name: summary"
  ok "cpp_client.script_$name: $(tail -1 "$work/cc.$name")"
}
cpp_client tcp "tcp://127.0.0.1:$tp"
grep -q "^ok request_1MiB_plus_1 - known defect of the original" "$work/cc.tcp" || fail "cpp tcp over-cap step"
cpp_client ws "ws://127.0.0.1:$wp/ws"
cpp_client quic_ca "quic://127.0.0.1:$qp" --ca "$work/seed.pem"
cpp_client quic_insecure "quic://127.0.0.1:$qp" --insecure
# The original's QUIC rule (its server cannot send before the client's stream exists): our
# client opens the stream with an empty STREAM frame at once, so a push the Rust server
# sends on connect arrives before our client has sent anything, on QUIC as on TCP.
wt=$(free_port) wq=$(free_port)
SEED_WELCOME=hello-first "$rbin/seed_server" --tcp 127.0.0.1:$wt --quic 127.0.0.1:$wq >"$work/out.welcome" 2>"$work/err.welcome" &
pids+=($!)
for _ in $(seq 300); do [ "$(grep -c '^listening' "$work/out.welcome")" -ge 2 ] && break; sleep 0.05; done
for u in "tcp://127.0.0.1:$wt" "quic://127.0.0.1:$wq --insecure"; do
  # shellcheck disable=SC2086
  "$cbin" $u --expect-welcome hello-first >"$work/cc.welcome" 2>&1 || { cat "$work/cc.welcome"; fail "welcome $u"; }
  sed -n 2p "$work/cc.welcome" | grep -qx "ok welcome_before_first_send" || { cat "$work/cc.welcome"; fail "welcome $u: not first"; }
  ok "cpp_client.welcome_before_first_send.${u%%:*}"
done
echo_json() { printf '{"message_id":1,"biz_type":%s,"flags":0,"compression":0,"ext_header":"%s","payload":"%s"}' "$1" "$2" "$3"; }
want tcp_request "$(echo_json 0 '' hello)" request "tcp://127.0.0.1:$tp" hello --json
want tcp_biz_ext "$(echo_json 7 route:abc data)" request "tcp://127.0.0.1:$tp" data --biz-type 7 --ext route:abc --json
want ws_request "$(echo_json 7 route:abc data)" request "ws://127.0.0.1:$wp/ws" data --biz-type 7 --ext route:abc --json
want tcp_send '{"sent":true,"bytes":5}' send "tcp://127.0.0.1:$tp" hello --json
want ws_send '{"sent":true,"bytes":5}' send "ws://127.0.0.1:$wp/ws" hello --json
# ---- C. QUIC: the original's server configures no ALPN and refuses ours ("msgtrans").
if "$bin" request "quic://127.0.0.1:$qp" hello --ca "$work/seed.pem" --server-name localhost 2>"$work/alpn.err"; then
  fail "quic with ALPN accepted by the original?"; fi
grep -q "alert 120" "$work/alpn.err" || fail "quic ALPN refusal: $(cat "$work/alpn.err")"
ok "cpp_client.quic_alpn_refused: the original answers ALPN \"msgtrans\" with alert 120 (no_application_protocol)"
want quic_ca_no_alpn "$(echo_json 7 route:abc data)" request "quic://127.0.0.1:$qp" data --biz-type 7 --ext route:abc \
  --ca "$work/seed.pem" --server-name localhost --no-alpn --json
want quic_insecure_no_alpn "$(echo_json 0 '' hello)" request "quic://127.0.0.1:$qp" hello --insecure --no-alpn --json
if "$bin" request "quic://127.0.0.1:$qp" hello --no-alpn 2>"$work/noca.err"; then fail "quic: unverified cert accepted"; fi
grep -q "NOT trusted" "$work/noca.err" || fail "quic no CA: $(cat "$work/noca.err")"
ok "cpp_client.quic_verify: the original's self-signed certificate is refused without --ca"
# --no-alpn is quic:// only.
if "$bin" request "ws://127.0.0.1:$wp/ws" hello --no-alpn 2>"$work/alpnws.err"; then fail "--no-alpn on ws accepted"; fi
grep -q "quic:// only" "$work/alpnws.err" || fail "--no-alpn ws: $(cat "$work/alpnws.err")"
if "$bin" request "tcp://127.0.0.1:$tp" hello --no-alpn 2>"$work/alpntcp.err"; then fail "--no-alpn on tcp accepted"; fi
grep -q "quic:// only" "$work/alpntcp.err" || fail "--no-alpn tcp: $(cat "$work/alpntcp.err")"
ok "cpp_client.no_alpn_quic_only"
# bench: every request answered, on the three transports.
for u in "tcp://127.0.0.1:$tp" "ws://127.0.0.1:$wp/ws" "quic://127.0.0.1:$qp --insecure --no-alpn"; do
  # shellcheck disable=SC2086
  "$bin" bench $u -c 4 -k 8 -d 0.5 -w 0.2 -q --raw --json >"$work/bench.json" 2>"$work/bench.err" || fail "bench $u: $(cat "$work/bench.err")"
  /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); ok=r["errors"]==0 and r["stalled"]==0 and r["connect_failures"]==0 and r["messages"]>0
sys.exit(0 if ok else 1)' "$work/bench.json" || fail "bench $u: $(cat "$work/bench.json")"
  ok "cpp_bench.${u%%:*}: $(head -c 200 "$work/bench.json")"
done
# Evidence, not a check: the original's QUIC adapter panics a task when a connection closes.
echo "note: seed_server stderr has $(grep -c 'JoinHandle polled after completion' "$work/err.seed" || true) task panics 'JoinHandle polled after completion' (QuicAdapter::start_event_loop)"
echo "$passed checks passed"

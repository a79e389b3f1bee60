#!/usr/bin/env bash
# `serve --metrics`: the Prometheus endpoint answers, and its values move with traffic.
# Usage: metrics_test.sh BIN_DIR
set -euo pipefail
bin="$1/msgtrans"
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" serve --tcp 127.0.0.1:0 --metrics 127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q '^metrics ' "$work/out" 2>/dev/null && break; sleep 0.05; done
url=$(grep '^metrics ' "$work/out" | cut -d' ' -f2)
addr=$(grep '^listening tcp' "$work/out" | cut -d' ' -f3)
[ -n "$url" ] || fail "no metrics line: $(cat "$work/out" "$work/err")"

scrape() { /usr/bin/python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" "$1"; }
value() { grep -E "^$1 " "$2" | awk '{print $2}'; }

scrape "$url" >"$work/m1"
grep -q '^# TYPE msgtrans_connections gauge' "$work/m1" || fail "no connections gauge"
grep -q '^# TYPE msgtrans_response_duration_seconds histogram' "$work/m1" || fail "no latency histogram"
for m in msgtrans_rooms msgtrans_room_memberships msgtrans_room_deliveries_total msgtrans_cluster_messages_in_total \
  msgtrans_cluster_messages_out_total msgtrans_cluster_publish_errors_total msgtrans_cluster_malformed_total \
  msgtrans_cluster_reconnects_total; do
  grep -Eq "^$m [0-9]" "$work/m1" || fail "no $m line"
done
grep -q '^msgtrans_cluster_state{state="none"} 1$' "$work/m1" || fail "cluster_state none is not 1 without a cluster"
for st in connecting connected reconnecting closed; do
  grep -q "^msgtrans_cluster_state{state=\"$st\"} 0\$" "$work/m1" || fail "no cluster_state $st 0 line"
done
in1=$(value 'msgtrans_packets_total\{direction="in"\}' "$work/m1")

for i in 1 2 3 4 5; do "$bin" request "tcp://$addr" "ping $i" >/dev/null; done
scrape "$url" >"$work/m2"
in2=$(value 'msgtrans_packets_total\{direction="in"\}' "$work/m2")
count=$(value 'msgtrans_response_duration_seconds_count' "$work/m2")
accepted=$(value 'msgtrans_connections_accepted_total' "$work/m2")
[ "${in2%.*}" -ge $(( ${in1%.*} + 5 )) ] || fail "packets_in did not move: $in1 -> $in2"
[ "${count%.*}" -ge 5 ] || fail "response histogram count $count"
[ "${accepted%.*}" -ge 5 ] || fail "accepted $accepted"
/usr/bin/python3 -c "import urllib.request,sys
try:
    urllib.request.urlopen(sys.argv[1].replace('/metrics','/other'), timeout=5); sys.exit(1)
except urllib.error.HTTPError as e: sys.exit(0 if e.code == 404 else 1)" "$url" || fail "other paths should be 404"
echo "metrics: 1 passed, 0 failed"

#!/usr/bin/env bash
# Quick start 1: install what is needed, build, and run the demo: one msgtrans server
# listening on TCP, WebSocket and QUIC at once, and a request over each.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across checkouts in different folders.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release

echo
echo "== demo: one packet, encoded and decoded"
build/bin/packet_example

echo
echo "== demo: msgtrans serve --tcp --ws --quic (ports picked by the system)"
out=$(mktemp)
build/bin/msgtrans serve --tcp 127.0.0.1:0 --ws 127.0.0.1:0/ws --quic 127.0.0.1:0 --quiet >"$out" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do [ "$(wc -l <"$out")" -ge 3 ] && break; sleep 0.05; done
cat "$out"
for proto in tcp ws quic; do
  addr=$(awk -v p="$proto" '$2 == p {print $3}' "$out")
  url="$proto://$addr"
  extra=()
  [ "$proto" = quic ] && extra=(--insecure)  # the demo server's certificate is self-signed
  printf '%-34s -> ' "msgtrans request $url"
  build/bin/msgtrans request "$url" "hello over $proto" "${extra[@]}"
done
kill -INT $pid
wait $pid 2>/dev/null || true
echo
echo "Next: build/bin/msgtrans --help, examples/, and README.md's API tour."

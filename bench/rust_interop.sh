#!/usr/bin/env bash
# Throughput across the Rust original (msgtrans 1.0.10) and the C++ msgtrans, one run,
# same machine, same load (C connections x K in flight, S-byte requests, D seconds, TCP):
#   A  seed_bench (Rust client)     -> seed_server (Rust server)     the all-Rust baseline
#   B  msgtrans bench (C++ client)  -> seed_server (Rust server)     moving the client to C++
#   C  seed_bench (Rust client)     -> msgtrans serve (C++ server)   moving the server to C++
# and prints B/A and C/A. Needs build/bin (release) and the Rust peers (scripts/rust-interop.sh
# builds them). Usage: bench/rust_interop.sh [C K S D]   (default 4 8 64 5)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${MSGTRANS_CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/msgtrans/cargo-target}"
cargo build --release --locked --manifest-path interop/rust/Cargo.toml >/dev/null 2>&1
rbin="$CARGO_TARGET_DIR/release" bin=build/bin/msgtrans
c=${1:-4} k=${2:-8} s=${3:-64} d=${4:-5}
work=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
port=$(/usr/bin/python3 -c 'import socket; t=socket.socket(); t.bind(("127.0.0.1",0)); print(t.getsockname()[1])')
"$rbin/seed_server" --tcp 127.0.0.1:$port >"$work/seed.out" 2>/dev/null & pids+=($!)
"$bin" serve --tcp 127.0.0.1:0 -q >"$work/serve.out" 2>/dev/null & pids+=($!)
for _ in $(seq 300); do grep -q '^listening' "$work/seed.out" && grep -q '^listening' "$work/serve.out" && break; sleep 0.05; done
cpp=$(awk '/^listening tcp/{print $3}' "$work/serve.out")
rate() { sed -E 's/.*: ([0-9.]+) messages\/s.*/\1/'; }
a=$("$rbin/seed_bench" "tcp://127.0.0.1:$port" -c "$c" -k "$k" -s "$s" -d "$d"); echo "A $a"
b=$("$bin" bench "tcp://127.0.0.1:$port" -c "$c" -k "$k" -s "$s" -d "$d" -w 1 -q --raw --json)
echo "B msgtrans bench tcp://127.0.0.1:$port: $b"
cc=$("$rbin/seed_bench" "tcp://$cpp" -c "$c" -k "$k" -s "$s" -d "$d"); echo "C $cc"
ra=$(echo "$a" | rate) rc=$(echo "$cc" | rate)
rb=$(echo "$b" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["messages_per_sec"])')
/usr/bin/python3 -c "import sys; a,b,c=map(float,sys.argv[1:4]); print(f'TCP {sys.argv[4]}: A rust->rust {a:.0f}/s, B c++ client->rust server {b:.0f}/s ({b/a:.2}x A), C rust client->c++ server {c:.0f}/s ({c/a:.2}x A)')" "$ra" "$rb" "$rc" "${c}x${k} ${s}B"

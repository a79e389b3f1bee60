#!/usr/bin/env bash
# Two chat servers on different ports sharing rooms through one nats-server (no disk).
# Open examples/chat.html?ws=ws://127.0.0.1:8002/chat and examples/chat.html?ws=ws://127.0.0.1:8012/chat,
# "/join lobby" on both, and talk. Ctrl-C stops everything.
# Usage: examples/cluster_chat.sh [BIN_DIR]   (default build/bin; needs nats-server: scripts/setup.sh)
set -euo pipefail
bin="${1:-build/bin}"
PATH=$PATH:/usr/sbin
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
nats-server -a 127.0.0.1 -p 4222 &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.05; done
"$bin/cluster_chat" nats://127.0.0.1:4222 127.0.0.1:8002/chat 127.0.0.1:8001 node-1 &
"$bin/cluster_chat" nats://127.0.0.1:4222 127.0.0.1:8012/chat 127.0.0.1:8011 node-2 &
echo "open examples/chat.html?ws=ws://127.0.0.1:8002/chat and examples/chat.html?ws=ws://127.0.0.1:8012/chat"
wait

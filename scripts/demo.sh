#!/usr/bin/env bash
# Quick start 1: install what is needed, build, and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across checkouts in different folders (CI clones afresh each time).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
echo "== demo: packet_example"
build/bin/packet_example

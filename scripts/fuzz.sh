#!/usr/bin/env bash
# Runs every libFuzzer target in build-sanitize/bin for SECONDS each (default 60),
# seeded from ../shared/fixtures/wire and fuzz/corpus/<target> (a target is registered by
# being built there: fuzz/CMakeLists.txt). Fails on any crash,
# leak or sanitizer report, and prints the input that caused it (to turn into a
# regression test). Reports executions and the corpus each run ended with.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shopt -s nullglob
targets=(build-sanitize/bin/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz: no targets built"; exit 1; fi
total=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  work=$(mktemp -d)
  mkdir "$work/corpus"
  seeds=(../shared/fixtures/wire)
  [ -d "fuzz/corpus/$name" ] && seeds+=("fuzz/corpus/$name")
  echo "fuzz: $name for ${seconds}s"
  if ! "$t" -max_total_time="$seconds" -print_final_stats=1 -detect_leaks=1 -artifact_prefix="$work/" \
      "$work/corpus" "${seeds[@]}" >"$work/log" 2>&1; then
    tail -50 "$work/log"
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do echo "fuzz: failing input $(basename "$a"):"; xxd "$a" | head -20; done
    echo "fuzz: $name FAILED"
    exit 1
  fi
  execs=$(grep 'stat::number_of_executed_units' "$work/log" | awk '{print $2}')
  rate=$(grep 'stat::average_exec_per_sec' "$work/log" | awk '{print $2}')
  echo "  executions ${execs} (${rate}/s), corpus $(ls "$work/corpus" | wc -l) inputs, $(grep 'stat::peak_rss_mb' "$work/log" | awk '{print $2}') MB peak"
  total=$((total + seconds))
  rm -rf "$work"
done
echo "fuzz: ${#targets[@]} targets, ${total}s in all, no crash, leak or sanitizer report"

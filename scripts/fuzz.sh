#!/usr/bin/env bash
# Runs every libFuzzer target in build-sanitize/bin for SECONDS each (default 60),
# seeded from ../shared/fixtures/wire and fuzz/corpus/<target>. Fails on any crash,
# leak or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shopt -s nullglob
targets=(build-sanitize/bin/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz: no targets built"; exit 1; fi
for t in "${targets[@]}"; do
  name=$(basename "$t")
  work=$(mktemp -d)
  seeds=(../shared/fixtures/wire)
  [ -d "fuzz/corpus/$name" ] && seeds+=("fuzz/corpus/$name")
  echo "fuzz: $name for ${seconds}s"
  "$t" -max_total_time="$seconds" -print_final_stats=1 -detect_leaks=1 "$work" "${seeds[@]}" \
    >"$work.log" 2>&1 || { tail -50 "$work.log"; echo "fuzz: $name FAILED"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work.log" | sed "s/^/  /"
  rm -rf "$work" "$work.log"
done

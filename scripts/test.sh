#!/usr/bin/env bash
# Quick start 2: install what is needed, build, and run every test:
#   1. the optimised build and its full test suite;
#   2. the same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (clang);
#   3. the threading tests under ThreadSanitizer;
#   4. each libFuzzer target for a bounded time;
#   5. install, and build a consumer project against the installed copy;
#   6. the README's other quick-start command (scripts/demo.sh), as written.
# After the release tests it runs the interop tests against the original Rust crate
# (scripts/rust-interop.sh: cargo, pinned Cargo.lock, target folder in ~/.cache).
# After the release tests it also builds the Doxygen API reference (warnings as errors).
# Set MSGTRANS_FUZZ_SECONDS to change the fuzzing time per target (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across checkouts in different folders (CI clones afresh each time).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
start=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - start ))s] $*"; }

step "setup"
scripts/setup.sh

step "release build"
cmake --preset release >/dev/null
cmake --build --preset release
step "release tests"
ctest --preset release

step "interop with the original Rust msgtrans 1.0.10 (scripts/rust-interop.sh)"
scripts/rust-interop.sh

step "API reference (Doxygen, warnings are errors)"
cmake --build --preset release --target docs

step "sanitizer build (ASan + UBSan)"
cmake --preset sanitize >/dev/null
cmake --build --preset sanitize
step "sanitizer tests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --preset sanitize

step "thread sanitizer build + threading tests"
cmake --preset tsan >/dev/null
cmake --build --preset tsan
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest --preset tsan

step "fuzzing"
scripts/fuzz.sh "${MSGTRANS_FUZZ_SECONDS:-60}"

step "install + consumer project"
scripts/check-install.sh

step "README quick start 1: scripts/demo.sh, exactly as written"
scripts/demo.sh >/tmp/msgtrans-demo.log 2>&1 || { cat /tmp/msgtrans-demo.log; exit 1; }
[ "$(grep -c -- '-> hello over' /tmp/msgtrans-demo.log)" = 3 ] || { cat /tmp/msgtrans-demo.log; echo "demo: a request failed"; exit 1; }
echo "demo: tcp, ws and quic requests answered"

step "all tests passed in $(( $(date +%s) - start ))s"

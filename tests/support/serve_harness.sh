# Sourced by the shell tests that drive `msgtrans serve` ($bin must be set): a work
# folder removed at exit with every server started, fail/ok reporting, and
#   serve NAME LINES ARGS...: starts msgtrans serve, waits for LINES "listening" lines
# (its stdout in $work/out.NAME, stderr in $work/err.NAME, its pid last in $pids).
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work"/err* 2>/dev/null || true; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }

serve() {
  local name=$1 lines=$2; shift 2
  "$bin" serve "$@" >"$work/out.$name" 2>"$work/err.$name" &
  pids+=($!)
  for _ in $(seq 200); do [ "$(grep -c '^listening' "$work/out.$name")" -ge "$lines" ] && return; sleep 0.05; done
  fail "serve $name did not start: $(cat "$work/out.$name")"
}

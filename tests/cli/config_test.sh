#!/usr/bin/env bash
# serve --config FILE: settings come from the TOML file, flags override them, and an
# unknown key or a wrong type is an error naming the key. Usage: config_test.sh BIN_DIR
set -euo pipefail
bin="$1/msgtrans"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work/err" 2>/dev/null || true; exit 1; }
start() {  # start N ARGS...: serve in the background, wait for N listening lines
  local n=$1; shift
  "$bin" serve "$@" >"$work/out" 2>"$work/err" &
  pid=$!
  for _ in $(seq 100); do [ "$(grep -c '^listening' "$work/out")" -ge "$n" ] && break; sleep 0.05; done
  [ "$(grep -c '^listening' "$work/out")" -ge "$n" ] || fail "serve did not start: $(cat "$work/out")"
}
stop() { kill -TERM $pid; wait $pid || fail "serve exit status"; pid=; }

cat >"$work/serve.toml" <<'TOML'
# every listener kind, discard mode, quiet
mode = "discard"
threads = 1
max_connections = 100
max_message_size = 65536
idle_timeout = 30
quiet = true

[listeners]
tcp = ["127.0.0.1:0"]
ws = ["127.0.0.1:0/ws"]
quic = ["127.0.0.1:0"]

[ws]
keep_alive_interval = 5
keep_alive_timeout = 2.5
TOML

start 3 --config "$work/serve.toml"
grep -q '^listening tcp' "$work/out" && grep -q '^listening ws' "$work/out" && grep -q '^listening quic' "$work/out" ||
  fail "listeners from the file: $(cat "$work/out")"
t=$(grep '^listening tcp' "$work/out" | cut -d' ' -f3)
[ "$("$bin" request "tcp://$t" hello)" = "" ] || fail "mode = discard from the file not applied"
big=$(head -c 70000 /dev/zero | tr '\0' x)
if "$bin" request "tcp://$t" "$big" --timeout 3 >/dev/null 2>&1; then fail "max_message_size from the file not applied"; fi
stop
[ ! -s "$work/err" ] || fail "quiet = true not applied: $(cat "$work/err")"

# Flags override the file: --mode and --log-level win over mode and log_level.
printf 'mode = "discard"\nlog_level = "error"\n[listeners]\ntcp = ["127.0.0.1:0"]\n' >"$work/serve2.toml"
start 1 --config "$work/serve2.toml" --mode echo --log-level info
t=$(grep '^listening tcp' "$work/out" | cut -d' ' -f3)
[ "$("$bin" request "tcp://$t" hello)" = hello ] || fail "--mode echo did not override the file"
stop
grep -q 'info: open session' "$work/err" || fail "--log-level info did not override the file"

# Errors name the key (and the line), exit 1.
printf 'mode = "echo"\n[listeners]\ntcp = ["127.0.0.1:0"]\nudp = ["x"]\n' >"$work/bad.toml"
set +e
"$bin" serve --config "$work/bad.toml" 2>"$work/err"; rc=$?
set -e
[ $rc = 1 ] || fail "unknown key: exit $rc"
grep -q "bad.toml:4: unknown key 'listeners.udp'" "$work/err" || fail "unknown key not named: $(cat "$work/err")"
printf 'threads = "many"\n' >"$work/bad.toml"
set +e
"$bin" serve --config "$work/bad.toml" 2>"$work/err"; rc=$?
set -e
[ $rc = 1 ] || fail "bad type: exit $rc"
grep -q "'threads': expected a non-negative integer" "$work/err" || fail "bad type not named: $(cat "$work/err")"
printf 'threads = \n' >"$work/bad.toml"
set +e
"$bin" serve --config "$work/bad.toml" 2>"$work/err"; rc=$?
set -e
[ $rc = 1 ] || fail "syntax error: exit $rc"
grep -q "bad.toml:1:" "$work/err" || fail "syntax error without position: $(cat "$work/err")"
echo "config: 1 passed, 0 failed"

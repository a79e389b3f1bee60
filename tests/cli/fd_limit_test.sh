#!/usr/bin/env bash
# File descriptors run out: `msgtrans serve` under a low `ulimit -n` faces more
# connections than it has descriptors. Accept errors must not become a busy loop, and
# service must resume once descriptors free up. Usage: fd_limit_test.sh BIN_DIR
set -euo pipefail
bin="$1/msgtrans"
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work/err" 2>/dev/null || true; exit 1; }

(ulimit -n 40; exec "$bin" serve --tcp 127.0.0.1:0 --threads 1) >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do [ -s "$work/out" ] && break; sleep 0.05; done
addr=$(cut -d' ' -f3 "$work/out")
[ -n "$addr" ] || fail "server did not start"

/usr/bin/python3 - "$addr" "$pid" <<'PY' || exit 1
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
pid = sys.argv[2]
def cpu_ticks():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime
socks = []
for _ in range(120):  # three times what the server can hold
    s = socket.create_connection((host, int(port)))
    socks.append(s)
time.sleep(0.3)  # let the server hit EMFILE
t0 = cpu_ticks(); time.sleep(1.0); used = cpu_ticks() - t0
hz = 100
print(f"server CPU while out of descriptors: {used / hz:.2f} s per s")
if used > 0.3 * hz:
    print("FAIL: accept errors are spinning"); sys.exit(1)
for s in socks: s.close()
PY

# Descriptors are free again: a fresh request must be served.
ok=0
for _ in $(seq 50); do
  if out=$("$bin" request "tcp://$addr" "back" --timeout 2 2>/dev/null) && [ "$out" = back ]; then ok=1; break; fi
  sleep 0.1
done
[ $ok = 1 ] || fail "service did not resume after descriptors were freed"
echo "fd limit: 1 passed, 0 failed"

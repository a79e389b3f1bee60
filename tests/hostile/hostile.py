"""Shared helpers of the hostile-peer tests: start a real `msgtrans serve`, read its
listening lines, its RSS and CPU time, and its log; speak the wire format from raw
sockets. Run by /usr/bin/python3 (Debian's, which has the `websockets` package)."""
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else "build/bin"
MSGTRANS = os.path.join(BIN_DIR, "msgtrans")
# Built with AddressSanitizer? Its quarantine holds freed memory; RSS bounds are then
# read with the quarantine capped (see serve()).
SANITIZED = os.environ.get("MSGTRANS_SANITIZED") == "1"

results = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        print(f"ok: {what}")
        results["passed"] += 1
    else:
        print(f"FAIL: {what}")
        results["failed"] += 1
    return cond


def finish():
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


class Server:
    """`msgtrans serve ARGS...`, with its listening lines parsed and stderr captured."""

    def __init__(self, *args, fd_limit=None, env=None):
        self.err = tempfile.NamedTemporaryFile(prefix="hostile-serve-", suffix=".log", delete=False)
        e = dict(os.environ)
        if SANITIZED:
            # A small quarantine, so freed memory is really returned to the heap.
            e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=8:detect_leaks=0"
        if env:
            e.update(env)

        def limits():
            if fd_limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

        self.p = subprocess.Popen([MSGTRANS, "serve", *args], stdout=subprocess.PIPE, stderr=self.err,
                                  text=True, preexec_fn=limits, env=e)
        self.addr = {}
        self.metrics = None
        # Listening lines come first; the metrics line follows them when asked for.
        want_metrics = "--metrics" in args
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("serve exited: " + self.log())
            m = re.match(r"listening (\w+) (\S+)", line)
            if m:
                self.addr.setdefault(m.group(1), []).append(m.group(2))
            m = re.match(r"metrics http://([^/]+)/metrics", line)
            if m:
                self.metrics = m.group(1)
            if self.addr and (self.metrics or not want_metrics):
                n = sum(args.count(f) for f in ("--tcp", "--ws", "--quic"))
                if sum(len(v) for v in self.addr.values()) >= n:
                    break

    def hostport(self, proto):
        a = self.addr[proto][0].split("/")[0]
        host, port = a.rsplit(":", 1)
        return host.strip("[]"), int(port)

    def rss(self):
        """Resident set size in bytes."""
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self):
        f = open(f"/proc/{self.p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def log(self):
        with open(self.err.name, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, timeout=15):
        """Waits until a log line matches `pattern` (the log is a file: polled)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.log()):
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        os.unlink(self.err.name)
        return self.p.returncode


# ---- the wire format (shared/spec/WIRE_FORMAT.md) ----
ONE_WAY, REQUEST, RESPONSE = 0, 1, 2
NONE, ZSTD, ZLIB = 0, 1, 2  # note the order: 1 is zstd


def packet(payload=b"", type_=REQUEST, message_id=1, compression=NONE, biz_type=0, ext=b""):
    """One encoded packet: the 16-byte header, the extension header, the payload."""
    header = struct.pack(">BBBBIHIH", 1, compression, type_, biz_type, message_id, len(ext), len(payload), 0)
    return header + ext + payload


def read_packet(sock, timeout=10):
    """Reads one whole packet from a TCP socket: (header fields, payload)."""
    sock.settimeout(timeout)
    head = recv_exact(sock, 16)
    version, comp, type_, biz, mid, ext_len, plen, flags = struct.unpack(">BBBBIHIH", head)
    body = recv_exact(sock, ext_len + plen)
    return {"compression": comp, "type": type_, "message_id": mid}, body[ext_len:]


def echo(addr, body=b"ping", mid=1):
    """One request over a fresh TCP connection; true if the echo came back whole."""
    s = socket.create_connection(addr, timeout=10)
    s.sendall(packet(body, message_id=mid))
    head, got = read_packet(s, timeout=30)
    s.close()
    return got == body and head["message_id"] == mid


def recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(min(n - len(out), 1 << 20))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(n, soft), hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]

"""Issue #17, part 3: the limits against floods, through `msgtrans serve`'s flags and TOML
keys, seen by independent Python clients: a refused connection is closed at once, a
connection over its rate is closed (log: rate_limited) or slowed down, refusals are
logged once per address per minute and counted in the metrics by reason."""
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

import hostile
from hostile import MSGTRANS, Server, check, packet, read_packet


def connect(addr, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))  # Linux routes all of 127.0.0.0/8 to lo
    s.connect(addr)
    return s


def closed_soon(s, timeout=3):
    """True if the server closes `s` (EOF or reset) within `timeout` seconds."""
    s.settimeout(timeout)
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def served(s, mid=1):
    s.sendall(packet(b"ping", message_id=mid))
    try:
        head, body = read_packet(s, timeout=10)
    except (ConnectionError, socket.timeout):
        return False
    return body == b"ping" and head["message_id"] == mid


def metrics(srv):
    host, port = srv.metrics.rsplit(":", 1)
    m = socket.create_connection((host, int(port)), timeout=10)
    m.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    text = b""
    while chunk := m.recv(65536):
        text += chunk
    m.close()
    return text.decode()


def metric(text, name, label):
    m = re.search(r"^" + re.escape(name) + r"\{" + re.escape(label) + r"\} (\d+)", text, re.M)
    return int(m.group(1)) if m else None


# --max-connections-per-ip: 5 stay, 3 are closed at once, another address is served.
srv = Server("--tcp", "127.0.0.1:0", "--max-connections-per-ip", "5", "--metrics", "127.0.0.1:0",
             "--log-level", "warn")
try:
    addr = srv.hostport("tcp")
    socks = [connect(addr) for _ in range(8)]
    closed = [s for s in socks if closed_soon(s, timeout=0.5)]
    check(len(closed) == 3, f"3 of 8 connections from one address are closed at once ({len(closed)})")
    check(all(served(s, i + 1) for i, s in enumerate(s for s in socks if s not in closed)),
          "the 5 that stay are served")
    other = connect(addr, "127.0.0.2")
    check(served(other), "a connection from 127.0.0.2 is served meanwhile")
    check(srv.wait_log(r"peer_limit: tcp from 127\.0\.0\.1:\d+: max_connections_per_ip \(5\) reached"),
          "the refusal is logged, naming the limit")
    check(len(re.findall(r"peer_limit: tcp from 127\.0\.0\.1", srv.log())) == 1,
          "three refusals of one address: one log line (once per address per minute)")
    text = metrics(srv)
    check(metric(text, "msgtrans_refused_total", 'reason="per_ip"') == 3, "msgtrans_refused_total{reason=\"per_ip\"} 3")
    check(metric(text, "msgtrans_refused_total", 'reason="handshake_rate"') == 0,
          "msgtrans_refused_total{reason=\"handshake_rate\"} 0")
    for s in socks + [other]:
        s.close()
finally:
    srv.stop()

# --max-handshakes-per-second-per-ip: a burst of 8 with a rate of 5 loses about 3.
srv = Server("--tcp", "127.0.0.1:0", "--max-handshakes-per-second-per-ip", "5", "--metrics", "127.0.0.1:0",
             "--log-level", "warn")
try:
    addr = srv.hostport("tcp")
    t0 = time.time()
    socks = [connect(addr) for _ in range(8)]
    took = time.time() - t0
    closed = [s for s in socks if closed_soon(s, timeout=0.5)]
    check(3 - int(took * 5) - 1 <= len(closed) <= 3, f"of a burst of 8 at 5/s, the last ones are refused "
                                                     f"({len(closed)} in {took:.3f} s)")
    check(served(connect(addr, "127.0.0.2")), "another address has its own bucket")
    check(metric(metrics(srv), "msgtrans_refused_total", 'reason="handshake_rate"') == len(closed),
          "msgtrans_refused_total{reason=\"handshake_rate\"} counts them")
    check(srv.wait_log(r"peer_limit: tcp from 127\.0\.0\.1:\d+: max_handshakes_per_second_per_ip \(5\) reached"),
          "the refusal is logged, naming the limit")
    for s in socks:
        s.close()
finally:
    srv.stop()

# --max-messages-per-second: over it, closed with rate_limited.
srv = Server("--tcp", "127.0.0.1:0", "--max-messages-per-second", "10", "--metrics", "127.0.0.1:0",
             "--log-level", "info")
try:
    addr = srv.hostport("tcp")
    s = connect(addr)
    check(served(s), "a connection under its rate is served")
    s.sendall(b"".join(packet(b"x", type_=hostile.ONE_WAY, message_id=i) for i in range(2, 50)))
    check(closed_soon(s, timeout=5), "48 packets at once with --max-messages-per-second 10: closed")
    check(srv.wait_log(r"close session-\d+: rate_limited \(over max_messages_per_second \(10\)\)"),
          "the close is logged with reason rate_limited")
    check(srv.wait_log(r"rate_limited: tcp from 127\.0\.0\.1:\d+: over max_messages_per_second \(10\); closed"),
          "and reported as a rate_limited notice")
    check(metric(metrics(srv), "msgtrans_rate_limited_total", 'action="close"') == 1,
          "msgtrans_rate_limited_total{action=\"close\"} 1")
finally:
    srv.stop()

# --max-bytes-per-second and --rate-burst: a burst of 0.5 s at 4000 B/s is 2000 bytes.
srv = Server("--tcp", "127.0.0.1:0", "--max-bytes-per-second", "4000", "--rate-burst", "0.5", "--log-level", "info")
try:
    addr = srv.hostport("tcp")
    s = connect(addr)
    s.sendall(packet(b"a" * 1500, message_id=1))  # 1516 bytes: fits the 2000-byte burst
    check(read_packet(s)[1] == b"a" * 1500, "a packet within the byte burst is served")
    s.sendall(packet(b"b" * 1000, message_id=2))  # 1016 more: past the burst
    check(closed_soon(s, timeout=5), "past the byte burst: closed")
    check(srv.wait_log(r"close session-\d+: rate_limited \(over max_bytes_per_second \(4000\)\)"),
          "the close names max_bytes_per_second")
finally:
    srv.stop()

# --rate-limit-action pause: nothing is lost, the sender is slowed to the rate.
srv = Server("--tcp", "127.0.0.1:0", "--max-messages-per-second", "500", "--rate-burst", "0.1",
             "--rate-limit-action", "pause", "--metrics", "127.0.0.1:0", "--log-level", "warn")
try:
    addr = srv.hostport("tcp")
    s = connect(addr)
    n = 400
    body = b"p" * 1000
    t0 = time.time()
    writer = threading.Thread(target=lambda: s.sendall(b"".join(packet(body, message_id=i) for i in range(1, n + 1))))
    writer.start()
    ids = []
    try:
        for _ in range(n):
            head, got = read_packet(s, timeout=20)
            ids.append(head["message_id"])
    except (ConnectionError, socket.timeout):
        pass
    took = time.time() - t0
    writer.join()
    check(ids == list(range(1, n + 1)), f"paused, not closed: all {n} requests answered, in order ({len(ids)})")
    # 50 at once (0.1 s at 500/s), one 64 KiB read (64 packets) ahead, the rest at 500/s.
    check(took >= (n - 50 - 64) / 500, f"and no faster than the rate allows ({took:.2f} s)")
    check(metric(metrics(srv), "msgtrans_rate_limited_total", 'action="pause"') >= 1,
          "msgtrans_rate_limited_total{action=\"pause\"} counts the pauses")
    s.close()
finally:
    srv.stop()

# The TOML keys, and a bad action named with its key.
with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
    f.write("max_connections_per_ip = 1\nmax_handshakes_per_second_per_ip = 100\n"
            "max_messages_per_second = 1000\nmax_bytes_per_second = 1000000\nrate_burst = 2\n"
            "rate_limit_action = \"close\"\n[listeners]\ntcp = [\"127.0.0.1:0\"]\n")
    good = f.name
srv = Server("--config", good, "--tcp", "127.0.0.1:0", "--log-level", "warn")
try:
    addr = srv.hostport("tcp")
    a, b = connect(addr), connect(addr)
    check(served(a) and closed_soon(b), "max_connections_per_ip = 1 from the config file: the second is refused")
finally:
    srv.stop()
    os.unlink(good)
with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
    f.write("rate_limit_action = \"drop\"\n")
    bad = f.name
r = subprocess.run([MSGTRANS, "serve", "--config", bad, "--tcp", "127.0.0.1:0"], capture_output=True, text=True,
                   timeout=30)
os.unlink(bad)
check(r.returncode != 0 and "rate_limit_action" in r.stderr and "\"pause\"" in r.stderr,
      "rate_limit_action = \"drop\" is refused, naming the key and the choices: " + r.stderr.strip()[-120:])
r = subprocess.run([MSGTRANS, "serve", "--tcp", "127.0.0.1:0", "--rate-limit-action", "drop"], capture_output=True,
                   text=True, timeout=30)
check(r.returncode != 0 and "--rate-limit-action" in r.stderr, "--rate-limit-action drop is refused")
r = subprocess.run([MSGTRANS, "serve", "--tcp", "127.0.0.1:0", "--max-messages-per-second", "2000000000"],
                   capture_output=True, text=True, timeout=30)
check(r.returncode == 1 and "session_options.max_messages_per_second" in r.stderr,
      "a rate no session can use is a usage error naming the field: " + r.stderr.strip()[-100:])

hostile.finish()

"""Finding 4 of issue #14: what an operator needs to hear is logged, once per interval
per cause: a packet cut short (not just "peer closed") and max_connections refusals
(fd exhaustion: fd_exhausted.py). Also that the
inbound decoding budget (--inbound-memory-limit) pauses a second large packet until
the first is done, instead of holding both."""
import os
import re
import socket
import tempfile
import threading

import hostile
from hostile import Server, check, echo, packet, read_packet


# A packet cut short by the peer.
srv = Server("--tcp", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-level", "info")
try:
    addr = srv.hostport("tcp")
    s = socket.create_connection(addr)
    s.sendall(packet(b"x" * 1000)[:26])
    s.close()
    check(srv.wait_log(r"truncated_packet: tcp from 127\.0\.0\.1:\d+: truncated packet: 26 of 1016 bytes"),
          "a packet cut short is logged as truncated_packet with N of M bytes")
    check(srv.wait_log(r"close session-\d+: peer_closed \(truncated packet: 26 of 1016 bytes\)|"
                       r"close session-\d+: .*truncated packet: 26 of 1016 bytes"),
          "the session's close says truncated packet too")
    mhost, mport = srv.metrics.rsplit(":", 1)
    m = socket.create_connection((mhost, int(mport)), timeout=10)
    m.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    text = b""
    while chunk := m.recv(65536):
        text += chunk
    m.close()
    check(re.search(rb'msgtrans_notices_total\{kind="truncated_packet"\} 1\b', text) is not None,
          "the notice is counted in msgtrans_notices_total{kind}")
finally:
    srv.stop()

# max_connections refusals.
srv = Server("--tcp", "127.0.0.1:0", "--max-connections", "1", "--log-level", "warn")
try:
    addr = srv.hostport("tcp")
    first = socket.create_connection(addr)
    first.sendall(packet(b"a"))
    read_packet(first)
    second = socket.create_connection(addr)
    second.settimeout(10)
    check(second.recv(1) == b"", "a connection over max_connections is closed")
    check(srv.wait_log(r"connection_limit: tcp from 127\.0\.0\.1:\d+: max_connections \(1\) reached"),
          "a max_connections refusal is logged as connection_limit")
    first.close()
    second.close()
finally:
    srv.stop()

# --first-packet-timeout and its TOML key have effect: a silent connection is closed.
cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
cfg.write('first_packet_timeout = 0.5\n[listeners]\ntcp = ["127.0.0.1:0"]\n')
cfg.close()
for how, args in (("flag", ("--tcp", "127.0.0.1:0", "--first-packet-timeout", "0.5")),
                  ("TOML key", ("--config", cfg.name))):
    srv = Server(*args, "--log-level", "info")
    try:
        quiet = socket.create_connection(srv.hostport("tcp"))
        quiet.settimeout(10)
        check(quiet.recv(1) == b"", f"first_packet_timeout from the {how}: a silent connection is closed")
        check(srv.wait_log(r"close session-\d+: handshake_timeout"), f"... and logged as handshake_timeout ({how})")
        quiet.close()
    finally:
        srv.stop()
os.unlink(cfg.name)

# The inbound budget: with 1 MiB, a second 900 KiB partial packet waits for the first.
srv = Server("--tcp", "127.0.0.1:0", "--log-level", "warn", "--inbound-memory-limit", str(1 << 20))
try:
    addr = srv.hostport("tcp")
    big = [packet(bytes([i]) * (900 * 1024), message_id=i + 1) for i in range(2)]
    a = socket.create_connection(addr)
    b = socket.create_connection(addr)
    a.sendall(big[0][:200 * 1024])
    b.sendall(big[1][:200 * 1024])
    check(srv.wait_log(r"budget_full: tcp from 127\.0\.0\.1:\d+: reading paused"),
          "a partial packet that does not fit the inbound budget pauses reading (budget_full)")
    # b is paused: its rest may not fit the socket buffers, so send it from a thread.
    rest = threading.Thread(target=b.sendall, args=(big[1][200 * 1024:],))
    rest.start()
    a.sendall(big[0][200 * 1024:])
    ok = [read_packet(c, timeout=30)[1] == big[i][16:] for i, c in enumerate((a, b))]
    rest.join()
    check(all(ok), "both packets are delivered whole once the first is done")
    a.close()
    b.close()
finally:
    srv.stop()
hostile.finish()

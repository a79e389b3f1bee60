"""Finding 2 of issue #14: a WebSocket client that floods 125-byte pings and never reads
must not grow the server's memory (it queued one pong per ping: 3.8 GB in 25 s). Pongs
are coalesced and a peer pinging past the rate is closed with 1008 "ping flood". Also
the refusal and timeout lines of finding 4: refused upgrades and handshake timeouts."""
import asyncio
import base64
import os
import socket
import threading
import time

import hostile
from hostile import Server, check, packet

import websockets

MIB = 1024 * 1024


def upgrade(addr, path="/ws"):
    s = socket.create_connection(addr)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head


def ping_frame(payload):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x89, 0x80 | len(payload)]) + mask + body


srv = Server("--ws", "127.0.0.1:0/ws", "--log-level", "warn")
try:
    addr = srv.hostport("ws")
    silent = socket.create_connection(addr)  # never upgrades: the handshake times out (10 s)
    started = time.time()

    s, head = upgrade(addr, "/nowhere")
    check(head.startswith(b"HTTP/1.1 404"), "an upgrade to a wrong path gets 404")
    s.close()
    check(srv.wait_log(r"upgrade_refused: ws from 127\.0\.0\.1:\d+: 404 Not Found: no WebSocket endpoint at this path"),
          "a refused upgrade is logged with its status and reason")

    flood, head = upgrade(addr)
    check(head.startswith(b"HTTP/1.1 101"), "the flooder's upgrade succeeds")
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    burst = ping_frame(os.urandom(125)) * 64
    base = srv.rss()
    peak = base
    sent = 0
    deadline = time.time() + 10
    flood.settimeout(1)
    try:
        while time.time() < deadline:
            flood.sendall(burst)
            sent += 64
            if sent % 6400 == 0:
                peak = max(peak, srv.rss())
    except (ConnectionError, socket.timeout, OSError):
        pass
    peak = max(peak, srv.rss())
    check(peak - base < 300 * MIB, f"after {sent} pings never read, RSS grew {(peak - base) / MIB:.1f} MiB (bound 300)")
    check(srv.wait_log(r"ping_flood: ws from 127\.0\.0\.1:\d+: ping flood"), "the flooder is closed and logged as ping_flood")
    flood.close()

    async def served():
        host, port = addr
        async with websockets.connect(f"ws://{host}:{port}/ws", max_size=None) as ws:
            await ws.send(packet(b"still here", message_id=5))
            reply = await asyncio.wait_for(ws.recv(), 10)
            return reply[16:] == b"still here"

    check(asyncio.run(served()), "another client is served after the flood")
    check(srv.wait_log(r"handshake_timeout: ws from 127\.0\.0\.1:\d+: no WebSocket upgrade within 10000 ms", timeout=20),
          f"a connection that never upgrades is logged as handshake_timeout ({time.time() - started:.1f} s)")
    silent.close()
finally:
    srv.stop()


def binary_frame(payload):
    """One masked binary frame (client to server)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | 127]) + n.to_bytes(8, "big") if n > 65535 else
                            bytes([0x80 | 126]) + n.to_bytes(2, "big") if n > 125 else bytes([0x80 | n]))
    reps = mask * (n // 4 + 1)
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(reps[:n], "big")).to_bytes(n, "big")
    return head + mask + body


def read_ws_binary(sock):
    """Reads one unmasked frame from the server; returns its payload."""
    sock.settimeout(30)
    h = hostile.recv_exact(sock, 2)
    n = h[1] & 0x7F
    if n == 126:
        n = int.from_bytes(hostile.recv_exact(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(hostile.recv_exact(sock, 8), "big")
    return hostile.recv_exact(sock, n)


# The inbound budget over WebSocket: with 1 MiB, a second 900 KiB frame waits for the first.
srv = Server("--ws", "127.0.0.1:0/ws", "--log-level", "warn", "--inbound-memory-limit", str(1 << 20))
try:
    addr = srv.hostport("ws")
    pkts = [packet(bytes([i + 1]) * (900 * 1024), message_id=i + 1) for i in range(2)]
    frames = [binary_frame(p) for p in pkts]
    a, _ = upgrade(addr)
    b, _ = upgrade(addr)
    a.sendall(frames[0][:200 * 1024])
    b.sendall(frames[1][:200 * 1024])
    check(srv.wait_log(r"budget_full: ws from 127\.0\.0\.1:\d+: reading paused"),
          "over WebSocket too, a frame that does not fit the inbound budget pauses reading (budget_full)")
    rest = threading.Thread(target=b.sendall, args=(frames[1][200 * 1024:],))
    rest.start()
    a.sendall(frames[0][200 * 1024:])
    got = [read_ws_binary(a), read_ws_binary(b)]
    rest.join()
    check([g[16:] for g in got] == [p[16:] for p in pkts],
          "both WebSocket messages are delivered whole (echoed as responses) once the first is done")
    a.close()
    b.close()
finally:
    srv.stop()
# A WebSocket peer that drops the connection inside a packet: "truncated packet", not just "dropped".
srv = Server("--ws", "127.0.0.1:0/ws", "--log-level", "warn")
try:
    cut, _ = upgrade(srv.hostport("ws"))
    frame = binary_frame(packet(b"y" * 84))  # a 100-byte packet
    cut.sendall(frame[:6 + 40])  # 2 bytes of frame header and the 4-byte mask, then 40 of the packet
    cut.close()
    check(srv.wait_log(r"truncated_packet: ws from 127\.0\.0\.1:\d+: truncated packet: 40 of 100 bytes"),
          "a WebSocket packet cut short is logged as truncated_packet with N of M bytes")
finally:
    srv.stop()
hostile.finish()

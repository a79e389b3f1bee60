"""Finding 3 of issue #14, the metrics endpoint: idle connections are closed (5 s), at
most 64 are held, a request head past 8 KiB gets 431, and when accept fails for want of
descriptors the metrics thread backs off (no CPU while idle), logs fd_exhausted, and
serves again once descriptors free up. (Label fdlimit: not under the sanitizers.)"""
import select
import socket
import time

import hostile
from hostile import Server, check


def closed_within(socks, seconds):
    """Waits (on the sockets, not by sleeping) until the server closed each; returns how many it did."""
    ep = select.epoll()
    fds = {}
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        fds[s.fileno()] = s
    closed = 0
    deadline = time.time() + seconds
    while fds and time.time() < deadline:
        for fd, _ in ep.poll(max(0.0, deadline - time.time())):
            s = fds.pop(fd)
            ep.unregister(fd)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except ConnectionError:
                closed += 1
    ep.close()
    return closed


def get(addr, head=b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"):
    s = socket.create_connection(addr, timeout=10)
    s.sendall(head)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


srv = Server("--tcp", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-level", "warn", fd_limit=256)
try:
    host, port = srv.metrics.rsplit(":", 1)
    maddr = (host, int(port))
    check(get(maddr).startswith(b"HTTP/1.1 200"), "GET /metrics answers 200")
    idle = [socket.create_connection(maddr) for _ in range(100)]
    over = closed_within(idle[64:], 3)
    check(over == 36, f"past 64 connections the endpoint closes new ones at once ({over} of 36)")
    started = time.time()
    held = closed_within(idle[:64], 10)
    took = time.time() - started
    check(held == 64 and took < 8, f"idle metrics connections are closed after 5 s ({held} of 64 in {took:.1f} s)")
    for s in idle:
        s.close()
    big = get(maddr, b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n")
    check(big.startswith(b"HTTP/1.1 431"), "a request head past 8 KiB gets 431")

    # Out of descriptors: TCP connections to the transport take every fd, then one more
    # to the metrics port waits in its backlog while accept fails.
    hog = [socket.create_connection(srv.hostport("tcp")) for _ in range(300)]
    check(srv.wait_log(r"fd_exhausted: tcp"), "the TCP accept loop ran out of descriptors first")
    waiting = socket.create_connection(maddr)
    check(srv.wait_log(r"fd_exhausted: metrics"), "the metrics endpoint logs fd_exhausted when accept fails")
    cpu = srv.cpu_seconds()
    time.sleep(2)  # measuring CPU over an interval: there is no event to wait for
    used = srv.cpu_seconds() - cpu
    check(used < 0.3, f"out of descriptors, the server uses {used:.2f} s of CPU in 2 s (no spinning)")
    for h in hog:
        h.close()
    waiting.close()
    check(get(maddr).startswith(b"HTTP/1.1 200"), "once descriptors free up, /metrics is served again")
finally:
    srv.stop()
hostile.finish()

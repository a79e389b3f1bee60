"""Finding 3 of issue #14: connections that never send a byte must not lock every
client out. 10,050 silent TCP connections fill max_connections (10,000 by default);
with the default first-packet timeout (10 s) they are closed and a fresh client is served.
The 50 refused over the limit produce a connection_limit log line."""
import select
import socket
import time

import hostile
from hostile import Server, check, packet, read_packet

SILENT = 10050
hostile.raise_fd_limit(SILENT + 200)

srv = Server("--tcp", "127.0.0.1:0", "--log-level", "warn", fd_limit=SILENT + 200)
try:
    addr = srv.hostport("tcp")
    silent = []
    # In batches, each waited for until connected (the accept backlog is smaller than
    # 10,050), so all are open at once well within the 10 s timeout.
    for start in range(0, SILENT, 1000):
        batch = []
        for _ in range(min(1000, SILENT - start)):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(addr)
            batch.append(s)
        pending = {s.fileno(): s for s in batch}
        ep = select.epoll()
        for fd in pending:
            ep.register(fd, select.EPOLLOUT)
        until = time.time() + 10
        while pending and time.time() < until:
            for fd, _ in ep.poll(1.0):
                ep.unregister(fd)
                pending.pop(fd, None)
        ep.close()
        silent += batch
    check(srv.wait_log(r"connection_limit: tcp from 127\.0\.0\.1", timeout=30),
          "max_connections refusals are logged as connection_limit")
    # The server closes the silent ones after the first-packet timeout: wait for the
    # closes (EOF/reset on every socket) instead of sleeping.
    started = time.time()
    open_ = set(silent)
    deadline = started + 40
    poller = select.epoll()
    fds = {}
    for s in silent:
        poller.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        fds[s.fileno()] = s
    while open_ and time.time() < deadline:
        for fd, _ in poller.poll(1.0):
            s = fds.pop(fd, None)
            if s is None:
                continue
            poller.unregister(fd)
            open_.discard(s)
    took = time.time() - started
    check(not open_, f"the server closed all {SILENT} silent connections ({len(open_)} left after {took:.1f} s)")
    fresh = socket.create_connection(addr, timeout=10)
    fresh.sendall(packet(b"hello", message_id=7))
    head, body = read_packet(fresh)
    check(body == b"hello" and head["message_id"] == 7, "a fresh client is served after the silent ones timed out")
    fresh.close()
    for s in silent:
        s.close()
finally:
    srv.stop()
hostile.finish()

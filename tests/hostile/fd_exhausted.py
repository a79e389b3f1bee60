"""Finding 3/4 of issue #14: accept failing for want of file descriptors (EMFILE) is
logged as fd_exhausted, the accept loop backs off instead of spinning, and the server
serves again once descriptors free up. (Label fdlimit: not run under the sanitizers.)"""
import socket
import time

import hostile
from hostile import Server, check, echo


# Out of file descriptors: logged, backs off, serves again.
srv = Server("--tcp", "127.0.0.1:0", "--log-level", "warn", fd_limit=64)
try:
    addr = srv.hostport("tcp")
    hog = [socket.create_connection(addr) for _ in range(100)]
    check(srv.wait_log(r"fd_exhausted: tcp"), "accept failing with EMFILE is logged as fd_exhausted")
    cpu = srv.cpu_seconds()
    time.sleep(2)  # measuring idle CPU over an interval: there is no event to wait for
    used = srv.cpu_seconds() - cpu
    check(used < 0.3, f"while out of descriptors the server uses {used:.2f} s of CPU in 2 s (no spinning)")
    for h in hog:
        h.close()
    check(echo(addr), "once descriptors free up, a fresh client is served")
finally:
    srv.stop()

hostile.finish()

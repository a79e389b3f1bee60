#!/usr/bin/python3
"""Chat peers for chat_cluster_test.sh, on plain sockets (the msgtrans wire format:
/work/shared/spec/WIRE_FORMAT.md, 16-byte header then payload).

  chat_cluster.py room N ADDR [ADDR...]  N members join "lobby", spread over the ADDRs;
      once every member hears the first one's probes (their joins reached the broker),
      it says "hello room": each other member gets it exactly once, the sender gets its
      own line back once.
  chat_cluster.py badname ADDR   invalid room names get an error, the connection works on.
"""
import select
import socket
import struct
import sys
import time

HEADER = ">BBBBIHIH"


def packet(payload, msg_id):
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack(HEADER, 1, 0, 0, 0, msg_id, 0, len(payload), 0) + payload


class Peer:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=5)
        self.buf = b""
        self.n = 0

    def send(self, payload):
        self.n += 1
        self.s.sendall(packet(payload, self.n))

    def _take(self):
        """One whole packet's text from the buffer, or None."""
        if len(self.buf) < 16:
            return None
        ver, comp, ptype, _b, _m, ext, n, _f = struct.unpack(HEADER, self.buf[:16])
        assert ver == 1 and comp == 0 and ptype == 0, (ver, comp, ptype)
        if len(self.buf) < 16 + ext + n:
            return None
        text = self.buf[16 + ext:16 + ext + n].decode()
        self.buf = self.buf[16 + ext + n:]
        return text

    def lines(self, timeout):
        """Every packet that arrives within `timeout` s (returns at the first batch)."""
        out, deadline = [], time.monotonic() + timeout
        while True:
            while (t := self._take()) is not None:
                out.append(t)
            left = deadline - time.monotonic()
            if out or left <= 0:
                return out
            if select.select([self.s], [], [], left)[0]:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise EOFError("server closed the connection")
                self.buf += chunk

    def expect(self, want, timeout=5):
        got = self.lines(timeout)
        assert got == [want], (got, want)


def until_marker(peer, marker, deadline):
    """All lines up to and including the one ending with `marker`."""
    seen = []
    while time.monotonic() < deadline:
        seen += peer.lines(deadline - time.monotonic())
        if any(t.endswith(": " + marker) for t in seen):
            return seen
    raise AssertionError("no %r within the deadline; got %r" % (marker, seen[-3:]))


def room(n, addrs):
    peers = [Peer(addrs[i % len(addrs)]) for i in range(n)]
    for p in peers:
        p.send("/join lobby")
        p.expect("joined lobby")
    first, others = peers[0], peers[1:]
    heard, k, deadline = set(), 0, time.monotonic() + 30
    while len(heard) < len(others):  # a probe loop, not a sleep: joins travel to the broker
        assert time.monotonic() < deadline, "only %d of %d members hear the room" % (len(heard), len(others))
        k += 1
        first.send("probe %d" % k)
        for i, p in enumerate(others):
            if i not in heard and any(": probe " in t for t in p.lines(0.1)):
                heard.add(i)
    first.send("hello room")
    first.send("end")
    deadline = time.monotonic() + 10
    for i, p in enumerate(peers):
        got = [t for t in until_marker(p, "end", deadline) if t.endswith(": hello room")]
        assert len(got) == 1, "member %d got %d copies of hello room" % (i, len(got))
        assert got[0].startswith("[lobby] session-"), got[0]
    print("room: %d of %d members got hello room once (sender's echo once); %d probes" % (n - 1, n - 1, k))


def badname(addr):
    p = Peer(addr)
    for name, why in ((b"", "empty"), (b"x" * 300, "longer than 255 bytes"), (b"\xff\xfeab", "not valid UTF-8")):
        p.send(b"/join " + name)
        got = p.lines(5)
        assert len(got) == 1 and got[0].startswith("error: invalid room name: ") and why in got[0], (name[:10], got)
    p.send("/join")
    got = p.lines(5)
    assert len(got) == 1 and got[0].startswith("error: invalid room name: empty"), got
    p.send("still here?")
    p.expect("join a room first: /join ROOM")  # no room was joined by the bad names
    long_ok = "é" * 127  # 254 bytes: a valid name
    p.send("/join " + long_ok)
    p.expect("joined " + long_ok)
    p.send("/join " + "x" * 256)
    assert p.lines(5)[0].startswith("error: invalid room name: longer than 255 bytes")
    p.send("hi")
    got = p.lines(5)
    assert len(got) == 1 and got[0].startswith("[" + long_ok + "] session-") and got[0].endswith(": hi"), got
    print("badname: errors for empty, 300 and 256 bytes, invalid UTF-8; the connection works on")


if __name__ == "__main__":
    if sys.argv[1] == "room":
        room(int(sys.argv[2]), sys.argv[3:])
    elif sys.argv[1] == "badname":
        badname(sys.argv[2])
    else:
        sys.exit(__doc__)

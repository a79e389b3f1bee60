#!/usr/bin/python3
"""Two chat clients on one transport: both join a room, a third stays in another room;
a line from the first reaches both room members and not the outsider.
Usage: chat_client.py tcp HOST:PORT | ws ws://HOST:PORT/PATH"""
import asyncio
import socket
import struct
import sys


def packet(text, msg_id):
    body = text.encode()
    return struct.pack(">BBBBIHIH", 1, 0, 0, 0, msg_id, 0, len(body), 0) + body


def parse(data):
    ver, comp, ptype, _biz, _mid, ext_len, pay_len, _flags = struct.unpack(">BBBBIHIH", data[:16])
    assert ver == 1 and comp == 0 and ptype == 0, (ver, comp, ptype)
    return data[16 + ext_len:16 + ext_len + pay_len].decode()


class TcpPeer:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=5)
        self.n = 0

    async def send(self, text):
        self.n += 1
        self.s.sendall(packet(text, self.n))

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise EOFError("server closed")
            buf += chunk
        return buf

    async def recv(self, timeout=5):
        self.s.settimeout(timeout)
        head = self._exact(16)
        ext_len, pay_len = struct.unpack(">HI", head[8:14])
        return parse(head + self._exact(ext_len + pay_len))


class WsPeer:
    @classmethod
    async def open(cls, url):
        import websockets
        p = cls()
        p.ws = await websockets.connect(url)
        p.n = 0
        return p

    async def send(self, text):
        self.n += 1
        await self.ws.send(packet(text, self.n))

    async def recv(self, timeout=5):
        return parse(await asyncio.wait_for(self.ws.recv(), timeout))


async def main():
    kind, addr = sys.argv[1], sys.argv[2]
    if kind == "tcp":
        peers = [TcpPeer(addr) for _ in range(3)]
    else:
        peers = [await WsPeer.open(addr) for _ in range(3)]
    a, b, outsider = peers
    await a.send("hello before joining")
    assert await a.recv() == "join a room first: /join ROOM"
    for p, room in ((a, "lobby"), (b, "lobby"), (outsider, "other")):
        await p.send("/join " + room)
        got = await p.recv()
        assert got == "joined " + room, got
    await a.send("hi all")
    for p in (a, b):
        got = await p.recv()
        assert got.startswith("[lobby] session-") and got.endswith(": hi all"), got
    await outsider.send("anyone?")
    got = await outsider.recv()
    assert got.endswith(": anyone?") and got.startswith("[other]"), got
    # b received nothing from the other room: its next line is from its own room.
    await b.send("second")
    for p in (b, a):
        got = await p.recv()
        assert got.endswith(": second") and got.startswith("[lobby]"), got
    print(kind, "chat ok")


asyncio.run(main())

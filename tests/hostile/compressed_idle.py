"""Finding 1 of issue #14: a connection that sends one small compressed request that
decompresses to almost 16 MiB, reads the echo and then idles, must not keep that
memory. Asserts RSS growth per idle connection is at most 1 MiB (the bug kept ~32 MiB),
for zstd and zlib over TCP and zstd over WebSocket, and that memory comes back after
the connections close."""
import asyncio
import socket
import zlib

import hostile
from hostile import Server, check, packet, read_packet

import websockets
import zstandard

CONNS = 48
SIZE = 16 * 1024 * 1024 - 4096  # just under the default max_message_size
MIB = 1024 * 1024
BODY = bytes(SIZE)
COMPRESSED = {
    hostile.ZSTD: zstandard.ZstdCompressor(level=3).compress(BODY),
    hostile.ZLIB: zlib.compress(BODY, 9),
}


def tcp_request(addr, comp, mid):
    s = socket.create_connection(addr)
    s.sendall(packet(COMPRESSED[comp], message_id=mid, compression=comp))
    head, body = read_packet(s, timeout=60)
    data = body
    if head["compression"] == hostile.ZSTD:
        data = zstandard.ZstdDecompressor().decompress(body, max_output_size=SIZE * 2)
    elif head["compression"] == hostile.ZLIB:
        data = zlib.decompress(body)
    assert len(data) == SIZE, f"echo of {len(data)} bytes, not {SIZE}"
    return s


def tcp_case(comp, name):
    srv = Server("--tcp", "127.0.0.1:0", "--threads", "2", "--log-level", "warn")
    try:
        addr = srv.hostport("tcp")
        # Warm up: the loops' scratch and the allocator's arenas.
        for i in range(4):
            tcp_request(addr, comp, i + 1).close()
        base = srv.rss()
        conns = [tcp_request(addr, comp, i + 1) for i in range(CONNS)]
        grown = srv.rss() - base
        check(grown <= CONNS * MIB,
              f"{name}: {CONNS} idle connections after an almost-16 MiB request grew RSS by "
              f"{grown / MIB:.1f} MiB ({grown / CONNS / MIB:.2f} MiB each, bound 1 MiB)")
        for s in conns:
            s.close()
        # A fresh request is served at once, and memory is back near the floor.
        tcp_request(addr, comp, 99).close()
        after = srv.rss() - base
        check(after <= 64 * MIB, f"{name}: after every connection closed RSS is {after / MIB:+.1f} MiB from the floor")
    finally:
        srv.stop()


async def ws_case():
    srv = Server("--ws", "127.0.0.1:0/ws", "--threads", "2", "--log-level", "warn")
    try:
        host, port = srv.hostport("ws")
        url = f"ws://{host}:{port}/ws"
        wire = packet(COMPRESSED[hostile.ZSTD], compression=hostile.ZSTD)

        async def one():
            ws = await websockets.connect(url, max_size=None, compression=None)
            await ws.send(wire)
            reply = await asyncio.wait_for(ws.recv(), 60)
            assert len(reply) >= 16
            return ws

        for _ in range(4):
            await (await one()).close()
        base = srv.rss()
        conns = [await one() for _ in range(CONNS)]
        grown = srv.rss() - base
        check(grown <= CONNS * MIB,
              f"ws zstd: {CONNS} idle connections after an almost-16 MiB request grew RSS by "
              f"{grown / MIB:.1f} MiB ({grown / CONNS / MIB:.2f} MiB each, bound 1 MiB)")
        for ws in conns:
            await ws.close()
    finally:
        srv.stop()


tcp_case(hostile.ZSTD, "tcp zstd")
tcp_case(hostile.ZLIB, "tcp zlib")
asyncio.run(ws_case())
hostile.finish()

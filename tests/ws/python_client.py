#!/usr/bin/python3
"""Python's websockets (Debian python3-websockets, run with /usr/bin/python3) as an
independent client of `msgtrans serve --ws`, over ws:// and wss://.

Usage: /usr/bin/python3 python_client.py PATH/TO/msgtrans
"""
import asyncio
import os
import re
import signal
import ssl
import struct
import subprocess
import sys
import tempfile

import websockets

MSGTRANS = sys.argv[1]
passed = 0


def request_packet(msg_id, payload, biz=0):
    return struct.pack(">BBBBIHIH", 1, 0, 1, biz, msg_id, 0, len(payload), 0) + payload


def start_fixture(path, *args):
    proc = subprocess.Popen([MSGTRANS, "serve", "--ws", "127.0.0.1:0" + path, "--threads", "1", *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"^listening (wss?) (\S+):(\d+)(/\S*)$", line.strip())
    if not m:
        proc.kill()
        raise RuntimeError(f"fixture did not start: {line!r}")
    return proc, f"{m[1]}://{m[2]}:{m[3]}{m[4]}", int(m[3])


def stop_fixture(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def ok(name):
    global passed
    passed += 1
    print(f"ok - {name}", flush=True)


async def expect_close(ws, code, reason_part=""):
    try:
        while True:
            await ws.recv()
    except websockets.ConnectionClosed as e:
        assert e.rcvd is not None, "no close frame from the server"
        assert e.rcvd.code == code, f"close code {e.rcvd.code}, wanted {code}"
        assert reason_part in e.rcvd.reason, e.rcvd.reason


async def echo_round(uri, ssl_ctx=None, count=100):
    async with websockets.connect(uri, ssl=ssl_ctx, compression=None, max_size=None) as ws:
        for i in range(1, count + 1):
            await ws.send(request_packet(i, bytes([i % 256]) * (i * 37)))
        for i in range(1, count + 1):
            reply = await ws.recv()
            assert isinstance(reply, bytes)
            version, _, ptype, _, msg_id, ext, plen, _ = struct.unpack(">BBBBIHIH", reply[:16])
            assert (version, ptype, msg_id, ext, plen) == (1, 2, i, 0, i * 37), (ptype, msg_id, plen)
            assert reply[16:] == bytes([i % 256]) * (i * 37)


async def plain_tests():
    proc, uri, port = start_fixture("/py", "--max-message-size", "100000", "--ws-keep-alive-interval", "0.1",
                                    "--ws-keep-alive-timeout", "2")
    try:
        bystander = await websockets.connect(uri, compression=None)

        await echo_round(uri)
        ok("echo: 100 requests, sizes 37 B to 3.7 KB, answered in order")

        async with websockets.connect(uri, compression=None) as ws:
            # websockets answers the server's pings by itself; a few intervals pass here.
            for i in range(5):
                await ws.send(request_packet(i + 1, b"x"))
                assert (await ws.recv())[4:8] == struct.pack(">I", i + 1)
                await asyncio.wait_for(ws.ping(), 5)  # and pings from this side are answered too
        ok("ping/pong in both directions")

        try:
            await websockets.connect(uri.replace("/py", "/other"))
            raise AssertionError("wrong path was accepted")
        except websockets.InvalidStatusCode as e:
            assert e.status_code == 404, e.status_code
        ok("wrong path: HTTP 404")

        async with websockets.connect(uri, compression=None) as ws:
            await ws.send("a text message")
            await expect_close(ws, 1003, "text")
        ok("text message: close 1003")

        async with websockets.connect(uri, compression=None) as ws:
            await ws.send(b"\x02" * 40)
            await expect_close(ws, 1002, "packet")
        ok("non-packet binary: close 1002")

        async with websockets.connect(uri, compression=None) as ws:
            await ws.send(request_packet(1, b"z" * 200000))
            await expect_close(ws, 1009)
        ok("oversized: close 1009")

        async with websockets.connect(uri, compression=None) as ws:
            await ws.close(4002, "python says bye")
            assert ws.close_rcvd.code == 4002, ws.close_rcvd
        ok("client close code echoed")

        await bystander.send(request_packet(9, b"bystander"))
        assert (await bystander.recv())[4:8] == struct.pack(">I", 9)
        ok("bystander undisturbed")

        waiter = asyncio.ensure_future(expect_close(bystander, 1001, "stopping"))
        await asyncio.sleep(0)
        code = await asyncio.get_running_loop().run_in_executor(None, stop_fixture, proc)
        await waiter
        assert code == 0, code
        ok("shutdown: close 1001, msgtrans serve exits 0")
    finally:
        if proc.poll() is None:
            proc.kill()


async def tls_tests():
    with tempfile.TemporaryDirectory() as d:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        proc, uri, port = start_fixture("/secure", "--tls-cert", cert, "--tls-key", key)
        try:
            assert uri.startswith("wss://"), uri
            host_uri = f"wss://localhost:{port}/secure"
            try:
                await websockets.connect(host_uri, ssl=ssl.create_default_context())
                raise AssertionError("an unknown certificate was accepted")
            except ssl.SSLCertVerificationError:
                pass
            ok("wss: verifying client rejects the unknown certificate")

            trusting = ssl.create_default_context(cafile=cert)
            await echo_round(host_uri, trusting, 20)
            ok("wss: echo once the certificate is trusted")
        finally:
            stop_fixture(proc)


async def main():
    await plain_tests()
    await tls_tests()


try:
    asyncio.run(asyncio.wait_for(main(), 50))
    print(f"{passed} passed, 0 failed")
except Exception:
    import traceback
    traceback.print_exc()
    print(f"{passed} passed, 1 failed")
    sys.exit(1)

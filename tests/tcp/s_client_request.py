#!/usr/bin/python3
"""An independent tls:// peer: openssl s_client carries one wire-format request
(shared/spec/WIRE_FORMAT.md, built here byte by byte) and this script reads the
response off s_client's output and checks it.

Usage: s_client_request.py HOST:PORT CA_FILE SERVER_NAME MESSAGE_ID PAYLOAD
Prints "id=<id> type=<type> payload=<payload>"; exits 1 on any mismatch or failure."""
import struct
import subprocess
import sys


def packet(ptype, message_id, payload, biz=0):
    # version 1, compression 0, packet_type, biz_type, message_id, ext_len, payload_len, flags
    return struct.pack(">BBBBIHIH", 1, 0, ptype, biz, message_id, 0, len(payload), 0) + payload


def read_exact(stream, n):
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            sys.exit(f"EOF after {len(out)} of {n} bytes")
        out += chunk
    return out


def main():
    target, ca, name, message_id, payload = sys.argv[1:6]
    message_id = int(message_id)
    proc = subprocess.Popen(
        ["openssl", "s_client", "-connect", target, "-CAfile", ca, "-verify_return_error",
         "-verify_hostname", name, "-servername", name, "-quiet", "-no_ign_eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(packet(1, message_id, payload.encode()))
        proc.stdin.flush()
        header = read_exact(proc.stdout, 16)
        version, comp, ptype, biz, mid, ext_len, plen, flags = struct.unpack(">BBBBIHIH", header)
        body = read_exact(proc.stdout, ext_len + plen)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if version != 1 or comp != 0 or ptype != 2 or mid != message_id:
        sys.exit(f"unexpected header: version={version} compression={comp} type={ptype} id={mid}")
    got = body[ext_len:].decode()
    if got != payload:
        sys.exit(f"payload {got!r} != {payload!r}")
    print(f"id={mid} type={ptype} payload={got}")


main()

#!/usr/bin/python3
"""An independent tls:// peer for mutual TLS: Python's ssl module (OpenSSL underneath,
but none of msgtrans's code) with or without a client certificate sends one wire-format
request (shared/spec/WIRE_FORMAT.md) and reads the response.

Usage: mtls_client.py HOST PORT CA_FILE [CERT KEY]
Prints "ok <payload>" and exits 0 when answered; prints "refused: <reason>" and exits 3
when the server refuses the certificate (or its absence); anything else exits 1."""
import socket
import ssl
import struct
import sys


def main():
    host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if len(sys.argv) > 5:
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    payload = b"mutual"
    request = struct.pack(">BBBBIHIH", 1, 0, 1, 0, 9, 0, len(payload), 0) + payload
    try:
        with socket.create_connection((host, port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(request)
                data = b""
                while len(data) < 16 + len(payload):
                    chunk = s.recv(4096)
                    if not chunk:
                        print("refused: connection closed without a response")
                        return 3
                    data += chunk
    except ssl.SSLError as e:
        print(f"refused: {e.reason or e}")
        return 3
    except (ConnectionResetError, BrokenPipeError) as e:
        print(f"refused: {e}")
        return 3
    version, _, ptype, _, mid, ext_len, plen, _ = struct.unpack(">BBBBIHIH", data[:16])
    if (version, ptype, mid) != (1, 2, 9):
        print(f"unexpected header {version} {ptype} {mid}")
        return 1
    print("ok " + data[16 + ext_len:16 + ext_len + plen].decode())
    return 0


sys.exit(main())

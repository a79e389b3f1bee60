# drive_requests.py PORT N PIPELINE [TOKEN]: N 64-byte requests, PIPELINE in flight, over one
# TCP connection (after the authentication packet when TOKEN is given); prints the count.
# The driver of bench/callgrind_echo.sh.
import socket, struct, sys
port, n, k = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tok = sys.argv[4].encode() if len(sys.argv) > 4 else None
s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def pkt(t, mid, payload=b"", ext=b""):
    return struct.pack(">BBBBIHIH", 1, 0, t, 0, mid, len(ext), len(payload), 0) + ext + payload
buf = b""
def read_one():
    global buf
    while len(buf) < 16 or len(buf) < 16 + struct.unpack(">H", buf[8:10])[0] + struct.unpack(">I", buf[10:14])[0]:
        d = s.recv(65536)
        if not d: raise SystemExit("closed")
        buf += d
    L = 16 + struct.unpack(">H", buf[8:10])[0] + struct.unpack(">I", buf[10:14])[0]
    p, buf = buf[:L], buf[L:]
    return p
if tok:
    s.sendall(pkt(1, 0, tok, b"msgtrans.auth/1"))
    a = read_one(); assert a[16 + 15] == 1, a
sent = got = 0
pay = b"x" * 64
while got < n:
    batch = b""
    while sent < n and sent - got < k:
        sent += 1; batch += pkt(1, sent, pay)
    if batch: s.sendall(batch)
    read_one(); got += 1
print(got)

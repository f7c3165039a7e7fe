"""A fake WebSocket server for test_deflate_client.sh: it answers
`duplex connect --deflate` with a chosen permessage-deflate response, to
check the client's side of RFC 7692 negotiation.

    python3 deflate_fake_server.py

Prints "port N", then one line per event:
    offer PATH EXTENSIONS       the client's Sec-WebSocket-Extensions
    recv PATH rsv1=R len=N      a message from the client (R: RSV1 of its
                                first frame; N: its payload length after
                                inflating when R is 1)
The path picks the response (see RESPONSES); /ok/... paths accept, echo each
message back compressed (so the client must inflate) and close with 1000.
"""
import base64
import hashlib
import socket
import struct
import sys
import threading
import zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# path -> the Sec-WebSocket-Extensions header lines of the response
RESPONSES = {
    # refused by the client
    "/bad/two": ["permessage-deflate, permessage-deflate"],
    "/bad/two-lines": ["permessage-deflate", "permessage-deflate"],
    "/bad/cmwb-no-value": ["permessage-deflate; client_max_window_bits"],
    "/bad/duplicate": ["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
    "/bad/duplicate-cmwb": ["permessage-deflate; client_max_window_bits=10; client_max_window_bits=10"],
    "/bad/unknown": ["permessage-deflate; mystery=1"],
    "/bad/smwb-range": ["permessage-deflate; server_max_window_bits=7"],
    "/bad/larger": ["permessage-deflate; client_max_window_bits=12"],
    "/bad/not-offered": ["x-webkit-deflate-frame"],
    # accepted
    "/ok/cmwb8": ["permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                  "client_max_window_bits=8"],
    "/ok/cmwb10": ["permessage-deflate; client_max_window_bits=10"],
    "/ok/plain": ["permessage-deflate"],
}

lock = threading.Lock()


def say(line):
    with lock:
        print(line, flush=True)


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b


def read_frame(c):
    h = recv_exact(c, 2)
    fin, rsv1, op = h[0] & 0x80, h[0] & 0x40, h[0] & 0x0F
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(c, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(c, 8))[0]
    mask = recv_exact(c, 4) if h[1] & 0x80 else b"\0\0\0\0"
    p = bytearray(recv_exact(c, n))
    for i in range(n):
        p[i] ^= mask[i & 3]
    return bool(fin), bool(rsv1), op, bytes(p)


def frame(op, payload, rsv1=False):
    b0 = 0x80 | (0x40 if rsv1 else 0) | op
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 126, n)
    else:
        head = struct.pack("!BBQ", b0, 127, n)
    return head + payload


def handle(c):
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(4096)
            if not d:
                return
            head += d
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs.setdefault(k.strip().lower(), []).append(v.strip())
        say(f"offer {path} {', '.join(hdrs.get('sec-websocket-extensions', ['-']))}")
        key = hdrs["sec-websocket-key"][0].encode()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n")
        for e in RESPONSES.get(path, []):
            resp += f"Sec-WebSocket-Extensions: {e}\r\n"
        c.sendall((resp + "\r\n").encode())
        if not path.startswith("/ok/"):
            c.settimeout(5)
            try:  # the client should hang up at once
                while c.recv(4096):
                    pass
            except OSError:
                pass
            return
        while True:
            fin, rsv1, op, p = read_frame(c)
            first_rsv1 = rsv1
            while not fin:
                fin, _, _, more = read_frame(c)
                p += more
            if op == 8:
                c.sendall(frame(8, p[:2]))
                return
            if first_rsv1:
                p = zlib.decompressobj(-15).decompress(p + b"\x00\x00\xff\xff")
            say(f"recv {path} rsv1={int(first_rsv1)} len={len(p)}")
            z = zlib.compressobj(6, zlib.DEFLATED, -15)
            out = z.compress(p) + z.flush(zlib.Z_SYNC_FLUSH)
            c.sendall(frame(op, out[:-4], rsv1=True))
    except (EOFError, OSError):
        pass
    finally:
        c.close()


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(f"port {s.getsockname()[1]}", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())

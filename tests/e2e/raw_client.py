"""A raw-socket WebSocket client for end-to-end tests (standard library only).

It does exactly what it is told, byte for byte, so tests can send what a
well-behaved client never would: malformed handshakes, unmasked frames,
reserved opcodes, oversized control frames, half-sent requests.

    from raw_client import *
    c = open_ws(port)                  # handshake done, 101 checked
    c.send_frame(OP_TEXT, b"hi")       # masked unless mask=False
    fin, rsv, op, payload = c.recv_frame()
    code, reason = c.expect_close()    # next frame must be a close frame
    c.wait_eof()                       # the server closed the TCP connection

Checks print "ok - NAME" / "not ok - NAME: WHY" through Report.
"""
import base64
import hashlib
import os
import socket
import struct
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
HOST = "127.0.0.1"


class Timeout(Exception):
    pass


class Closed(Exception):
    """The server closed the TCP connection (EOF or reset)."""


class Report:
    def __init__(self, title):
        self.title = title
        self.passed = 0
        self.failed = 0

    def ok(self, name):
        self.passed += 1
        print(f"ok - {name}", flush=True)

    def not_ok(self, name, why):
        self.failed += 1
        print(f"not ok - {name}: {why}", flush=True)

    def check(self, name, cond, why=""):
        if cond:
            self.ok(name)
        else:
            self.not_ok(name, why)
        return bool(cond)

    def run(self, name, fn, *args):
        """Run a check function; an exception is a failure of that check."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001
            self.not_ok(name, f"{type(e).__name__}: {e}")

    def finish(self):
        print(f"# {self.title}: {self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(port, path="/", key=None, method="GET", version="13", connection="Upgrade",
                    upgrade="websocket", extra=(), omit=()):
    """An HTTP/1.1 upgrade request as bytes. `extra` is a list of (name, value);
    `omit` names headers to leave out."""
    key = new_key() if key is None else key
    headers = [
        ("Host", f"{HOST}:{port}"),
        ("Upgrade", upgrade),
        ("Connection", connection),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", version),
    ]
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{n}: {v}" for n, v in headers if n.lower() not in {o.lower() for o in omit}]
    lines += [f"{n}: {v}" for n, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None, mask_key=None):
    """Encode one frame. `rsv` is the 3 RSV bits (0..7, RSV1 = 4); `length`
    overrides the encoded payload length (the payload itself is unchanged)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4) if mask_key is None else mask_key
    return head + key + xor(payload, key)


def xor(data, key):
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(len(data), "big")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


def parse_close(payload):
    if len(payload) < 2:
        return None, payload
    return struct.unpack("!H", payload[:2])[0], payload[2:]


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lowercase name, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        """The values of a header, joined by ", " (None if absent)."""
        vals = [v for n, v in self.headers if n == name.lower()]
        return ", ".join(vals) if vals else None

    def tokens(self, name):
        v = self.header(name)
        return [t.strip().lower() for t in v.split(",")] if v else []

    def __repr__(self):
        return f"<HTTP {self.status} {self.reason} {self.headers} body={self.body[:80]!r}>"


class Conn:
    def __init__(self, port, timeout=5.0, rcvbuf=None, connect=True):
        self.port = port
        self.buf = b""
        self.last_rsv = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        if connect:
            self.sock.connect((HOST, port))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def send_slowly(self, data, chunk=1):
        """Send `chunk` bytes per send() call (no delays)."""
        for i in range(0, len(data), chunk):
            self.sock.sendall(data[i:i + chunk])

    def _fill(self, deadline):
        """Read more bytes into the buffer; raise Closed on EOF/reset and
        Timeout at the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("timed out")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(1 << 16)
        except socket.timeout:
            raise Timeout("timed out") from None
        except ConnectionResetError:
            raise Closed("connection reset") from None
        if not d:
            raise Closed("EOF")
        self.buf += d

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, timeout=5.0, body=True):
        """Read an HTTP response head (and its body: by Content-Length, else
        until EOF if the status is not 101)."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for ln in lines[1:]:
            n, _, v = ln.partition(":")
            headers.append((n.strip().lower(), v.strip()))
        resp = Response(status, reason, headers, b"", head)
        if body and status != 101:
            cl = resp.header("content-length")
            if "chunked" in resp.tokens("transfer-encoding"):
                resp.body = self._read_chunked(deadline)
            elif cl is not None:
                resp.body = self._take(int(cl), deadline)
            else:
                try:
                    while True:
                        self._fill(deadline)
                except Closed:
                    pass
                resp.body, self.buf = self.buf, b""
        return resp

    def _read_chunked(self, deadline):
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill(deadline)
            line, self.buf = self.buf.split(b"\r\n", 1)
            n = int(line.split(b";")[0], 16)
            if n == 0:
                while b"\r\n" not in self.buf:  # no trailers expected
                    self._fill(deadline)
                self.buf = self.buf.split(b"\r\n", 1)[1]
                return body
            body += self._take(n, deadline)
            self._take(2, deadline)

    def handshake(self, path="/", key=None, **kw):
        key = new_key() if key is None else key
        self.send(upgrade_request(self.port, path, key=key, **kw))
        resp = self.read_response()
        if resp.status != 101:
            raise AssertionError(f"handshake: expected 101, got {resp!r}")
        if resp.header("sec-websocket-accept") != accept_for(key):
            raise AssertionError(f"handshake: bad Sec-WebSocket-Accept in {resp!r}")
        return resp

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(frame(opcode, payload, **kw))

    def send_close(self, code=None, reason=b""):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def recv_frame(self, timeout=5.0):
        """One frame: (fin, rsv, opcode, payload). Server frames must be
        unmasked; a masked one raises AssertionError."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._take(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, deadline))[0]
        if b1 & 0x80:
            raise AssertionError("the server sent a masked frame")
        payload = self._take(n, deadline)
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload

    def recv_message(self, timeout=5.0, pong_pings=False):
        """The next data message as (opcode, payload), reassembled. Control
        frames in between are returned as they come unless pong_pings (then
        pings are answered and skipped). The first frame's RSV bits are left
        in self.last_rsv."""
        deadline = time.monotonic() + timeout
        op, parts = None, []
        while True:
            fin, rsv, o, p = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if op is None:
                self.last_rsv = rsv  # RSV bits of the message's first frame
            if o >= 8:
                if o == OP_PING and pong_pings:
                    self.send_frame(OP_PONG, p)
                    continue
                if op is None:
                    return o, p
                raise AssertionError(f"control frame {o} inside a fragmented message")
            if op is None:
                if o == OP_CONT:
                    raise AssertionError("continuation frame without a message")
                op = o
            elif o != OP_CONT:
                raise AssertionError(f"opcode {o} inside a fragmented message")
            parts.append(p)
            if fin:
                return op, b"".join(parts)

    def echo(self, opcode, payload, timeout=5.0):
        """Send a message and return the echo's (opcode, payload)."""
        self.send_frame(opcode, payload)
        return self.recv_message(timeout, pong_pings=True)

    def expect_close(self, timeout=5.0):
        """The next frame must be a close frame: returns (code, reason)."""
        fin, rsv, op, p = self.recv_frame(timeout)
        if op != OP_CLOSE:
            raise AssertionError(f"expected a close frame, got opcode {op} payload {p[:40]!r}")
        return parse_close(p)

    def wait_eof(self, timeout=5.0):
        """Wait for the server to close the TCP connection (EOF or reset),
        discarding what arrives. Returns seconds waited; raises Timeout."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            while True:
                self._fill(deadline)
                self.buf = b""
        except Closed:
            return time.monotonic() - t0


def open_ws(port, path="/", timeout=5.0, **kw):
    c = Conn(port, timeout=timeout, **kw)
    c.handshake(path)
    return c


def http_request(port, raw, timeout=5.0):
    """Send raw bytes, return the Response."""
    c = Conn(port, timeout=timeout)
    try:
        c.send(raw)
        return c.read_response(timeout)
    finally:
        c.close()

"""permessage-deflate (RFC 7692) byte for byte, with zlib on our side.

    deflate_raw.py shared PORT     # server: --deflate
    deflate_raw.py takeover PORT   # server: --deflate --deflate-mode takeover
    deflate_raw.py bomb PORT       # server: --deflate --max-message 64K
"""
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import (  # noqa: E402
    OP_BINARY, OP_CONT, OP_PING, OP_TEXT, Closed, Conn, Report, Timeout, frame,
)

MODE, PORT = sys.argv[1], int(sys.argv[2])
r = Report(f"permessage-deflate ({MODE})")
OFFER = "permessage-deflate; client_max_window_bits"
TAIL = b"\x00\x00\xff\xff"
TEXT_STR = "It was the best of times, it was the worst of times — ✓ 😀 " * 200
TEXT = TEXT_STR.encode()


def parse_ext(value):
    """'permessage-deflate; a; b=1' -> ('permessage-deflate', {'a': None, 'b': '1'})."""
    parts = [p.strip() for p in value.split(";")]
    params = {}
    for p in parts[1:]:
        n, _, v = p.partition("=")
        params[n.strip().lower()] = v.strip().strip('"') or None
    return parts[0].lower(), params


class Pmd:
    """A client connection with permessage-deflate negotiated (or not)."""

    def __init__(self, offer=OFFER, path="/"):
        self.c = Conn(PORT)
        resp = self.c.handshake(path, extra=[("Sec-WebSocket-Extensions", offer)] if offer else [])
        self.ext = resp.header("sec-websocket-extensions")
        self.name, self.params = parse_ext(self.ext) if self.ext else (None, {})
        self.client_ncto = "client_no_context_takeover" in self.params
        self.server_ncto = "server_no_context_takeover" in self.params
        self.cbits = int(self.params.get("client_max_window_bits") or 15)
        self.sbits = int(self.params.get("server_max_window_bits") or 15)
        self.comp = None
        self.decomp = None

    def compress(self, data, reset=None):
        if self.comp is None or self.client_ncto or reset:
            self.comp = zlib.compressobj(6, zlib.DEFLATED, -max(9, self.cbits))
        out = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-4]

    def decompress(self, data):
        if self.decomp is None or self.server_ncto:
            self.decomp = zlib.decompressobj(-self.sbits)
        return self.decomp.decompress(data + TAIL)

    def send_compressed(self, opcode, data, **kw):
        self.c.send_frame(opcode, self.compress(data, **kw), rsv=4)

    def recv(self, timeout=10.0):
        """The next message, decompressed if RSV1: (opcode, data, was_compressed)."""
        op, p = self.c.recv_message(timeout, pong_pings=True)
        if self.c.last_rsv & 4:
            return op, self.decompress(p), True
        return op, p, False

    def close(self):
        self.c.close()


def expect_fail(name, send_bad, codes, offer=OFFER):
    try:
        m = Pmd(offer)
        send_bad(m)
        code, reason = m.c.expect_close()
        r.check(f"{name} -> close {'/'.join(map(str, codes))}", code in codes, f"close code {code} {reason!r}")
        m.c.wait_eof(4.0)
        r.ok(f"{name}: TCP closed after the close frame")
    except (Closed, Timeout, AssertionError, OSError) as e:
        r.not_ok(f"{name} -> close {'/'.join(map(str, codes))}", f"{type(e).__name__}: {e}")
    try:
        m.close()
    except NameError:
        pass


def echo_checks(m, label):
    # A compressed text message; the echo is compressed too (it is large and
    # compressible, above the server's threshold).
    m.send_compressed(OP_TEXT, TEXT)
    op, data, z = m.recv()
    r.check(f"{label}: compressed text echoes", (op, data) == (OP_TEXT, TEXT), f"got {op} {len(data)} bytes")
    r.check(f"{label}: the echo of a 12 KB compressible message is compressed (RSV1)", z, "RSV1 not set")
    # Binary, compressed.
    b = bytes(range(256)) * 64
    m.send_compressed(OP_BINARY, b)
    op, data, z = m.recv()
    r.check(f"{label}: compressed binary echoes", (op, data) == (OP_BINARY, b), f"got {op} {len(data)} bytes")
    # Uncompressed messages stay legal once deflate is negotiated.
    m.c.send_frame(OP_TEXT, "plain ✓")
    op, data, z = m.recv()
    r.check(f"{label}: an uncompressed message (RSV1 clear) echoes", (op, data) == (OP_TEXT, "plain ✓".encode()),
            f"got {op} {data!r}")
    # A compressed message split over three frames: RSV1 on the first only.
    z_all = m.compress(TEXT * 2)
    a, b_, c = z_all[: len(z_all) // 3], z_all[len(z_all) // 3: 2 * len(z_all) // 3], z_all[2 * len(z_all) // 3:]
    m.c.send(frame(OP_TEXT, a, fin=False, rsv=4) + frame(OP_CONT, b_, fin=False) + frame(OP_CONT, c))
    op, data, z = m.recv()
    r.check(f"{label}: a compressed message in three fragments echoes", (op, data) == (OP_TEXT, TEXT * 2),
            f"got {op} {len(data)} bytes")
    # An empty compressed message.
    m.send_compressed(OP_TEXT, b"")
    op, data, z = m.recv()
    r.check(f"{label}: an empty compressed message echoes empty", (op, data) == (OP_TEXT, b""), f"got {op} {data!r}")
    # Ten similar messages in a row (with takeover, each builds on the last).
    bad = []
    for i in range(10):
        msg = f"message {i}: {TEXT_STR[: 500 + i * 37]}".encode()
        m.send_compressed(OP_TEXT, msg)
        op, data, z = m.recv()
        if (op, data) != (OP_TEXT, msg):
            bad.append(i)
    r.check(f"{label}: ten similar compressed messages in a row echo", not bad, f"wrong echoes: {bad}")


def shared():
    m = Pmd()
    r.check("--deflate: offer accepted", m.name == "permessage-deflate", f"Sec-WebSocket-Extensions: {m.ext!r}")
    r.check("shared mode: response has server_no_context_takeover and client_no_context_takeover",
            m.server_ncto and m.client_ncto, f"{m.ext!r}")
    r.run("shared: echo checks", echo_checks, m, "shared")
    m.close()

    # Protocol errors with deflate on.
    expect_fail("RSV1 on a continuation frame",
                lambda m: m.c.send(frame(OP_TEXT, m.compress(TEXT)[:10], fin=False, rsv=4)
                                   + frame(OP_CONT, b"\x00", rsv=4)), [1002])
    expect_fail("RSV1 on a ping", lambda m: m.c.send(frame(OP_PING, b"\x00", rsv=4)), [1002])
    expect_fail("RSV2 with deflate negotiated", lambda m: m.c.send(frame(OP_TEXT, b"x", rsv=2)), [1002])
    expect_fail("compressed data that does not inflate",
                lambda m: m.c.send(frame(OP_BINARY, b"\xff\xff\xff\xff garbage", rsv=4)), [1007, 1002])
    expect_fail("compressed text that inflates to invalid UTF-8",
                lambda m: m.send_compressed(OP_TEXT, b"abc\xed\xa0\x80def" * 20), [1007])
    expect_fail("RSV1 when the offer was declined (unknown parameter)",
                lambda m: m.c.send(frame(OP_TEXT, m.compress(b"hello"), rsv=4)), [1002],
                offer="permessage-deflate; no_such_param")

    # Negotiation.
    m = Pmd("permessage-deflate; no_such_param=1")
    r.check("an offer with an unknown parameter is declined (101, no extension)", m.ext is None, f"{m.ext!r}")
    m.c.send_frame(OP_TEXT, b"still works")
    op, data, z = m.recv()
    r.check("... and the connection works uncompressed", (op, data, z) == (OP_TEXT, b"still works", False),
            f"got {op} {data!r} {z}")
    m.close()
    m = Pmd("permessage-deflate; no_such_param, permessage-deflate; client_max_window_bits")
    r.check("of two offers, the first unacceptable, the second is accepted", m.name == "permessage-deflate",
            f"{m.ext!r}")
    m.close()
    m = Pmd("x-webkit-deflate-frame, foo")
    r.check("unknown extensions only: no extension in the response", m.ext is None, f"{m.ext!r}")
    m.close()
    m = Pmd(None)
    r.check("no offer: no extension in the response", m.ext is None, f"{m.ext!r}")
    m.close()

    # server_max_window_bits=10: if accepted, the server's compressor must
    # stay within a 1 KiB window (back-references further away would not
    # inflate with a 10-bit window).
    m = Pmd("permessage-deflate; server_max_window_bits=10")
    if m.name is None:
        r.ok("an offer with server_max_window_bits=10 is declined (allowed)")
    else:
        r.check("server_max_window_bits=10 accepted with a value <= 10 in the response",
                m.sbits <= 10 and "server_max_window_bits" in m.params, f"{m.ext!r}")
        block = os.urandom(2048)
        msg = block * 8  # repeats 2 KiB apart: a 32 KiB window would reach back
        m.send_compressed(OP_BINARY, msg)
        try:
            op, data, z = m.recv()
            r.check("... and the server's output inflates with a 10-bit window", data == msg,
                    f"got {len(data)} bytes")
        except zlib.error as e:
            r.not_ok("... and the server's output inflates with a 10-bit window", f"zlib: {e}")
    m.close()
    # client_max_window_bits=9 offered: our compressor uses a 512-byte window.
    m = Pmd("permessage-deflate; client_max_window_bits=9")
    if m.name is not None:
        msg = (os.urandom(300) * 20)
        m.cbits = min(m.cbits, 9)
        m.send_compressed(OP_BINARY, msg)
        op, data, z = m.recv()
        r.check("client_max_window_bits=9: a message compressed with a 9-bit window echoes", data == msg,
                f"got {len(data)} bytes")
    else:
        r.ok("an offer with client_max_window_bits=9 is declined (allowed)")
    m.close()


def takeover():
    m = Pmd()
    r.check("--deflate-mode takeover: offer accepted", m.name == "permessage-deflate", f"{m.ext!r}")
    r.check("takeover mode: no server_no_context_takeover in the response", not m.server_ncto, f"{m.ext!r}")
    r.run("takeover: echo checks", echo_checks, m, "takeover")
    # The server must really keep its inflate context: a message that only
    # makes sense with the previous one's window.
    m.send_compressed(OP_TEXT, TEXT)
    m.recv()
    m.send_compressed(OP_TEXT, TEXT)  # compresses to a few bytes of back-references
    op, data, z = m.recv()
    r.check("a message compressed against the previous one's window echoes", (op, data) == (OP_TEXT, TEXT),
            f"got {op} {len(data)} bytes")
    m.close()

    m = Pmd("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    if m.name is None:
        r.ok("an offer with server_no_context_takeover is declined (allowed)")
    else:
        r.check("server_no_context_takeover requested -> echoed in the response", m.server_ncto, f"{m.ext!r}")
        r.run("takeover, no_context_takeover requested: echo checks", echo_checks, m,
              "takeover, no_context_takeover requested")
    m.close()


def bomb():
    m = Pmd()
    msg = b"\x00" * (60 << 10)
    m.send_compressed(OP_BINARY, msg)
    op, data, z = m.recv()
    r.check("--max-message 64K: a 60 KiB message (compressed) echoes", (op, data) == (OP_BINARY, msg),
            f"got {op} {len(data)}")
    m.close()
    big = zlib.compressobj(9, zlib.DEFLATED, -15)
    z = big.compress(b"\x00" * (64 << 20)) + big.flush(zlib.Z_SYNC_FLUSH)
    print(f"# 64 MiB of zeros deflates to {len(z)} bytes")
    expect_fail("a 64 MiB zip bomb over --max-message 64K",
                lambda m: m.c.send_frame(OP_BINARY, z[:-4], rsv=4), [1009])
    expect_fail("a 65 KiB inflated message (just over 64K)",
                lambda m: m.send_compressed(OP_TEXT, b"a" * (65 << 10)), [1009])


r.run(MODE, {"shared": shared, "takeover": takeover, "bomb": bomb}[MODE])
r.finish()

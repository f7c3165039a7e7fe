"""permessage-deflate limits and violations over raw sockets (RFC 7692).

    /usr/bin/python3 deflate_limits.py SHARED_PORT SHARED_PID TAKEOVER_PORT TAKEOVER_PID PLAIN_PORT

SHARED_PORT runs `duplex echo --deflate --max-message 1M`, TAKEOVER_PORT
`duplex echo --deflate --deflate-mode takeover --max-message 1M`, PLAIN_PORT
`duplex echo --max-message 1M` (no compression). The PIDs are for reading the
servers' peak memory (VmHWM).
"""
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import (  # noqa: E402
    OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, Conn, Report, frame,
)

SHARED, SHARED_PID = int(sys.argv[1]), int(sys.argv[2])
TAKEOVER, TAKEOVER_PID = int(sys.argv[3]), int(sys.argv[4])
PLAIN = int(sys.argv[5])
r = Report("deflate limits")
RSV1, RSV2, RSV3 = 4, 2, 1
TAIL = b"\x00\x00\xff\xff"
MIB = 1 << 20
RSS_LIMIT_MB = 150


def deflate(data, wbits=15, level=6, final=False):
    """One message, compressed on its own (no context), tail stripped."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    if not final:
        assert out.endswith(TAIL)
        out = out[:-4]
    return out


def inflate(data):
    d = zlib.decompressobj(-15)
    return d.decompress(data + TAIL)


def open_pmd(port, offer="permessage-deflate; client_max_window_bits", path="/"):
    """Handshake offering `offer`; returns (conn, response extension or None)."""
    c = Conn(port)
    extra = [("Sec-WebSocket-Extensions", offer)] if offer is not None else []
    resp = c.handshake(path, extra=extra)
    return c, resp.header("sec-websocket-extensions")


def peak_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return -1


def expect_close_code(name, c, want, timeout=10.0):
    """The server's next frames end with a close frame carrying `want`."""
    try:
        while True:
            fin, rsv, op, p = c.recv_frame(timeout)
            if op == OP_CLOSE:
                code = int.from_bytes(p[:2], "big") if len(p) >= 2 else None
                r.check(name, code == want, f"close code {code} {p[2:]!r}, want {want}")
                return
    except Exception as e:  # noqa: BLE001
        r.not_ok(name, f"no close frame: {type(e).__name__}: {e}")
    finally:
        c.close()


def recv_message(c, timeout=10.0):
    """(opcode, rsv1 of the first frame, payload as received)."""
    op, rsv1, parts = None, None, []
    while True:
        fin, rsv, o, p = c.recv_frame(timeout)
        if o >= 8:
            continue
        if op is None:
            op, rsv1 = o, bool(rsv & RSV1)
        parts.append(p)
        if fin:
            return op, rsv1, b"".join(parts)


def still_serving(name, port):
    c, ext = open_pmd(port)
    try:
        msg = b"still serving " * 100
        c.send_frame(OP_BINARY, deflate(msg), rsv=RSV1)
        op, rsv1, p = recv_message(c)
        got = inflate(p) if rsv1 else p
        r.check(name, ext and got == msg, f"ext {ext!r}, got {got[:40]!r}")
        c.send_close(1000)
    finally:
        c.close()


# ---------------------------------------------------------------- negotiation

def negotiation():
    for port, label in ((SHARED, "shared"), (TAKEOVER, "takeover")):
        c, ext = open_pmd(port)
        r.check(f"[{label}] a plain offer is accepted", ext and ext.startswith("permessage-deflate"), f"{ext!r}")
        c.close()
    declined = [
        ("duplicate parameter", "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
        ("duplicate client_max_window_bits", "permessage-deflate; client_max_window_bits; client_max_window_bits=10"),
        ("server_max_window_bits=99", "permessage-deflate; server_max_window_bits=99"),
        ("server_max_window_bits=7", "permessage-deflate; server_max_window_bits=7"),
        ("server_max_window_bits=08 (leading zero)", "permessage-deflate; server_max_window_bits=08"),
        ("server_max_window_bits without a value", "permessage-deflate; server_max_window_bits"),
        ("client_max_window_bits=16", "permessage-deflate; client_max_window_bits=16"),
        ("client_max_window_bits=abc", "permessage-deflate; client_max_window_bits=abc"),
        ("a value on server_no_context_takeover", "permessage-deflate; server_no_context_takeover=1"),
        ("an unknown parameter", "permessage-deflate; mystery_param=1"),
        ("another extension only", "x-webkit-deflate-frame"),
    ]
    for name, offer in declined:
        for port, label in ((SHARED, "shared"), (TAKEOVER, "takeover")):
            try:
                c, ext = open_pmd(port, offer)
                r.check(f"[{label}] {name}: 101 without the extension (declined)", ext is None, f"answered {ext!r}")
                # The connection works, uncompressed.
                c.send_frame(OP_TEXT, b"plain after a declined offer")
                op, rsv1, p = recv_message(c)
                r.check(f"[{label}] {name}: then plain messages echo", not rsv1 and p == b"plain after a declined offer",
                        f"rsv1 {rsv1} {p!r}")
                c.close()
            except Exception as e:  # noqa: BLE001
                r.not_ok(f"[{label}] {name}: 101 without the extension", f"{type(e).__name__}: {e}")
    # A bad offer followed by a good one: the good one is taken.
    for port, label in ((SHARED, "shared"), (TAKEOVER, "takeover")):
        c, ext = open_pmd(port, "permessage-deflate; server_max_window_bits=99, permessage-deflate")
        r.check(f"[{label}] bad offer, then a good one: the second is accepted",
                ext is not None and ext.startswith("permessage-deflate") and "=99" not in ext, f"{ext!r}")
        c.close()
        # RFC 6455 9.1: a parameter value may be a quoted string.
        c, ext = open_pmd(port, 'permessage-deflate; client_max_window_bits="10"')
        r.check(f"[{label}] quoted value client_max_window_bits=\"10\" accepted",
                ext is not None and "client_max_window_bits=10" in ext.replace('"', ""), f"{ext!r}")
        c.close()


# ---------------------------------------------------------------- limits

def zip_bomb(port, pid, label):
    bomb = deflate(b"\0" * (64 * MIB), level=9)
    c, ext = open_pmd(port)
    r.check(f"[{label}] zip bomb: {len(bomb)} compressed bytes for 64 MiB, extension negotiated",
            ext is not None and len(bomb) < 100_000, f"{ext!r}, {len(bomb)} bytes")
    c.send(frame(OP_BINARY, bomb, rsv=RSV1))
    expect_close_code(f"[{label}] 64 MiB of zeros in one compressed frame -> 1009", c, 1009)
    # The same, fragmented into 64 continuation frames.
    c, ext = open_pmd(port)
    step = len(bomb) // 64 + 1
    chunks = [bomb[i:i + step] for i in range(0, len(bomb), step)]
    try:
        for i, ch in enumerate(chunks):
            c.send(frame(OP_TEXT if i == 0 else OP_CONT, ch, fin=i == len(chunks) - 1, rsv=RSV1 if i == 0 else 0))
    except OSError:
        pass  # the server may close before we are done
    expect_close_code(f"[{label}] the bomb in 64 fragments -> 1009", c, 1009)
    mb = peak_mb(pid)
    r.check(f"[{label}] server peak RSS stays under {RSS_LIMIT_MB} MB after the bombs ({mb:.0f} MB)",
            0 < mb < RSS_LIMIT_MB, f"VmHWM {mb:.0f} MB")
    still_serving(f"[{label}] still serving after the zip bombs", port)


def at_the_limit(port, label):
    data = bytes(range(256)) * (MIB // 256)  # exactly 1 MiB
    c, ext = open_pmd(port)
    c.send_frame(OP_BINARY, deflate(data), rsv=RSV1)
    op, rsv1, p = recv_message(c, 20)
    got = inflate(p) if rsv1 else p
    r.check(f"[{label}] exactly --max-message (1 MiB inflated) is echoed", got == data, f"{len(got)} bytes")
    c.close()
    c, ext = open_pmd(port)
    c.send_frame(OP_BINARY, deflate(data + b"x"), rsv=RSV1)
    expect_close_code(f"[{label}] 1 MiB + 1 byte inflated -> 1009", c, 1009)


# ---------------------------------------------------------------- violations

def violations(port, label):
    c, ext = open_pmd(port, offer=None)
    r.check(f"[{label}] no offer: no extension", ext is None, f"{ext!r}")
    c.send_frame(OP_TEXT, deflate(b"hello hello hello"), rsv=RSV1)
    expect_close_code(f"[{label}] RSV1 without a negotiated extension -> 1002", c, 1002)

    c, _ = open_pmd(port)
    c.send_frame(OP_BINARY, b"\xff\xfe\xfd this is not deflate data \x00\x01" * 10, rsv=RSV1)
    expect_close_code(f"[{label}] corrupted compressed data -> 1007", c, 1007)

    c, _ = open_pmd(port)
    good = deflate(b"a valid start " * 1000)
    bad = bytearray(good)
    for i in range(len(bad) // 3, len(bad)):
        bad[i] ^= 0x5A
    c.send_frame(OP_BINARY, bytes(bad), rsv=RSV1)
    expect_close_code(f"[{label}] a valid start, then corruption -> 1007", c, 1007)

    c, _ = open_pmd(port)
    comp = deflate(b"fragmented message " * 100)
    c.send_frame(OP_TEXT, comp[:10], fin=False, rsv=RSV1)
    c.send_frame(OP_CONT, comp[10:], fin=True, rsv=RSV1)
    expect_close_code(f"[{label}] RSV1 on a continuation frame -> 1002", c, 1002)

    c, _ = open_pmd(port)
    c.send_frame(OP_PING, b"x", rsv=RSV1)
    expect_close_code(f"[{label}] RSV1 on a ping -> 1002", c, 1002)

    for bit, nm in ((RSV2, "RSV2"), (RSV3, "RSV3")):
        c, _ = open_pmd(port)
        c.send_frame(OP_TEXT, b"hi", rsv=bit)
        expect_close_code(f"[{label}] {nm} with permessage-deflate negotiated -> 1002", c, 1002)

    c, _ = open_pmd(port)
    c.send_frame(OP_TEXT, deflate(b"valid prefix \xc3\x28 invalid UTF-8" * 10), rsv=RSV1)
    expect_close_code(f"[{label}] compressed text inflating to invalid UTF-8 -> 1007", c, 1007)

    c, _ = open_pmd(port)
    c.send_frame(OP_TEXT, deflate(b"x" * 100), rsv=RSV1)
    c.send_frame(OP_TEXT, b"second without RSV1, not finished", fin=False)
    c.send_frame(OP_TEXT, b"a new message inside a fragmented one")
    expect_close_code(f"[{label}] a data frame inside a fragmented message -> 1002", c, 1002)


# ---------------------------------------------------------------- behaviour

def behaviour(port, label, takeover):
    c, ext = open_pmd(port)
    try:
        msgs = [(b"%d: " % i) + b"the same sort of message, again and again " * 20 for i in range(5)]
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        dec = zlib.decompressobj(-15)
        bad = []
        for i, m in enumerate(msgs):
            if takeover:  # keep our context: the server must keep its inflater's window
                payload = comp.compress(m) + comp.flush(zlib.Z_SYNC_FLUSH)
                payload = payload[:-4]
            else:
                payload = deflate(m)
            c.send_frame(OP_BINARY, payload, rsv=RSV1)
            op, rsv1, p = recv_message(c)
            if not rsv1:
                bad.append(f"echo {i} not compressed")
                continue
            if takeover:
                got = dec.decompress(p + TAIL)
            else:
                got = zlib.decompressobj(-15).decompress(p + TAIL)  # each on its own
            if got != m:
                bad.append(f"echo {i} differs")
        why = "; ".join(bad)
        if takeover:
            r.check(f"[{label}] context takeover both ways over 5 similar messages", not bad, why)
        else:
            r.check(f"[{label}] every compressed echo inflates on its own (server_no_context_takeover)",
                    not bad, why)
        # Below the threshold (64 bytes): sent uncompressed.
        c.send_frame(OP_TEXT, deflate(b"tiny"), rsv=RSV1)
        op, rsv1, p = recv_message(c)
        r.check(f"[{label}] a 4-byte echo is not compressed (threshold)", not rsv1 and p == b"tiny", f"rsv1 {rsv1} {p!r}")
        # An uncompressed message on a compressing connection.
        c.send_frame(OP_TEXT, b"uncompressed " * 10)
        op, rsv1, p = recv_message(c)
        got = (dec.decompress(p + TAIL) if takeover else inflate(p)) if rsv1 else p
        r.check(f"[{label}] an uncompressed message (RSV1 clear) is accepted", got == b"uncompressed " * 10, repr(got[:40]))
        c.send_close(1000)
    finally:
        c.close()

    # A message ending with a final (BFINAL) block, as some senders do.
    c, _ = open_pmd(port)
    m = b"final block " * 50
    c.send_frame(OP_TEXT, deflate(m, final=True), rsv=RSV1)
    op, rsv1, p = recv_message(c)
    got = inflate(p) if rsv1 else p
    r.check(f"[{label}] a message compressed with a final block (BFINAL) is accepted", got == m, repr(got[:40]))
    c.close()

    # Empty compressed messages: one 0x00 byte, and no bytes at all.
    for payload, nm in ((b"\x00", "0x00"), (b"", "no payload")):
        c, _ = open_pmd(port)
        c.send_frame(OP_TEXT, payload, rsv=RSV1)
        op, rsv1, p = recv_message(c)
        got = inflate(p) if rsv1 else p
        r.check(f"[{label}] empty compressed message ({nm}) echoes empty", got == b"", repr(got))
        c.close()

    # A compressed message split into 1-byte frames.
    c, _ = open_pmd(port)
    m = b"split into tiny frames " * 200
    comp = deflate(m)
    for i in range(len(comp)):
        c.send(frame(OP_TEXT if i == 0 else OP_CONT, comp[i:i + 1], fin=i == len(comp) - 1,
                     rsv=RSV1 if i == 0 else 0))
    op, rsv1, p = recv_message(c)
    got = inflate(p) if rsv1 else p
    r.check(f"[{label}] a compressed message in {len(comp)} one-byte frames", got == m, f"{len(got)} bytes")
    c.close()


def two_connections_interleaved(port, label):
    """Fragments of two compressed messages on two connections, interleaved:
    the shared decompressor must not mix them."""
    a, _ = open_pmd(port)
    b, _ = open_pmd(port)
    ma, mb = b"AAAA connection one " * 500, b"BBBB connection two " * 500
    ca, cb = deflate(ma), deflate(mb)
    ha, hb = len(ca) // 2, len(cb) // 2
    a.send_frame(OP_TEXT, ca[:ha], fin=False, rsv=RSV1)
    b.send_frame(OP_TEXT, cb[:hb], fin=False, rsv=RSV1)
    a.send_frame(OP_CONT, ca[ha:], fin=True)
    b.send_frame(OP_CONT, cb[hb:], fin=True)
    ga = recv_message(a)
    gb = recv_message(b)
    ga = inflate(ga[2]) if ga[1] else ga[2]
    gb = inflate(gb[2]) if gb[1] else gb[2]
    r.check(f"[{label}] two connections' fragmented compressed messages interleaved", ga == ma and gb == mb,
            f"{len(ga)}, {len(gb)} bytes")
    a.close()
    b.close()


r.run("negotiation", negotiation)
for port, pid, label, tk in ((SHARED, SHARED_PID, "shared", False), (TAKEOVER, TAKEOVER_PID, "takeover", True)):
    r.run(f"[{label}] zip bomb", zip_bomb, port, pid, label)
    r.run(f"[{label}] at the limit", at_the_limit, port, label)
    r.run(f"[{label}] violations", violations, port, label)
    r.run(f"[{label}] behaviour", behaviour, port, label, tk)
    r.run(f"[{label}] interleaved", two_connections_interleaved, port, label)
    r.run(f"[{label}] still serving", still_serving, f"[{label}] still serving at the end", port)


def plain_server():
    c, ext = open_pmd(PLAIN)
    r.check("[no --deflate] an offer is declined", ext is None, f"{ext!r}")
    c.send_frame(OP_TEXT, deflate(b"hello hello hello"), rsv=RSV1)
    expect_close_code("[no --deflate] RSV1 -> 1002", c, 1002)


r.run("plain server", plain_server)
r.finish()

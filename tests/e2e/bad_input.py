"""Bad input, byte for byte: malformed handshakes, protocol violations and
limits, each with the exact answer RFC 6455 (and HTTP) calls for.

    /usr/bin/python3 bad_input.py PORT PORT_1K PORT_2CONN

PORT runs `duplex echo` with default options, PORT_1K with --max-message 1K,
PORT_2CONN with --max-connections 2.
A good connection opened first must still echo at the end.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import (  # noqa: E402
    OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed, Conn, Report, Timeout,
    accept_for, close_payload, frame, http_request, new_key, open_ws, upgrade_request,
)

PORT = int(sys.argv[1])
PORT_1K = int(sys.argv[2])
PORT_2CONN = int(sys.argv[3])
r = Report("bad input")
EOF_WITHIN = 4.0  # seconds: after failing a connection the server closes TCP


# ---------------------------------------------------------------- handshakes

def status_check(name, raw, want, port=PORT, also=None):
    resp = http_request(port, raw)
    if r.check(name, resp.status == want, f"expected {want}, got {resp.status} {resp.reason}"):
        if also:
            also(resp)
    return resp


def handshakes():
    r.run("missing Sec-WebSocket-Key -> 400", status_check, "missing Sec-WebSocket-Key -> 400",
          upgrade_request(PORT, omit=["Sec-WebSocket-Key"]), 400)

    def v13(resp):
        r.check("426 for version 8 carries Sec-WebSocket-Version: 13",
                resp.tokens("sec-websocket-version") == ["13"],
                f"Sec-WebSocket-Version: {resp.header('sec-websocket-version')!r}")
    r.run("Sec-WebSocket-Version: 8 -> 426", status_check, "Sec-WebSocket-Version: 8 -> 426",
          upgrade_request(PORT, version="8"), 426, PORT, v13)

    def allow(resp):
        # RFC 9110 15.5.6: a 405 response MUST carry Allow.
        r.check("405 carries Allow: GET", "get" in resp.tokens("allow"), f"Allow: {resp.header('allow')!r}")
    r.run("POST upgrade -> 405", status_check, "POST with upgrade headers -> 405",
          upgrade_request(PORT, method="POST", extra=[("Content-Length", "0")]), 405, PORT, allow)

    short_key = __import__("base64").b64encode(b"0123456789").decode()  # 10 bytes, not 16
    r.run("key not 16 bytes -> 400", status_check, "Sec-WebSocket-Key of 10 bytes -> 400",
          upgrade_request(PORT, key=short_key), 400)
    r.run("key not base64 -> 400", status_check, "Sec-WebSocket-Key not base64 -> 400",
          upgrade_request(PORT, key="!!!!not-base64!!!!!!!!=="), 400)
    r.run("no Connection: Upgrade -> 400", status_check, "no Connection: Upgrade -> 400",
          upgrade_request(PORT, connection="keep-alive"), 400)
    r.run("no Upgrade: websocket -> 400", status_check, "Upgrade: h2c instead of websocket -> 400",
          upgrade_request(PORT, upgrade="h2c"), 400)

    big = [(f"X-Pad-{i:03d}", "p" * 100) for i in range(200)]  # ~21 KB of headers
    raw = upgrade_request(PORT, extra=big)
    assert len(raw) > 20000
    r.run("20 KB header -> 431", status_check, f"{len(raw)}-byte request head -> 431", raw, 431)

    raw = upgrade_request(PORT, extra=[("X-Big", "b" * 20000)])
    r.run("one 20 KB header -> 431", status_check, "a single 20000-byte header value -> 431", raw, 431)

    r.run("HTTP/1.0 upgrade", status_check, "upgrade request over HTTP/1.0 -> 400",
          upgrade_request(PORT).replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1), 400)
    r.run("no Host -> 400", status_check, "upgrade request without Host -> 400",
          upgrade_request(PORT, omit=["Host"]), 400)
    r.run("two keys -> 400", status_check, "two Sec-WebSocket-Key headers -> 400",
          upgrade_request(PORT, extra=[("Sec-WebSocket-Key", new_key())]), 400)

    r.run("garbage request line -> 400", status_check, "garbage request line -> 400",
          b"this is not http at all\r\n\r\n", 400)

    def ok_body(resp):
        r.check("GET /healthz body is 'ok'", resp.body in (b"ok", b"ok\n"), f"body {resp.body!r}")
    r.run("GET /healthz -> 200", status_check, "plain GET /healthz -> 200",
          f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n\r\n".encode(), 200, PORT, ok_body)

    def upgrade_hdr(resp):
        # RFC 9110 15.5.22: a 426 response MUST carry Upgrade.
        r.check("426 carries Upgrade: websocket", "websocket" in resp.tokens("upgrade"),
                f"Upgrade: {resp.header('upgrade')!r}")
    r.run("GET /anything -> 426", status_check, "plain GET /anything (no upgrade) -> 426",
          f"GET /anything HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n\r\n".encode(), 426, PORT, upgrade_hdr)


def valid_handshake():
    key = new_key()
    c = Conn(PORT)
    c.send(upgrade_request(PORT, "/chat?room=1", key=key))
    resp = c.read_response()
    r.check("valid handshake -> 101", resp.status == 101, f"got {resp!r}")
    r.check("101 has Upgrade: websocket", resp.tokens("upgrade") == ["websocket"], f"Upgrade: {resp.header('upgrade')!r}")
    r.check("101 has Connection: Upgrade", "upgrade" in resp.tokens("connection"),
            f"Connection: {resp.header('connection')!r}")
    r.check("Sec-WebSocket-Accept is correct for the key",
            resp.header("sec-websocket-accept") == accept_for(key),
            f"got {resp.header('sec-websocket-accept')!r}, want {accept_for(key)!r}")
    r.check("no subprotocol or extension when none offered",
            resp.header("sec-websocket-protocol") is None and resp.header("sec-websocket-extensions") is None,
            f"{resp!r}")
    op, p = c.echo(OP_TEXT, b"after handshake")
    r.check("echo after a valid handshake", (op, p) == (OP_TEXT, b"after handshake"), f"got {op} {p!r}")
    c.close()


def handshake_variants():
    # Header names and tokens are case-insensitive; Connection is a list
    # (Firefox sends "keep-alive, Upgrade").
    key = new_key()
    raw = (f"GET /v HTTP/1.1\r\nhost: 127.0.0.1:{PORT}\r\nupgrade: WebSocket\r\n"
           f"connection: keep-alive, Upgrade\r\nsec-websocket-key: {key}\r\n"
           f"sec-websocket-version: 13\r\n\r\n").encode()
    c = Conn(PORT)
    c.send(raw)
    resp = c.read_response()
    r.check("lower-case names, 'Upgrade: WebSocket', 'Connection: keep-alive, Upgrade' -> 101",
            resp.status == 101 and resp.header("sec-websocket-accept") == accept_for(key), f"got {resp!r}")
    c.close()
    # A subprotocol the server does not speak must not be echoed back.
    key = new_key()
    c = Conn(PORT)
    c.send(upgrade_request(PORT, key=key, extra=[("Sec-WebSocket-Protocol", "chat, superchat")]))
    resp = c.read_response()
    r.check("offered subprotocols the echo server does not speak: 101 without Sec-WebSocket-Protocol",
            resp.status == 101 and resp.header("sec-websocket-protocol") is None, f"got {resp!r}")
    if resp.status == 101:
        op, p = c.echo(OP_TEXT, b"no subprotocol")
        r.check("... and it echoes", (op, p) == (OP_TEXT, b"no subprotocol"), f"got {op} {p!r}")
    c.close()


def handshake_and_frame_in_one_send():
    key = new_key()
    c = Conn(PORT)
    c.send(upgrade_request(PORT, key=key) + frame(OP_TEXT, "first ✓"))
    resp = c.read_response()
    r.check("handshake + first frame in one send(): 101", resp.status == 101, f"got {resp!r}")
    op, p = c.recv_message()
    r.check("handshake + first frame in one send(): echo comes back", (op, p) == (OP_TEXT, "first ✓".encode()),
            f"got {op} {p!r}")
    c.close()


def handshake_byte_by_byte():
    key = new_key()
    c = Conn(PORT)
    c.send_slowly(upgrade_request(PORT, key=key) + frame(OP_BINARY, bytes(range(200))), 1)
    resp = c.read_response()
    r.check("handshake and a 200-byte frame sent one byte per send(): 101", resp.status == 101, f"got {resp!r}")
    op, p = c.recv_message()
    r.check("... and the echo comes back", (op, p) == (OP_BINARY, bytes(range(200))), f"got {op} {p[:20]!r}")
    c.close()


# ------------------------------------------------------------ protocol errors

def expect_fail(name, send_bad, want_codes, port=PORT):
    """Open a connection, send something bad, expect a close frame with one
    of want_codes and then the TCP connection closed by the server."""
    try:
        c = open_ws(port)
    except Exception as e:  # noqa: BLE001
        r.not_ok(f"{name}: open a connection", f"{type(e).__name__}: {e}")
        return
    try:
        send_bad(c)
        code, reason = c.expect_close()
        r.check(f"{name} -> close {'/'.join(map(str, want_codes))}", code in want_codes,
                f"close code {code} reason {reason!r}")
        try:
            t = c.wait_eof(EOF_WITHIN)
            r.ok(f"{name}: server closes TCP after the close frame ({t:.2f} s)")
        except Timeout:
            r.not_ok(f"{name}: server closes TCP after the close frame",
                     f"connection still open {EOF_WITHIN} s after the close frame")
    except (Closed, Timeout, AssertionError) as e:
        r.not_ok(f"{name} -> close {'/'.join(map(str, want_codes))}", f"{type(e).__name__}: {e}")
    finally:
        c.close()


def protocol_errors():
    s = lambda data: (lambda c: c.send(data))  # noqa: E731
    expect_fail("unmasked client frame", s(frame(OP_TEXT, b"hello", mask=False)), [1002])
    expect_fail("invalid UTF-8 text", s(frame(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")),
                [1007])
    expect_fail("invalid UTF-8 split across fragments",
                s(frame(OP_TEXT, b"\xce\xba\xe1", fin=False) + frame(OP_CONT, b"\xbd\xb9\xed\xa0\x80")), [1007])
    expect_fail("reserved opcode 3", s(frame(3, b"x")), [1002])
    expect_fail("reserved control opcode 0xB", s(frame(0xB, b"x")), [1002])
    expect_fail("RSV1 set without an extension", s(frame(OP_TEXT, b"x", rsv=4)), [1002])
    expect_fail("RSV2 set", s(frame(OP_TEXT, b"x", rsv=2)), [1002])
    expect_fail("RSV3 set", s(frame(OP_TEXT, b"x", rsv=1)), [1002])
    expect_fail("ping with a 126-byte payload", s(frame(OP_PING, b"p" * 126)), [1002])
    expect_fail("fragmented ping (FIN=0)", s(frame(OP_PING, b"p", fin=False)), [1002])
    expect_fail("close with a 1-byte payload", s(frame(OP_CLOSE, b"\x03")), [1002])
    expect_fail("close code 1005 on the wire", s(frame(OP_CLOSE, close_payload(1005))), [1002])
    expect_fail("close code 1006 on the wire", s(frame(OP_CLOSE, close_payload(1006))), [1002])
    expect_fail("close code 999", s(frame(OP_CLOSE, close_payload(999))), [1002])
    expect_fail("close code 5000", s(frame(OP_CLOSE, close_payload(5000))), [1002])
    expect_fail("close reason not UTF-8", s(frame(OP_CLOSE, close_payload(1000, b"\xff\xfe"))), [1002, 1007])
    expect_fail("continuation frame with no message started", s(frame(OP_CONT, b"x")), [1002])
    expect_fail("new text frame inside a fragmented message",
                s(frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b")), [1002])
    expect_fail("64-bit length with the top bit set",
                s(frame(OP_BINARY, b"", length=1 << 63)), [1002, 1009])


def limits():
    c = open_ws(PORT_1K)
    op, p = c.echo(OP_BINARY, b"a" * 1000)
    r.check("--max-message 1K: a 1000-byte message echoes", (op, p) == (OP_BINARY, b"a" * 1000), f"got {op} {len(p)}")
    op, p = c.echo(OP_TEXT, b"b" * 1024)
    r.check("--max-message 1K: a 1024-byte message (exactly the limit) echoes", (op, p) == (OP_TEXT, b"b" * 1024),
            f"got {op} {len(p)}")
    c.close()
    expect_fail("--max-message 1K: a 2000-byte message", lambda c: c.send_frame(OP_BINARY, os.urandom(2000)),
                [1009], PORT_1K)
    expect_fail("--max-message 1K: 600+600 bytes in two fragments",
                lambda c: c.send(frame(OP_TEXT, b"x" * 600, fin=False) + frame(OP_CONT, b"y" * 600)),
                [1009], PORT_1K)


def max_connections():
    a = open_ws(PORT_2CONN, "/a")
    b = open_ws(PORT_2CONN, "/b")
    resp = http_request(PORT_2CONN, upgrade_request(PORT_2CONN, "/c"))
    r.check("--max-connections 2: a third upgrade -> 503", resp.status == 503, f"got {resp!r}")
    op, p = a.echo(OP_TEXT, b"a")
    r.check("... while the first two keep working", (op, p) == (OP_TEXT, b"a"), f"got {op} {p!r}")
    b.send_close(1000)
    b.expect_close()
    b.wait_eof()
    b.close()
    # Once one has gone, a new client gets in (allow the server a moment).
    deadline = time.monotonic() + 3
    while True:
        c = Conn(PORT_2CONN)
        c.send(upgrade_request(PORT_2CONN, "/d"))
        resp = c.read_response()
        if resp.status == 101 or time.monotonic() > deadline:
            break
        c.close()
        time.sleep(0.1)
    r.check("... and after one closes a new client is accepted", resp.status == 101, f"got {resp!r}")
    c.close()
    a.close()


# ----------------------------------------------------------- good behaviour

def fragmented_with_ping():
    c = open_ws(PORT)
    c.send(frame(OP_TEXT, "Hello, ", fin=False) + frame(OP_PING, b"p1") + frame(OP_CONT, "wörld", fin=True))
    fin, rsv, op, p = c.recv_frame()
    r.check("fragmented message with an interleaved ping: pong first", (op, p) == (OP_PONG, b"p1"),
            f"got opcode {op} {p!r}")
    op, p = c.recv_message()
    r.check("... then the reassembled echo", (op, p) == (OP_TEXT, "Hello, wörld".encode()), f"got {op} {p!r}")
    # UTF-8 split in the middle of a character across fragments is fine.
    c.send(frame(OP_TEXT, b"\xf0\x9f", fin=False) + frame(OP_CONT, b"\x98", fin=False) + frame(OP_CONT, b"\x80"))
    op, p = c.recv_message()
    r.check("a 4-byte character split over three fragments echoes", (op, p) == (OP_TEXT, "😀".encode()),
            f"got {op} {p!r}")
    c.close()


def frame_sizes():
    c = open_ws(PORT)
    for n in (0, 125, 126, 65535, 65536, 200000):
        payload = os.urandom(n)
        op, p = c.echo(OP_BINARY, payload)
        r.check(f"{n}-byte binary frame echoes", (op, p) == (OP_BINARY, payload), f"got {op} {len(p)} bytes")
    # A 125-byte ping (the maximum) gets its pong; an unsolicited pong is ignored.
    c.send_frame(OP_PING, b"z" * 125)
    fin, rsv, op, p = c.recv_frame()
    r.check("125-byte ping -> pong with the same payload", (op, p) == (OP_PONG, b"z" * 125), f"got {op} {len(p)}")
    c.send_frame(OP_PONG, b"unsolicited")
    op, p = c.echo(OP_TEXT, b"after pong")
    r.check("an unsolicited pong is ignored", (op, p) == (OP_TEXT, b"after pong"), f"got {op} {p!r}")
    # A frame split over many send() calls.
    data = os.urandom(3000)
    c.send_slowly(frame(OP_BINARY, data), 7)
    op, p = c.recv_message(pong_pings=True)
    r.check("a frame sent 7 bytes per send() echoes", (op, p) == (OP_BINARY, data), f"got {op} {len(p)}")
    c.close()


def close_handshake():
    c = open_ws(PORT)
    c.send_close(1000, "bye")
    try:
        code, reason = c.expect_close()
        r.check("client close 1000 'bye' -> server echoes close 1000", code == 1000, f"code {code} reason {reason!r}")
        t = c.wait_eof(EOF_WITHIN)
        r.ok(f"... and closes TCP ({t:.2f} s)")
    except (Closed, Timeout, AssertionError) as e:
        r.not_ok("client close 1000 -> server echoes close 1000 and closes TCP", f"{type(e).__name__}: {e}")
    c.close()
    # A close frame with no payload is answered (with no code, or 1000).
    c = open_ws(PORT)
    c.send_frame(OP_CLOSE, b"")
    try:
        code, reason = c.expect_close()
        r.check("empty close frame -> server answers with an empty close (or 1000)", code in (None, 1000),
                f"code {code}")
        c.wait_eof(EOF_WITHIN)
        r.ok("... and closes TCP")
    except (Closed, Timeout, AssertionError) as e:
        r.not_ok("empty close frame -> answered and TCP closed", f"{type(e).__name__}: {e}")
    c.close()


def main():
    try:
        good = open_ws(PORT, "/good")
        op, p = good.echo(OP_TEXT, b"good at start")
        r.check("good connection echoes at the start", (op, p) == (OP_TEXT, b"good at start"), f"got {op} {p!r}")
    except Exception as e:  # noqa: BLE001
        r.not_ok("good connection at the start", repr(e))
        r.finish()

    for fn in (handshakes, valid_handshake, handshake_variants, handshake_and_frame_in_one_send, handshake_byte_by_byte,
               protocol_errors, limits, max_connections, fragmented_with_ping, frame_sizes, close_handshake):
        r.run(fn.__name__, fn)

    try:
        op, p = good.echo(OP_TEXT, "still good ✓".encode())
        r.check("the good connection opened at the start still echoes at the end",
                (op, p) == (OP_TEXT, "still good ✓".encode()), f"got {op} {p!r}")
        good.send_close(1000)
        code, _ = good.expect_close()
        r.check("... and closes cleanly", code == 1000, f"code {code}")
    except Exception as e:  # noqa: BLE001
        r.not_ok("the good connection opened at the start still echoes at the end", repr(e))
    try:
        op, p = open_ws(PORT).echo(OP_TEXT, b"new")
        r.check("a new connection still works at the end", (op, p) == (OP_TEXT, b"new"), f"got {op} {p!r}")
    except Exception as e:  # noqa: BLE001
        r.not_ok("a new connection still works at the end", repr(e))
    r.finish()


if __name__ == "__main__":
    t0 = time.monotonic()
    main()

"""Interop: Python `websockets` (Debian 12: 10.4, asyncio API) against
`duplex echo`.

    /usr/bin/python3 py_echo_client.py PORT [TAG]

Runs the matrix without compression and with websockets' default
permessage-deflate offer (the server may accept or decline it; with
DX_EXPECT_DEFLATE=1, as when the server runs with --deflate, it must accept). Prints
"ok - ..." / "not ok - ..." per check; exits 1 if any failed.
"""
import asyncio
import os
import sys

import websockets

PORT = int(sys.argv[1])
TAG = f"[{sys.argv[2]}] " if len(sys.argv) > 2 else ""
BASE = f"ws://127.0.0.1:{PORT}"
T = 10  # seconds for any single step
# The server runs with --deflate: an offer must be accepted.
EXPECT_DEFLATE = os.environ.get("DX_EXPECT_DEFLATE") == "1"
passed = 0
failed = 0


def ok(name):
    global passed
    passed += 1
    print(f"ok - {TAG}{name}", flush=True)


def not_ok(name, why):
    global failed
    failed += 1
    print(f"not ok - {TAG}{name}: {why}", flush=True)


def check(name, cond, why):
    ok(name) if cond else not_ok(name, why)


def show(data, n=60):
    return repr(data[:n]) + ("..." if len(data) > n else "")


async def matrix(label, compression):
    def t(name):
        return f"{label}: {name}"

    try:
        ws = await asyncio.wait_for(
            websockets.connect(f"{BASE}/echo", compression=compression, max_size=8 << 20), T
        )
    except Exception as e:  # noqa: BLE001
        not_ok(t("connect"), repr(e))
        return
    ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
    ok(t(f"connect (extensions: {ext!r})"))
    if EXPECT_DEFLATE:
        offered = compression is not None
        check(t("permessage-deflate negotiated" if offered else "no extension when none offered"),
              ("permessage-deflate" in ext) == offered, f"Sec-WebSocket-Extensions: {ext!r}")

    async def recv(timeout=T):
        return await asyncio.wait_for(ws.recv(), timeout)

    async def text():
        s = "héllo wörld 😀 ✓"
        await ws.send(s)
        got = await recv()
        check(t("text non-ASCII"), got == s, f"got {show(got)}")

    async def binary():
        b = bytes(range(256))
        await ws.send(b)
        got = await recv()
        check(t("binary 0..255"), got == b, f"got {type(got).__name__} {show(got)}")

    async def empty():
        await ws.send("")
        await ws.send(b"")
        a = await recv()
        b = await recv()
        check(t("empty text and binary"), a == "" and b == b"", f"got {a!r}, {b!r}")

    async def big():
        b = os.urandom(4 << 20)
        await ws.send(b)
        got = await recv(30)
        check(
            t("4 MiB binary (max_size raised)"),
            got == b,
            f"got {type(got).__name__} of {len(got)} bytes, content {'same' if got == b else 'differs'}",
        )

    async def big_text():
        line = "The quick brown fox jumps over the lazy dog — 😀 ✓ "
        s = line * ((4 << 20) // len(line.encode()) + 1)
        await ws.send(s)
        got = await recv(30)
        check(t("4 MiB compressible text"), got == s, f"got {type(got).__name__} of {len(got)}")

    async def pipelined():
        n = 100
        want = [f"msg {i} ✓" if i % 2 else f"bin {i}".encode() for i in range(n)]
        for m in want:
            await ws.send(m)
        got = [await recv() for _ in range(n)]
        bad = [f"#{i}: {g!r}" for i, (g, w) in enumerate(zip(got, want)) if g != w]
        check(t("100 pipelined in order"), not bad, f"out of order or wrong: {bad[:5]}")

    async def ping():
        payload = "ping-✓-42".encode()
        waiter = await ws.ping(payload)
        # websockets matches the pong to the ping by payload; the waiter
        # resolves only for a pong carrying the same bytes.
        await asyncio.wait_for(waiter, T)
        ok(t("ping -> pong with same payload"))

    async def after():
        await ws.send("still here")
        got = await recv()
        check(t("echo after ping"), got == "still here", f"got {got!r}")

    for step in (text, binary, empty, big, big_text, pipelined, ping, after):
        try:
            await step()
        except Exception as e:  # noqa: BLE001
            not_ok(t(step.__name__), repr(e))

    # Close with 4002 and a reason: the server echoes the code (RFC 6455
    # 5.5.1); both directions are visible after the closing handshake.
    try:
        await asyncio.wait_for(ws.close(4002, "done ✓"), T)
        sent = ws.close_sent
        rcvd = ws.close_rcvd
        check(
            t("close frame sent 4002"),
            sent is not None and sent.code == 4002 and sent.reason == "done ✓",
            f"close_sent {sent!r}",
        )
        check(
            t("server answered close 4002 (close_code)"),
            ws.close_code == 4002,
            f"close_code {ws.close_code}, close_rcvd {rcvd!r}",
        )
        check(
            t("server echoed the close reason (close_reason)"),
            ws.close_reason == "done ✓",
            f"close_reason {ws.close_reason!r}",
        )
        # A clean closing handshake: the server received our close frame
        # before it sent its own (close_rcvd_then_sent is False for us).
        check(
            t("closing handshake started by client"),
            ws.close_rcvd_then_sent is False,
            f"close_rcvd_then_sent {ws.close_rcvd_then_sent!r}",
        )
    except Exception as e:  # noqa: BLE001
        not_ok(t("close 4002"), repr(e))


async def query_path(label, compression):
    name = f"{label}: connect to a path with a query string"
    try:
        ws = await asyncio.wait_for(
            websockets.connect(f"{BASE}/a/b?x=1&y=h%C3%A9&z=a%20b", compression=compression), T
        )
    except Exception as e:  # noqa: BLE001
        not_ok(name, repr(e))
        return
    check(f"{name} (no subprotocol)", ws.subprotocol is None, f"subprotocol {ws.subprotocol!r}")
    try:
        await ws.send("query ok")
        got = await asyncio.wait_for(ws.recv(), T)
        check(f"{label}: echo on a path with a query string", got == "query ok", f"got {got!r}")
        await asyncio.wait_for(ws.close(), T)
        check(f"{label}: normal close 1000", ws.close_code == 1000, f"close_code {ws.close_code}")
    except Exception as e:  # noqa: BLE001
        not_ok(f"{label}: echo on a path with a query string", repr(e))


async def default_max_size():
    # websockets' default max_size is 1 MiB: a 2 MiB echo makes the *client*
    # fail the connection with 1009; the server must cope with that.
    name = "client-side limit: 2 MiB echo over a 1 MiB max_size closes 1009"
    try:
        # The client stops reading when it fails, so the server cannot flush
        # the rest of the echo nor its close frame; a short close_timeout
        # keeps websockets from waiting 2 x 10 s for a clean TCP close.
        ws = await asyncio.wait_for(
            websockets.connect(f"{BASE}/", compression=None, close_timeout=2), T
        )
        await ws.send(b"x" * (2 << 20))
        try:
            await asyncio.wait_for(ws.recv(), 30)
            not_ok(name, "the oversized message was delivered")
        except websockets.ConnectionClosed:
            # websockets fails the connection without waiting for the
            # server's answer, so look at what it sent.
            sent = ws.close_sent
            check(name, sent is not None and sent.code == 1009, f"close_sent {sent!r}")
    except Exception as e:  # noqa: BLE001
        not_ok(name, repr(e))
    # And the server still serves new clients.
    try:
        ws = await asyncio.wait_for(websockets.connect(f"{BASE}/", compression=None), T)
        await ws.send("alive")
        got = await asyncio.wait_for(ws.recv(), T)
        await asyncio.wait_for(ws.close(), T)
        check("server still serves after a client failed the connection", got == "alive", f"got {got!r}")
    except Exception as e:  # noqa: BLE001
        not_ok("server still serves after a client failed the connection", repr(e))


async def main():
    print(f"# websockets {websockets.__version__}", flush=True)
    await matrix("no-compression", None)
    await query_path("no-compression", None)
    await matrix("deflate-offered", "deflate")
    await query_path("deflate-offered", "deflate")
    await default_max_size()


try:
    asyncio.run(asyncio.wait_for(main(), 100))
except Exception as e:  # noqa: BLE001
    not_ok("run", repr(e))
print(f"# python websockets client: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

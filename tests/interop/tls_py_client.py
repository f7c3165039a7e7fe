"""Interop: Python `websockets` (Debian 12: 10.4) over Python's ssl module
against `duplex echo` serving wss:// with a certificate from the test CA.

    /usr/bin/python3 tls_py_client.py TLS_PORT CERT_DIR [TAG]

With DX_EXPECT_DEFLATE=1 (the server runs with --deflate) websockets' default
permessage-deflate offer must be accepted. Prints "ok - ..." / "not ok - ..."
per check; exits 1 if any failed.
"""
import asyncio
import os
import ssl
import sys

import websockets

PORT = int(sys.argv[1])
CERTS = sys.argv[2]
TAG = f"[{sys.argv[3]}] " if len(sys.argv) > 3 else ""
EXPECT_DEFLATE = os.environ.get("DX_EXPECT_DEFLATE") == "1"
T = 10
passed = failed = 0


def ok(name):
    global passed
    passed += 1
    print(f"ok - {TAG}{name}", flush=True)


def not_ok(name, why):
    global failed
    failed += 1
    print(f"not ok - {TAG}{name}: {why}", flush=True)


def check(name, cond, why=""):
    ok(name) if cond else not_ok(name, why)


def context(ca=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificate and host name
    if ca:
        ctx.load_verify_locations(os.path.join(CERTS, "ca.pem"))
    return ctx


async def matrix(label, url):
    def t(name):
        return f"{label}: {name}"

    try:
        ws = await asyncio.wait_for(websockets.connect(url, ssl=context(), max_size=8 << 20), T)
    except Exception as e:  # noqa: BLE001
        not_ok(t("connect"), repr(e))
        return
    sslobj = ws.transport.get_extra_info("ssl_object")
    ok(t(f"connect ({sslobj.version()}, {sslobj.cipher()[0]})"))
    ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
    if EXPECT_DEFLATE:
        check(t("permessage-deflate negotiated over TLS"), "permessage-deflate" in ext,
              f"Sec-WebSocket-Extensions: {ext!r}")
    peer = dict(x[0] for x in sslobj.getpeercert()["subject"])
    check(t("the server presented CN=localhost"), peer.get("commonName") == "localhost", repr(peer))

    async def recv(timeout=T):
        return await asyncio.wait_for(ws.recv(), timeout)

    try:
        s = "héllo wörld over TLS 😀 ✓"
        await ws.send(s)
        got = await recv()
        check(t("text non-ASCII"), got == s, repr(got)[:80])
        b = bytes(range(256))
        await ws.send(b)
        got = await recv()
        check(t("binary 0..255"), got == b, repr(got)[:80])
        big = os.urandom(4 << 20)
        await ws.send(big)
        got = await recv(30)
        check(t("4 MiB binary"), got == big, f"got {len(got)} bytes")
        line = "The quick brown fox jumps over the lazy dog — 😀 ✓ "
        s = line * ((2 << 20) // len(line.encode()) + 1)
        await ws.send(s)
        got = await recv(30)
        check(t("2 MiB compressible text"), got == s, f"got {len(got)}")
        want = [f"m{i}" for i in range(100)]
        for m in want:
            await ws.send(m)
        got = [await recv() for _ in want]
        check(t("100 pipelined in order"), got == want, repr(got[:5]))
        waiter = await ws.ping(b"py-tls-ping")
        await asyncio.wait_for(waiter, T)
        ok(t("ping -> pong"))
        await asyncio.wait_for(ws.close(4002, "py bye"), T)
        check(t("close 4002 echoed"), ws.close_code == 4002 and ws.close_reason == "py bye",
              f"close_code {ws.close_code} reason {ws.close_reason!r}")
    except Exception as e:  # noqa: BLE001
        not_ok(t("exchange"), repr(e))
        await ws.close()


async def untrusted():
    # Python must refuse the server when it does not trust the test CA.
    try:
        ws = await asyncio.wait_for(websockets.connect(f"wss://localhost:{PORT}/", ssl=context(ca=False)), T)
        not_ok("Python refuses the server without the test CA", "connected")
        await ws.close()
    except ssl.SSLCertVerificationError as e:
        ok(f"Python refuses the server without the test CA ({e.verify_message})")
    except Exception as e:  # noqa: BLE001
        not_ok("Python refuses the server without the test CA", repr(e))


async def main():
    await matrix("wss://localhost", f"wss://localhost:{PORT}/echo")
    await matrix("wss://127.0.0.1", f"wss://127.0.0.1:{PORT}/a/b?c=d")
    await untrusted()
    print(f"# python websockets over TLS: {passed} passed, {failed} failed", flush=True)


asyncio.run(asyncio.wait_for(main(), 90))
sys.exit(1 if failed else 0)

"""Interop: Python `websockets` (Debian 12: 10.4) with permessage-deflate
against `duplex echo --deflate`, over a matrix of client offers.

    /usr/bin/python3 deflate_py_client.py PORT [TAG]

Checks the response extension (accepted, within the offer), then round-trips
long-distance repeats, large compressible and incompressible messages, many
small similar ones and a fragmented one. Prints "ok - ..." / "not ok - ...";
exits 1 if any failed.
"""
import asyncio
import os
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

PORT = int(sys.argv[1])
TAG = f"[{sys.argv[2]}] " if len(sys.argv) > 2 else ""
T = 15
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
    return cond


def params(header):
    """{name: value or True} of the first extension if it is permessage-deflate."""
    first = header.split(",")[0]
    parts = [p.strip() for p in first.split(";")]
    if parts[0] != "permessage-deflate":
        return None
    out = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        out[k.strip()] = v.strip().strip('"') if v else True
    return out


def far_repeats(dist, total):
    block = os.urandom(dist // 2 + 1).hex()[:dist]
    return (block * (total // dist + 1))[:total]


OFFERS = [
    ("default offer (compression='deflate')", "deflate", None),
    ("server_max_window_bits=10, client_max_window_bits=10", None,
     ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=10)),
    ("no context takeover both ways", None,
     ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True,
                                    client_max_window_bits=True)),
    ("client_max_window_bits=9, memLevel 4", None,
     ClientPerMessageDeflateFactory(client_max_window_bits=9, compress_settings={"memLevel": 4})),
]


async def run(label, compression, factory):
    def t(name):
        return f"{label}: {name}"

    kw = {"compression": compression} if factory is None else {"compression": None, "extensions": [factory]}
    try:
        ws = await asyncio.wait_for(
            websockets.connect(f"ws://127.0.0.1:{PORT}/deflate", max_size=64 << 20, **kw), T)
    except Exception as e:  # noqa: BLE001
        not_ok(t("connect"), repr(e))
        return
    ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
    p = params(ext)
    if not check(t(f"permessage-deflate accepted ({ext!r})"), p is not None, f"Sec-WebSocket-Extensions: {ext!r}"):
        await ws.close()
        return
    if factory is not None and isinstance(factory.server_max_window_bits, int):
        got = int(p.get("server_max_window_bits", 15))
        check(t("server_max_window_bits within the offer"), got <= factory.server_max_window_bits, ext)

    async def echo(name, msg, timeout=T):
        await ws.send(msg)
        got = await asyncio.wait_for(ws.recv(), timeout)
        return check(t(name), got == msg, f"got {type(got).__name__} of {len(got)}, sent {len(msg)}")

    try:
        await echo("text with repeats 600 bytes apart", far_repeats(600, 100_000))
        await echo("text with repeats 5000 bytes apart", far_repeats(5000, 300_000))
        await echo("text with repeats 20000 bytes apart", far_repeats(20000, 400_000))
        same = far_repeats(3000, 30_000)
        await echo("the same 30 KB message again", same)
        await echo("... and again", same)
        line = "The quick brown fox jumps over the lazy dog — 😀 ✓ "
        await echo("2 MiB compressible text", line * ((2 << 20) // len(line.encode()) + 1), 30)
        await echo("2 MiB random binary", os.urandom(2 << 20), 30)
        want = [f'{{"type":"update","id":{i},"text":"message number {i} ✓"}}' for i in range(200)]
        for m in want:
            await ws.send(m)
        got = [await asyncio.wait_for(ws.recv(), T) for _ in want]
        check(t("200 small similar messages in order"), got == want, repr(got[:3]))
        for n in (0, 1, 63, 64, 65, 1000):
            await echo(f"text of {n} bytes", "a" * n)
        parts = [far_repeats(7000, 70_000), far_repeats(300, 30_000), "end ✓"]
        await ws.send(iter(parts))  # a fragmented message: one frame per part
        got = await asyncio.wait_for(ws.recv(), T)
        check(t("fragmented compressed message (3 frames)"), got == "".join(parts), f"got {len(got)}")
        await asyncio.wait_for(ws.close(4002, "bye"), T)
        check(t("close 4002 echoed"), ws.close_code == 4002, f"close_code {ws.close_code}")
    except websockets.ConnectionClosed as e:
        not_ok(t("connection closed during the exchange (the rest skipped)"), repr(e))
    except Exception as e:  # noqa: BLE001
        not_ok(t("exchange (the rest skipped)"), repr(e))
        await ws.close()


async def main():
    for label, compression, factory in OFFERS:
        await run(label, compression, factory)
    print(f"# python websockets deflate client: {passed} passed, {failed} failed", flush=True)


asyncio.run(asyncio.wait_for(main(), 100))
sys.exit(1 if failed else 0)

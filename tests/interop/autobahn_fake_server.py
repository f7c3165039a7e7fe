"""A stand-in for Autobahn's `wstest -m fuzzingserver`, enough to test
examples/autobahn_client (Python `websockets` 10.4, Debian's).

    /usr/bin/python3 autobahn_fake_server.py [MODE]   → "listening PORT", then
                                                          one line per event

MODE "normal" (default): 3 cases
  /getCaseCount           sends "3", closes 1000
  /runCase?case=N&agent=A sends case N's messages, checks each echo (payload
                          and type), logs "case N ok" or "case N FAIL: why",
                          closes 1000
  /updateReports?agent=A  logs "report agent=A cases=1,2,3", closes 1000
MODE "rough": 2 cases; case 1 drops the TCP connection without a close
  frame after one echo, case 2 closes with 1002 after one echo.
MODE "badcount": getCaseCount sends "three".
"""
import asyncio
import os
import signal
import sys
from urllib.parse import parse_qs, urlsplit

import websockets

MODE = sys.argv[1] if len(sys.argv) > 1 else "normal"
T = 20  # seconds for any echo
ran = []


def log(s):
    print(s, flush=True)


async def fragmented(parts):
    for p in parts:
        yield p


def case_messages(n):
    """(message to send, how) pairs for case n; how is "plain" or "fragments"."""
    if n == 1:
        return [("Hello, world", "plain"), (bytes(range(256)), "plain")]
    if n == 2:
        return [
            (["frag", "ment", "ed \u2713"], "fragments"),
            (b"", "plain"),
            (os.urandom(20 << 20), "plain"),  # over duplex's 16 MiB default
        ]
    if n == 3:
        return [("\u03ba\u1f79\u03c3\u03bc\u03b5", "plain"), ("", "plain"), (b"\x00" * 70000, "plain")]
    return [("case %d" % n, "plain")]


async def run_case(ws, n):
    for msg, how in case_messages(n):
        if how == "fragments":
            await ws.send(fragmented(msg))
            want = "".join(msg)
        else:
            await ws.send(msg)
            want = msg
        got = await asyncio.wait_for(ws.recv(), T)
        if type(got) is not type(want) or got != want:
            return f"echo differs: sent {type(want).__name__} of {len(want)}, got {type(got).__name__} of {len(got)}"
    # A ping in the middle of the case: the client must pong.
    waiter = await ws.ping(b"autobahn")
    await asyncio.wait_for(waiter, T)
    return None


async def handler(ws, path=None):
    url = urlsplit(ws.path)
    q = parse_qs(url.query)
    try:
        if url.path == "/getCaseCount":
            if MODE == "badcount":
                await ws.send("three")
            else:
                await ws.send("2" if MODE == "rough" else "3")
            await ws.close(1000)
        elif url.path == "/runCase":
            n = int(q["case"][0])
            agent = q.get("agent", ["?"])[0]
            ran.append(n)
            log(f"runCase {n} agent={agent}")
            if MODE == "rough":
                await ws.send(f"rough {n}")
                got = await asyncio.wait_for(ws.recv(), T)
                log(f"case {n} ok" if got == f"rough {n}" else f"case {n} FAIL: got {got!r}")
                if n == 1:
                    ws.transport.abort()  # no close frame
                    return
                await ws.close(1002)
            else:
                why = await run_case(ws, n)
                log(f"case {n} ok" if why is None else f"case {n} FAIL: {why}")
                await ws.close(1000)
        elif url.path == "/updateReports":
            agent = q.get("agent", ["?"])[0]
            log(f"report agent={agent} cases={','.join(map(str, ran))}")
            await ws.close(1000)
        else:
            log(f"unexpected path {ws.path}")
            await ws.close(1008)
    except websockets.ConnectionClosed as e:
        log(f"closed early on {ws.path}: {e}")
    except Exception as e:  # noqa: BLE001
        log(f"error on {ws.path}: {e!r}")


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(
        handler, "127.0.0.1", 0, max_size=64 << 20, compression=None
    ) as server:
        log(f"listening {server.sockets[0].getsockname()[1]}")
        await stop


if __name__ == "__main__":
    asyncio.run(main())

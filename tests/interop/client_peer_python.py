"""A Python `websockets` (Debian 12: 10.4, asyncio API) server for testing
duplex's client (`duplex connect`).

    /usr/bin/python3 client_peer_python.py     → prints "listening PORT", then
                                                 one line per event

Behaviour by path (the same as client_peer_node.mjs):
  /echo       echo every message with its type; subprotocols chat.v2, chat.v1
  /header     send "X-Test=<value of the X-Test request header>"
  /binary     send the bytes 0..255
  /large      send 4 MiB of binary, byte i = (i * 7 + 3) & 255
  /frag       a text message in 3 fragments (a ping between two of them),
              then a binary one in 2 fragments
  /ping       ping "are you there"; on the pong send "pong:<payload>"
  /close4005  close with 4005 "bye"
  /close1000  close with 1000 "done"
Ends on SIGTERM/SIGINT.
"""
import asyncio
import signal
import sys

import websockets


def log(s):
    print(s, flush=True)


async def fragments(ws):
    yield "frag"
    # A control frame in the middle of a fragmented message (RFC 6455 5.4).
    await ws.ping(b"mid-message")
    yield "ment"
    yield "ed!"


async def handler(ws, path=None):
    path = ws.path.split("?", 1)[0]
    log(f"open {path} protocol={ws.subprotocol or '-'}")
    try:
        if path == "/echo":
            async for msg in ws:
                await ws.send(msg)
        elif path == "/header":
            await ws.send(f"X-Test={ws.request_headers.get('X-Test', '')}")
        elif path == "/binary":
            await ws.send(bytes(range(256)))
        elif path == "/large":
            n = 4 << 20
            await ws.send(bytes((i * 7 + 3) & 255 for i in range(n)))
        elif path == "/frag":
            await ws.send(fragments(ws))
            await ws.send([b"\xde\xad", b"\xbe\xef"])
        elif path == "/ping":
            waiter = await ws.ping(b"are you there")
            await asyncio.wait_for(waiter, 10)
            log("pong are you there")
            await ws.send("pong:are you there")
        elif path == "/close4005":
            await ws.close(4005, "bye")
        elif path == "/close1000":
            await ws.close(1000, "done")
        else:
            await ws.close(4404, "no such path")
        await ws.wait_closed()
    except websockets.ConnectionClosed:
        pass
    except Exception as e:  # noqa: BLE001
        log(f"error {path} {e!r}")
    log(f"close {path} code={ws.close_code} reason={ws.close_reason}")


async def main():
    stop = asyncio.get_running_loop().create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=["chat.v2", "chat.v1"],
        max_size=64 << 20,
        compression=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        log(f"listening {port}")
        await stop


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

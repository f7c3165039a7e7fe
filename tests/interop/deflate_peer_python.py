"""A Python `websockets` (Debian 12: 10.4) echo server with its default
compression (permessage-deflate; server_max_window_bits=12 and, when
offered, client_max_window_bits=12), for testing `duplex connect --deflate`.

    /usr/bin/python3 deflate_peer_python.py

Prints "listening PORT", then per connection the same lines as
deflate_peer_node.mjs:
    offer EXTENSIONS_REQUEST_HEADER
    accept EXTENSIONS_RESPONSE_HEADER         (or "accept -")
    close code=N messages=N payload=BYTES wire=BYTES
Ends on SIGTERM/SIGINT.
"""
import asyncio
import signal
import sys

import websockets
from websockets.legacy.server import WebSocketServerProtocol


def log(s):
    print(s, flush=True)


class Counting(WebSocketServerProtocol):
    """Counts the bytes read from the socket."""

    wire = 0

    def data_received(self, data):
        self.wire += len(data)
        super().data_received(data)


async def handler(ws, path=None):
    log(f"offer {ws.request_headers.get('Sec-WebSocket-Extensions', '-')}")
    log(f"accept {ws.response_headers.get('Sec-WebSocket-Extensions', '-')}")
    wire0 = ws.wire
    messages = payload = 0
    try:
        async for msg in ws:
            messages += 1
            payload += len(msg.encode() if isinstance(msg, str) else msg)
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    except Exception as e:  # noqa: BLE001
        log(f"error {e!r}")
    await ws.wait_closed()
    log(f"close code={ws.close_code} messages={messages} payload={payload} wire={ws.wire - wire0}")


async def main():
    stop = asyncio.get_running_loop().create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=64 << 20, create_protocol=Counting) as server:
        log(f"listening {server.sockets[0].getsockname()[1]}")
        await stop


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)

"""duplex serve behind Debian's nginx (docs/nginx/duplex.conf), every request
through nginx: SSE events arrive one by one while the stream stays open
(nginx does not buffer them), Last-Event-ID resumes without loss, WebSocket
subscribe/publish, long-polling, POST /http/request, the pages.

    /usr/bin/python3 hub_nginx.py NGINX_PORT API_KEY main ID_FILE
    /usr/bin/python3 hub_nginx.py NGINX_PORT API_KEY failover ID_FILE

`main` writes the last SSE event id to ID_FILE; `failover` (run after the
first hub was stopped; nginx's backup server is a second hub) resumes from
it and must be told epoch_changed by the standby, then receive live events.
Prints "ok - NAME" / "not ok - NAME: WHY" (raw_client.Report).
"""
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import Report  # noqa: E402

PORT, KEY, SECTION, ID_FILE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
BASE = f"http://127.0.0.1:{PORT}"
TOPIC = "ng:room"
T = 10.0  # seconds for any single wait
PROMPT = 2.0  # an event must arrive this soon after its publish (a buffering proxy holds it)
r = Report(f"hub behind nginx ({SECTION})")


def http(method, path, body=None, headers=None, timeout=T):
    """One request through nginx: (status, headers, body bytes)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


async def api_publish(data):
    status, _, body = await asyncio.to_thread(
        http, "POST", "/api/publish", {"topic": TOPIC, "data": data}, {"Authorization": f"Bearer {KEY}"})
    j = json.loads(body)
    if status != 200 or not j.get("ok"):
        raise AssertionError(f"/api/publish answered {status}: {body[:200]!r}")
    return j


class Sse:
    """An SSE stream over a raw HTTP/1.1 connection (chunked, as browsers get it)."""

    async def open(self, path, headers=()):
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", PORT), T)
        # As a browser asks (gzip would hold events back until its buffer fills).
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nAccept: text/event-stream\r\n"
        head += "Accept-Encoding: gzip, deflate\r\nCache-Control: no-cache\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        self.writer.write(head.encode())
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), T)
        lines = raw.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.buf = ""
        return self

    async def _more(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no event in time")
        if self.chunked:
            size = int((await asyncio.wait_for(self.reader.readline(), left)).split(b";")[0], 16)
            if size == 0:
                raise EOFError("the stream ended")
            data = await asyncio.wait_for(self.reader.readexactly(size + 2), left)
            self.buf += data[:-2].decode()
        else:
            data = await asyncio.wait_for(self.reader.read(4096), left)
            if not data:
                raise EOFError("the stream ended")
            self.buf += data.decode()

    async def event(self, timeout=T):
        """The next event with data (comments and retry: skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            while "\n\n" in self.buf:
                block, self.buf = self.buf.split("\n\n", 1)
                ev = {"event": "message", "id": None, "data": ""}
                for line in block.split("\n"):
                    if line.startswith(":") or ":" not in line:
                        continue
                    f, v = line.split(":", 1)
                    v = v[1:] if v.startswith(" ") else v
                    if f == "data":
                        ev["data"] += v
                    else:
                        ev[f] = v
                if ev["data"]:
                    ev["json"] = json.loads(ev["data"])
                    return ev
            await self._more(deadline)

    async def message(self, timeout=T):
        while True:
            ev = await self.event(timeout)
            if ev["event"] == "message":
                return ev

    def close(self):
        self.writer.close()


async def ws_open():
    ws = await websockets.connect(f"ws://127.0.0.1:{PORT}/ws", subprotocols=["duplex.v1"], open_timeout=T)
    welcome = json.loads(await asyncio.wait_for(ws.recv(), T))
    if welcome.get("type") != "welcome":
        raise AssertionError(f"first frame: {welcome}")
    return ws


async def ws_next(ws, pred):
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), T))
        if pred(m):
            return m


async def ws_ack_and_message(ws, rid):
    """The reply to request `rid` and the next message, whichever comes first."""
    ack = msg = None
    while ack is None or msg is None:
        m = await ws_next(ws, lambda m: m.get("id") == rid or m.get("type") == "message")
        if m.get("type") == "message":
            msg = msg or m
        else:
            ack = m
    return ack, msg


async def main_section():
    status, hdrs, body = await asyncio.to_thread(http, "GET", "/healthz")
    r.check("GET /healthz through nginx", status == 200, f"{status} {body[:100]!r}")
    status, hdrs, body = await asyncio.to_thread(http, "GET", "/duplex.js")
    r.check("the pages through nginx (GET /duplex.js)", status == 200 and b"export function connect" in body, f"{status}")

    s = await Sse().open(f"/sse?topics={TOPIC}")
    r.check("SSE through nginx: 200 text/event-stream, chunked, not compressed",
            s.status == 200 and s.headers.get("content-type", "").startswith("text/event-stream") and s.chunked
            and "content-encoding" not in s.headers,
            f"{s.status} {s.headers}")
    w = await s.event()
    rep = await s.event()
    r.check("SSE: welcome, then the subscribe reply", w["event"] == "welcome" and rep["event"] == "reply" and rep["json"]["ok"],
            f"{w} {rep}")

    # Each publish only after the previous event came: a proxy that buffers
    # would hold these few hundred bytes until its buffer fills.
    waits = []
    last = None
    for n in range(1, 11):
        t0 = time.monotonic()
        pub = await api_publish({"n": n})
        ev = await s.message(PROMPT)
        waits.append(time.monotonic() - t0)
        if ev["json"].get("data") != {"n": n} or ev["json"]["offset"] != pub["offset"]:
            raise AssertionError(f"event {n}: {ev}")
        last = ev
    r.ok(f"SSE: 10 events one by one, each within {PROMPT:.0f} s of its publish "
         f"(max {max(waits) * 1000:.1f} ms, median {sorted(waits)[5] * 1000:.1f} ms)")

    # Resume: the stream goes, three publications meanwhile, Last-Event-ID.
    s.close()
    for n in (11, 12, 13):
        await api_publish({"n": n})
    s = await Sse().open(f"/sse?topics={TOPIC}", [("Last-Event-ID", last["id"])])
    await s.event()  # welcome
    rep = await s.event()
    r.check("Last-Event-ID through nginx: resumed (recovered)", rep["event"] == "reply" and rep["json"].get("recovered") is True,
            f"{rep}")
    got = [(await s.message())["json"]["data"]["n"] for _ in range(3)]
    await api_publish({"n": 14})
    nxt = (await s.message(PROMPT))["json"]["data"]["n"]
    r.check("Last-Event-ID: the 3 missed once and in order, then live", got == [11, 12, 13] and nxt == 14, f"{got} then {nxt}")

    # WebSocket through nginx, the SSE stream still open beside it.
    ws = await ws_open()
    r.check("WebSocket through nginx: 101 with duplex.v1 and a welcome", ws.subprotocol == "duplex.v1", f"{ws.subprotocol}")
    await ws.send(json.dumps({"id": 1, "op": "subscribe", "topic": TOPIC}))
    rep = await ws_next(ws, lambda m: m.get("id") == 1)
    await ws.send(json.dumps({"id": 2, "op": "publish", "topic": TOPIC, "data": {"n": 15}}))
    ack, msg = await ws_ack_and_message(ws, 2)
    ev = await s.message(PROMPT)
    r.check("WebSocket: subscribe, publish acked, the message to the WebSocket and the SSE subscriber",
            rep.get("ok") and ack.get("ok") and msg["data"] == {"n": 15} and ev["json"]["data"] == {"n": 15},
            f"{rep} {ack} {msg} {ev}")

    # Long-polling: a waiting poll is answered by a publish made meanwhile.
    since = ev["id"]
    poll = asyncio.create_task(asyncio.to_thread(http, "GET", f"/poll?topics={TOPIC}&since={since}&timeout=20", None, None, 30))
    await asyncio.sleep(0.5)
    r.check("long-poll through nginx: waits while nothing comes", not poll.done(), "answered at once")
    t0 = time.monotonic()
    status, _, body = await asyncio.to_thread(http, "POST", "/http/request",
                                              {"id": 7, "op": "publish", "topic": TOPIC, "data": {"n": 16}},
                                              {"Content-Type": "application/json"})
    reply = json.loads(body)
    r.check("POST /http/request through nginx: publish acked", status == 200 and reply.get("ok") and reply.get("id") == 7,
            f"{status} {body[:200]!r}")
    status, _, body = await asyncio.wait_for(poll, T)
    took = time.monotonic() - t0
    ans = json.loads(body)
    msgs = [e for e in ans["events"] if e["type"] == "message"]
    r.check(f"long-poll: answered {took * 1000:.0f} ms after the publish with exactly it",
            status == 200 and took < PROMPT and [m["data"] for m in msgs] == [{"n": 16}], f"{status} {ans}")
    t0 = time.monotonic()
    status, _, body = await asyncio.to_thread(http, "GET", f"/poll?topics={TOPIC}&since={ans['since']}&timeout=1")
    took = time.monotonic() - t0
    empty = json.loads(body)
    r.check(f"long-poll: nothing new, answered at its timeout ({took:.2f} s)",
            status == 200 and 0.8 < took < 1 + PROMPT and not [e for e in empty["events"] if e["type"] == "message"]
            and empty["since"] == ans["since"], f"{status} {empty}")

    ev = await s.message(PROMPT)
    r.check("SSE stream still open and current", ev["json"]["data"] == {"n": 16}, f"{ev}")
    with open(ID_FILE, "w") as f:
        f.write(ev["id"])
    await ws.close()
    s.close()


async def failover_section():
    with open(ID_FILE) as f:
        last = f.read().strip()
    s = await Sse().open(f"/sse?topics={TOPIC}", [("Last-Event-ID", last)])
    await s.event()  # welcome
    rep = await s.event()
    r.check("the standby hub answers the resume with epoch_changed",
            s.status == 200 and rep["json"].get("recovered") is False and rep["json"].get("reason") == "epoch_changed", f"{rep}")
    await api_publish({"n": 100})
    ev = await s.message(PROMPT)
    r.check("live events from the standby through nginx", ev["json"]["data"] == {"n": 100}, f"{ev}")
    ws = await ws_open()
    await ws.send(json.dumps({"id": 1, "op": "publish", "topic": TOPIC, "data": {"n": 101}}))
    ack = await ws_next(ws, lambda m: m.get("id") == 1)
    ev = await s.message(PROMPT)
    r.check("WebSocket to the standby: publish acked and delivered", ack.get("ok") and ev["json"]["data"] == {"n": 101},
            f"{ack} {ev}")
    await ws.close()
    s.close()


async def run():
    sections = {"main": main_section, "failover": failover_section}
    try:
        await asyncio.wait_for(sections[SECTION](), 60)
    except Exception as e:  # noqa: BLE001
        r.not_ok(f"{SECTION} section", f"{type(e).__name__}: {e}")


asyncio.run(run())
r.finish()

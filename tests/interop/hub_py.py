"""Interop: Python `websockets` (Debian 12: 10.4, asyncio API) clients speaking
the hub protocol (docs/PROTOCOL.md) to a started `duplex serve`.

    /usr/bin/python3 hub_py.py PORT basic|resume|presence
    /usr/bin/python3 hub_py.py PORT restart READY_FILE

`restart` subscribes and publishes, writes READY_FILE, and then expects the
server to go away with close 1001 (the driver sends it SIGTERM and starts a
new one on the same port); it reconnects, resumes with its old position and
must be told epoch_changed. Prints "ok - NAME" / "not ok - NAME: WHY".
"""
import asyncio
import json
import os
import sys
import time

import websockets

PORT = int(sys.argv[1])
SECTION = sys.argv[2]
URL = f"ws://127.0.0.1:{PORT}/ws"
T = 10.0  # seconds for any single wait
passed = 0
failed = 0


def ok(name):
    global passed
    passed += 1
    print(f"ok - {name}", flush=True)


def not_ok(name, why):
    global failed
    failed += 1
    print(f"not ok - {name}: {str(why)[:1500]}", flush=True)


def check(name, cond, why=""):
    ok(name) if cond else not_ok(name, why)
    return bool(cond)


def show(v, n=300):
    s = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
    return s if len(s) <= n else s[:n] + "..."


def is_error(r, code):
    e = r.get("error") if isinstance(r, dict) else None
    return (r.get("type") == "reply" and r.get("ok") is False and isinstance(e, dict)
            and e.get("code") == code and isinstance(e.get("message"), str) and e["message"] != "")


class Client:
    """One connection: a reader task keeps every message (log, inbox, and
    the message events per topic); next() takes the first one matching."""

    seq = 0

    @classmethod
    async def open(cls, name=None, subprotocols=("duplex.v1",), url=URL):
        cls.seq += 1
        ws = await asyncio.wait_for(
            websockets.connect(url, subprotocols=list(subprotocols) or None, close_timeout=2,
                               max_size=16 << 20), T)
        c = cls(ws, name or f"py{cls.seq}")
        c.welcome = await c.next(lambda m: m.get("type") == "welcome", what="the welcome")
        c.id = c.welcome.get("client")
        return c

    def __init__(self, ws, name):
        self.ws = ws
        self.name = name
        self.log = []
        self.inbox = []
        self.topics = {}
        self.closed = False
        self.changed = asyncio.Event()
        self.next_id = 1
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    m = {"type": "(binary frame)"}
                else:
                    try:
                        m = json.loads(raw)
                    except ValueError:
                        m = {"type": "(not JSON)", "raw": raw}
                    if not isinstance(m, dict):
                        m = {"type": "(not an object)", "raw": m}
                self.log.append(m)
                self.inbox.append(m)
                if m.get("type") == "message":
                    self.topics.setdefault(m.get("topic"), []).append(m)
                self.changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.changed.set()

    def msgs(self, topic):
        return self.topics.setdefault(topic, [])

    async def next(self, pred, timeout=T, what="a message"):
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.inbox):
                if pred(m):
                    return self.inbox.pop(i)
            if self.closed:
                raise RuntimeError(f"{self.name}: closed ({self.ws.close_code}) before {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: timed out after {timeout} s waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_until(self, cond, timeout=T, what="a condition"):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.005)

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def req(self, obj, timeout=T):
        if "id" not in obj:
            obj = {"id": 1_000_000_000 + self.next_id, **obj}
            self.next_id += 1
        await self.send(obj)
        return await self.next(lambda m: m.get("type") == "reply" and m.get("id") == obj["id"], timeout,
                               f"the reply to {show(obj, 100)}")

    async def must(self, obj, timeout=T):
        r = await self.req(obj, timeout)
        if r.get("ok") is not True:
            raise RuntimeError(f"{self.name}: {show(obj, 100)} failed: {show(r)}")
        return r

    async def sync(self):
        await self.must({"op": "ping"})

    async def close(self):
        await asyncio.wait_for(self.ws.close(), T)
        await asyncio.wait_for(self.reader, T)

    async def drop(self):
        """The network drops: no closing handshake."""
        self.ws.transport.abort()
        await asyncio.wait_for(self.reader, T)


def gap(msgs, first):
    want = first
    for i, m in enumerate(msgs):
        if m.get("offset") != want:
            return f"message #{i} has offset {m.get('offset')}, expected {want}"
        want += 1
    return None


def topic(what):
    topic.seq = getattr(topic, "seq", 0) + 1
    return f"{what}:py{os.getpid()}.{topic.seq}"


async def group(name, coro):
    try:
        await coro
    except Exception as e:  # noqa: BLE001
        not_ok(name, f"{type(e).__name__}: {e}")


async def basic():
    a = await Client.open("a")
    b = await Client.open("b")
    w = a.welcome
    check("welcome: version 1, a client id, user '', limits",
          w.get("version") == 1 and isinstance(w.get("client"), str) and w["client"] and w.get("user") == ""
          and isinstance(w.get("limits"), dict), show(w))
    check("duplex.v1 selected", a.ws.subprotocol == "duplex.v1", f"subprotocol {a.ws.subprotocol!r}")
    check("client ids differ", a.id != b.id, f"{a.id} {b.id}")
    t = topic("py")
    r = await a.req({"id": 1, "op": "subscribe", "topic": t})
    check("subscribe with integer id: ok reply, same id, topic, offset 0, epoch",
          r.get("ok") is True and r.get("id") == 1 and r.get("topic") == t and r.get("offset") == 0
          and isinstance(r.get("epoch"), str), show(r))
    r2 = await b.req({"id": "s-1", "op": "subscribe", "topic": t})
    check("subscribe with string id: same id", r2.get("ok") is True and r2.get("id") == "s-1", show(r2))
    p = await b.req({"id": "p-1", "op": "publish", "topic": t, "data": {"text": "héllo ✓"}})
    check("publish: ok reply with offset 1 and the epoch",
          p.get("ok") is True and p.get("id") == "p-1" and p.get("offset") == 1 and p.get("epoch") == r.get("epoch"),
          show(p))
    m = await a.next(lambda x: x.get("type") == "message" and x.get("topic") == t, what="the publication")
    check("the subscriber gets the message: topic, offset, data, from",
          m.get("offset") == 1 and m.get("data") == {"text": "héllo ✓"} and m.get("from") == b.id, show(m))
    mb = await b.next(lambda x: x.get("type") == "message" and x.get("topic") == t, what="own publication")
    check("the publisher, subscribed, gets its own publication", mb.get("offset") == 1, show(mb))
    p2 = await b.must({"op": "publish", "topic": t, "data": "not to me", "skip_self": True})
    m2 = await a.next(lambda x: x.get("type") == "message" and x.get("topic") == t, what="the skip_self one")
    await b.sync()
    check("skip_self: others get it, the publisher does not",
          m2.get("offset") == p2.get("offset") == 2 and len(b.msgs(t)) == 1, show(b.msgs(t)))
    u = await a.req({"id": 2, "op": "unsubscribe", "topic": t})
    check("unsubscribe: ok reply", u.get("ok") is True and u.get("id") == 2, show(u))
    await b.must({"op": "publish", "topic": t, "data": 3})
    await b.next(lambda x: x.get("type") == "message" and x.get("offset") == 3, what="control copy")
    await a.sync()
    check("nothing after unsubscribe", len(a.msgs(t)) == 2, show(a.msgs(t)))
    e = await a.req({"id": 3, "op": "unsubscribe", "topic": t})
    check("unsubscribe again: not_subscribed with the id", is_error(e, "not_subscribed") and e.get("id") == 3, show(e))
    e2 = await a.req({"id": 4, "op": "publish", "topic": "bad topic!", "data": 1})
    check("bad topic: bad_topic", is_error(e2, "bad_topic") and e2.get("id") == 4, show(e2))
    await a.send("not json")
    e3 = await a.next(lambda x: x.get("type") == "reply", what="the reply to 'not json'")
    check("not JSON: bad_request without id", is_error(e3, "bad_request") and "id" not in e3, show(e3))
    await a.send({"op": "ping"})
    r4 = await a.req({"id": 5, "op": "ping"})
    check("a request without id gets no reply on success", a.log[-1] is r4 and
          [x for x in a.log if x.get("type") == "reply"][-2] is e3, show(a.log[-3:]))
    await a.send(b"\x00\x01")
    e4 = await a.next(lambda x: x.get("type") == "reply", what="the reply to a binary frame")
    check("binary frame: bad_request, connection stays", is_error(e4, "bad_request"), show(e4))
    await a.sync()
    c = await Client.open("c", subprotocols=())
    check("no subprotocol offered: served", c.ws.subprotocol is None and c.welcome.get("type") == "welcome",
          f"{c.ws.subprotocol!r}")
    await c.sync()
    try:
        d = await Client.open("d", subprotocols=("other",))
        not_ok("only another subprotocol offered: HTTP 400", f"connected ({d.ws.subprotocol!r})")
    except websockets.InvalidStatusCode as ex:
        check("only another subprotocol offered: HTTP 400", ex.status_code == 400, repr(ex))
    for x in (a, b, c):
        await x.close()
        check(f"{x.name}: normal close 1000", x.ws.close_code == 1000, f"close code {x.ws.close_code}")


async def resume():
    t = topic("resume")
    pub = await Client.open("pub")
    s = await Client.open("s")
    r = await s.must({"op": "subscribe", "topic": t})
    epoch = r["epoch"]
    for i in range(3):
        await pub.must({"op": "publish", "topic": t, "data": i})
    await s.wait_until(lambda: len(s.msgs(t)) == 3, what="3 live messages")
    last = s.msgs(t)[-1]["offset"]
    await s.drop()
    for i in range(3, 23):
        await pub.must({"op": "publish", "topic": t, "data": i})
    s2 = await Client.open("s2")
    r2 = await s2.req({"op": "subscribe", "topic": t, "since": {"offset": last, "epoch": epoch}})
    check("resume after a drop: recovered true, offset 23",
          r2.get("recovered") is True and r2.get("offset") == 23 and r2.get("epoch") == epoch, show(r2))
    await s2.wait_until(lambda: len(s2.msgs(t)) >= 20, what="the 20 missed")
    for i in range(23, 26):
        await pub.must({"op": "publish", "topic": t, "data": i})
    await s2.wait_until(lambda: len(s2.msgs(t)) >= 23, what="3 live after the resume")
    await s2.sync()
    got = s2.msgs(t)
    g = gap(got, last + 1)
    check("exactly the 20 missed in order, then live, no duplicate",
          len(got) == 23 and not g and [m["data"] for m in got] == list(range(3, 26)),
          g or [m["offset"] for m in got])
    s3 = await Client.open("s3")
    r3 = await s3.req({"op": "subscribe", "topic": t, "since": {"offset": 99, "epoch": epoch}})
    check("since ahead of the topic: offset_ahead", r3.get("recovered") is False and r3.get("reason") == "offset_ahead",
          show(r3))
    for x in (pub, s2, s3):
        await x.close()


async def presence():
    t = topic("room")
    a = await Client.open("ana")
    b = await Client.open("bo")
    await a.must({"op": "subscribe", "topic": t, "presence": True, "info": {"name": "ana"}})
    await b.must({"op": "subscribe", "topic": t, "presence": True, "info": {"name": "bo"}})
    j = await a.next(lambda m: m.get("type") == "join", what="bo's join")
    check("join: topic, client, user, info",
          j.get("topic") == t and j.get("client") == b.id and j.get("user") == "" and j.get("info") == {"name": "bo"},
          show(j))
    q = await b.must({"op": "presence", "topic": t})
    got = sorted((e.get("client"), e.get("user"), json.dumps(e.get("info"))) for e in q.get("presence", []))
    want = sorted([(a.id, "", json.dumps({"name": "ana"})), (b.id, "", json.dumps({"name": "bo"}))])
    check("presence query: both, with info", got == want, show(q))
    await b.drop()
    lv = await a.next(lambda m: m.get("type") == "leave", what="bo's leave")
    check("leave on a dropped connection", lv.get("client") == b.id and lv.get("topic") == t, show(lv))
    await a.sync()
    own = [m for m in a.log if m.get("type") in ("join", "leave") and m.get("client") == a.id]
    check("no join/leave of one's own", not own, show(own))
    q2 = await a.must({"op": "presence", "topic": t})
    check("presence after the leave: only ana", [e.get("client") for e in q2.get("presence", [])] == [a.id], show(q2))
    await a.close()


async def restart(ready):
    t = topic("epoch")
    s = await Client.open("before")
    r = await s.must({"op": "subscribe", "topic": t})
    for i in range(3):
        await s.must({"op": "publish", "topic": t, "data": i})
    await s.wait_until(lambda: len(s.msgs(t)) == 3, what="3 messages")
    epoch, last = r["epoch"], s.msgs(t)[-1]["offset"]
    check("before the restart: offsets 1..3", [m["offset"] for m in s.msgs(t)] == [1, 2, 3], show(s.msgs(t)))
    with open(ready, "w") as f:
        f.write("ready\n")
    await asyncio.wait_for(s.reader, 20)
    check("the server's shutdown closes the connection with 1001", s.ws.close_code == 1001,
          f"close code {s.ws.close_code}")
    # Reconnect with backoff until the new server is up (bounded).
    deadline, delay, s2 = time.monotonic() + 20, 0.05, None
    while s2 is None:
        try:
            s2 = await Client.open("after")
        except (OSError, websockets.WebSocketException, asyncio.TimeoutError) as e:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not reconnect within 20 s: {e!r}") from e
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
    ok("reconnected to the restarted server")
    r2 = await s2.req({"op": "subscribe", "topic": t, "since": {"offset": last, "epoch": epoch}})
    check("resume after a restart: recovered false, epoch_changed, a new epoch, offset 0",
          r2.get("ok") is True and r2.get("recovered") is False and r2.get("reason") == "epoch_changed"
          and isinstance(r2.get("epoch"), str) and r2.get("epoch") != epoch and r2.get("offset") == 0, show(r2))
    h = await s2.req({"op": "history", "topic": t, "since": {"offset": last, "epoch": epoch}})
    check("history since the old epoch: epoch_changed error", is_error(h, "epoch_changed"), show(h))
    p = await s2.must({"op": "publish", "topic": t, "data": "new"})
    m = await s2.next(lambda x: x.get("type") == "message" and x.get("topic") == t, what="a live publication")
    check("the subscription is active: offsets start over at 1 in the new epoch",
          p.get("offset") == 1 and p.get("epoch") == r2.get("epoch") and m.get("offset") == 1, f"{show(p)} {show(m)}")
    await s2.close()


async def main():
    if SECTION == "restart":
        await group("restart", restart(sys.argv[3]))
    elif SECTION in ("basic", "resume", "presence"):
        await group(SECTION, globals()[SECTION]())
    else:
        not_ok(f"section {SECTION}", "unknown")


try:
    asyncio.run(asyncio.wait_for(main(), 90))
except asyncio.TimeoutError:
    not_ok("watchdog", "the helper did not finish within 90 s")
print(f"# {passed} passed, {failed} failed", flush=True)
sys.exit(1 if failed else 0)

"""A hub subscriber that never reads is closed by policy; a normal subscriber
of the same topic gets every publication, in order, with no gap.

    hub_slow.py PORT SERVER_LOG CODE

The server runs `duplex serve` with a small --max-buffered (and, for CODE
1013, --slow-close-code 1013). Standard library only (raw_client.py): the
slow client completes the WebSocket handshake, subscribes, reads the
subscribe reply and then stops reading, with a 4 KiB receive buffer.
A publisher sends publications of 8 KiB until the server gives up on the
slow client (its log says so, or the slow client is gone from the topic's
presence), at most 4,000 of them (32 MiB).
"""
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import OP_CLOSE, OP_TEXT, Closed, Conn, Report, Timeout, parse_close  # noqa: E402

PORT, LOG, CODE = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
TOPIC = f"busy:{os.getpid()}"
PAYLOAD = "p" * 8000
MAX_PUBS = 4000
r = Report(f"hub slow subscriber (close {CODE})")


class Peer:
    """A raw connection speaking the hub protocol, with a reader thread
    (unless it is the slow one, which reads only when told to)."""

    def __init__(self, name, rcvbuf=None):
        self.name = name
        self.c = Conn(PORT, timeout=10.0, rcvbuf=rcvbuf)
        self.c.handshake("/ws", extra=[("Sec-WebSocket-Protocol", "duplex.v1")])
        self.lock = threading.Lock()
        self.replies = []
        self.msgs = []
        self.other = []
        self.close_code = None
        self.eof = False
        self.welcome = self.recv_json()
        self.id = self.welcome.get("client")

    def recv_json(self, timeout=10.0):
        while True:
            op, p = self.c.recv_message(timeout, pong_pings=True)
            if op == OP_CLOSE:
                self.close_code = parse_close(p)[0]
                raise Closed(f"close frame {self.close_code}")
            if op == OP_TEXT:
                return json.loads(p)

    def send(self, obj):
        self.c.send_frame(OP_TEXT, json.dumps(obj).encode())

    def request(self, obj):
        """Send and read until its reply (only before a reader thread runs)."""
        self.send(obj)
        while True:
            m = self.recv_json()
            if m.get("type") == "reply" and m.get("id") == obj.get("id"):
                return m
            self.file(m)

    def file(self, m):
        with self.lock:
            if m.get("type") == "reply":
                self.replies.append(m)
            elif m.get("type") == "message":
                self.msgs.append(m)
            else:
                self.other.append(m)

    def read_all(self, stop):
        """Reader thread body: file every message until EOF, a close frame,
        30 s of silence or stop (checked between messages; the socket is
        closed at the end anyway)."""
        while not stop.is_set():
            try:
                m = self.recv_json(timeout=30.0)
            except Timeout:
                return
            except (Closed, OSError):
                self.eof = not stop.is_set()
                return
            self.file(m)


def slow_cut_in_log():
    try:
        with open(LOG, encoding="utf-8", errors="replace") as f:
            return re.search(r"slow client|closing with 10(08|13)|max-buffered", f.read()) is not None
    except OSError:
        return False


def main():
    normal = Peer("normal")
    rep = normal.request({"id": 1, "op": "subscribe", "topic": TOPIC})
    r.check("normal subscriber subscribed", rep.get("ok") is True, rep)
    slow = Peer("slow", rcvbuf=4096)
    rep = slow.request({"id": 1, "op": "subscribe", "topic": TOPIC, "presence": True})
    r.check("slow subscriber subscribed (then stops reading)", rep.get("ok") is True, rep)
    start_offset = rep.get("offset", 0)
    stop = threading.Event()
    reader = threading.Thread(target=normal.read_all, args=(stop,), daemon=True)
    reader.start()

    pub = Peer("publisher")
    pub_stop = threading.Event()
    pub_reader = threading.Thread(target=pub.read_all, args=(pub_stop,), daemon=True)
    pub_reader.start()

    def acked():
        with pub.lock:
            return sum(1 for m in pub.replies if isinstance(m.get("id"), int))

    def slow_present():
        """Ask (through the publisher) whether the slow client is still in
        the topic's presence."""
        qid = f"q{time.monotonic_ns()}"
        pub.send({"id": qid, "op": "presence", "topic": TOPIC})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with pub.lock:
                for m in pub.replies:
                    if m.get("id") == qid:
                        return any(e.get("client") == slow.id for e in m.get("presence", []))
            time.sleep(0.005)
        raise TimeoutError("no presence reply within 10 s")

    t0 = time.monotonic()
    sent, cut, how, next_check = 0, False, None, 64
    while sent < MAX_PUBS and time.monotonic() - t0 < 30:
        # A window of 16 unacknowledged publications: the normal subscriber
        # and the publisher keep up; only the slow one falls behind.
        while sent - acked() < 16 and sent < MAX_PUBS:
            pub.send({"id": sent, "op": "publish", "topic": TOPIC, "data": {"n": sent, "pad": PAYLOAD}})
            sent += 1
        time.sleep(0.002)
        if sent >= next_check:
            next_check = sent + 64
            if slow_cut_in_log():
                cut, how = True, "server log"
                break
            if not slow_present():
                cut, how = True, "gone from presence"
                break
    took = time.monotonic() - t0
    print(f"# published {sent} x {len(PAYLOAD)} B in {took:.1f} s; slow client cut off: {cut} ({how})", flush=True)
    r.check("the server closed the subscriber that does not read", cut,
            f"still subscribed after {sent} publications ({sent * len(PAYLOAD) >> 20} MiB)")
    # A few more after the cut-off, then everything must have arrived.
    for i in range(sent, sent + 20):
        pub.send({"id": i, "op": "publish", "topic": TOPIC, "data": {"n": i, "pad": PAYLOAD}})
    total = sent + 20
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (acked() < total or len(normal.msgs) < total):
        time.sleep(0.01)
    with pub.lock:
        bad = [m for m in pub.replies if m.get("ok") is not True]
    r.check(f"all {total} publications acknowledged ok", acked() >= total and not bad,
            f"{acked()} replies, failures {bad[:2]}")
    with normal.lock:
        msgs = list(normal.msgs)
    offs = [m.get("offset") for m in msgs]
    want = list(range(start_offset + 1, start_offset + total + 1))
    r.check(f"the normal subscriber got all {total}, offsets in order, no gap", offs == want,
            f"{len(offs)} messages; first problem at "
            f"{next((i for i, (a, b) in enumerate(zip(offs, want)) if a != b), len(offs))}")
    r.check("... with the right contents", all(m.get("data", {}).get("n") == i for i, m in enumerate(msgs)),
            "data differ")
    r.check("the normal subscriber was not closed", not normal.eof, f"close code {normal.close_code}")

    # The slow client now reads: what it finds is a prefix of the topic in
    # order, then the close (CODE) or the end of the connection.
    got, code, how_end = [], None, None
    deadline = time.monotonic() + 15
    slow.c.sock.setblocking(True)
    try:
        while time.monotonic() < deadline:
            m = slow.recv_json(timeout=max(0.1, deadline - time.monotonic()))
            if m.get("type") == "message":
                got.append(m.get("offset"))
    except Closed as e:
        code, how_end = slow.close_code, str(e)
    except Exception as e:  # noqa: BLE001
        how_end = f"{type(e).__name__}: {e}"
    print(f"# slow client read {len(got)} messages after resuming, then: {how_end}", flush=True)
    r.check("the slow client's connection ended (close frame or EOF)", how_end is not None and
            ("close frame" in how_end or "EOF" in how_end or "reset" in how_end), how_end or "still open after 15 s")
    # It reads again well within the server's close timeout: the close frame
    # queued behind the backlog reaches it.
    r.check(f"... with a close frame {CODE}", code == CODE, f"close code {code} ({how_end})")
    r.check("what the slow client got before the cut is in order with no gap",
            got == list(range(start_offset + 1, start_offset + 1 + len(got))), got[:10])
    if code is not None:
        try:
            slow.c.send_close(code)  # complete the closing handshake
        except OSError:
            pass
    if cut:
        deadline, present = time.monotonic() + 10, True
        while present and time.monotonic() < deadline:
            present = slow_present()
            if present:
                time.sleep(0.05)
        r.check("the closed subscriber leaves the topic (gone from presence within 10 s)", not present,
                "still listed by presence")
    # The server still serves new clients.
    again = Peer("after")
    rep = again.request({"id": 7, "op": "history", "topic": TOPIC, "limit": 1})
    r.check("a new client is served after the cut-off", rep.get("ok") is True and rep.get("offset") == start_offset + total,
            rep)
    stop.set()
    pub_stop.set()
    for p in (normal, pub, again, slow):
        p.c.close()


try:
    main()
except Exception as e:  # noqa: BLE001
    r.not_ok("hub slow subscriber", f"{type(e).__name__}: {e}")
r.finish()

"""Timeouts, end to end, over raw sockets.

    timeouts.py handshake PORT   # server: --handshake-timeout 1s
    timeouts.py ping PORT        # server: --ping-interval 1s --pong-timeout 1s
    timeouts.py idle PORT        # server: --idle-timeout 1s

Bounds are generous (several times the configured timers) so that a loaded
machine under ASan does not make them flaky.
"""
import errno
import os
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import (  # noqa: E402
    OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Closed, Report, Timeout, open_ws, parse_close,
    upgrade_request,
)

MODE, PORT = sys.argv[1], int(sys.argv[2])
r = Report(f"timeouts ({MODE})")


def normal_client(results, checks):
    """Connect while the slow ones hang, echo, stay past the handshake
    timeout, echo again, close cleanly."""
    try:
        t0 = time.monotonic()
        c = open_ws(PORT, "/normal")
        op, p = c.echo(OP_TEXT, b"served meanwhile")
        results["first"] = (op, p, time.monotonic() - t0)
        time.sleep(2.0)  # longer than --handshake-timeout: must not apply after the upgrade
        op, p = c.echo(OP_TEXT, b"still open after 2 s")
        results["second"] = (op, p)
        c.send_close(1000)
        results["close"] = c.expect_close()[0]
        c.close()
    except Exception as e:  # noqa: BLE001
        results["error"] = f"{type(e).__name__}: {e}"


def handshake_mode():
    n_slow = 20
    req = upgrade_request(PORT, "/slow")
    sel = selectors.DefaultSelector()
    socks = {}
    t_start = time.monotonic()
    for i in range(n_slow + 1):
        s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        s.setblocking(False)
        # i == n_slow is the silent one: it sends nothing at all.
        socks[s] = {"i": i, "silent": i == n_slow, "sent": 0, "t0": time.monotonic(), "closed": None,
                    "got": b"", "how": None}
        sel.register(s, selectors.EVENT_READ)
    results = {}
    th = threading.Thread(target=normal_client, args=(results, None), daemon=True)
    time.sleep(0.2)
    th.start()

    deadline = t_start + 3.0
    next_byte = time.monotonic()
    while time.monotonic() < deadline and any(st["closed"] is None for st in socks.values()):
        now = time.monotonic()
        if now >= next_byte:  # one more byte from every slow client, every 200 ms
            next_byte = now + 0.2
            for s, st in socks.items():
                if st["closed"] is None and not st["silent"] and st["sent"] < len(req) - 1:
                    try:
                        s.send(req[st["sent"]:st["sent"] + 1])
                        st["sent"] += 1
                    except OSError as e:
                        if e.errno in (errno.EPIPE, errno.ECONNRESET):
                            st["closed"], st["how"] = time.monotonic() - st["t0"], f"send: {e.strerror}"
                            sel.unregister(s)
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            st = socks[s]
            try:
                d = s.recv(4096)
            except ConnectionResetError:
                d, st["how"] = None, "reset"
            if d:
                st["got"] += d
                continue
            st["closed"] = time.monotonic() - st["t0"]
            st["how"] = st["how"] or "EOF"
            sel.unregister(s)

    slow = [st for st in socks.values() if not st["silent"]]
    silent = [st for st in socks.values() if st["silent"]][0]
    open_left = [st["i"] for st in slow if st["closed"] is None]
    r.check(f"--handshake-timeout 1s: all {n_slow} slowloris clients closed by the server within 3 s",
            not open_left, f"still open after 3 s: clients {open_left} (each sent ~{slow[0]['sent']} bytes)")
    r.check("--handshake-timeout 1s: a silent client is closed within 3 s", silent["closed"] is not None,
            "still open after 3 s")
    times = [st["closed"] for st in socks.values() if st["closed"] is not None]
    if times:
        print(f"# closed after {min(times):.2f} .. {max(times):.2f} s; "
              f"how: {sorted({st['how'] for st in socks.values() if st['how']})}; "
              f"server sent before closing: {sorted({st['got'][:40] for st in socks.values()})}")
        r.check("... and not before about 1 s (the timeout, not something else, closed them)",
                min(times) >= 0.8, f"first closed after {min(times):.2f} s")
    partial = [st for st in slow if st["got"] and not st["got"].startswith(b"HTTP/1.1 408")]
    r.check("whatever a timed-out client gets before the close is at most an HTTP 408", not partial,
            f"got {partial[0]['got'][:80]!r}" if partial else "")
    for s in socks:
        s.close()

    th.join(10)
    if "error" in results or "first" not in results:
        r.not_ok("a normal client connecting meanwhile is served", results.get("error", "no result within 10 s"))
        return
    op, p, dt = results["first"]
    r.check("a normal client connecting meanwhile is served", (op, p) == (OP_TEXT, b"served meanwhile"),
            f"got {op} {p!r}")
    r.check("... and is not cut off by the handshake timeout after its upgrade",
            results.get("second") == (OP_TEXT, b"still open after 2 s"), f"got {results.get('second')!r}")
    r.check("... and closes cleanly", results.get("close") == 1000, f"close code {results.get('close')!r}")


def mute_client(res):
    """Reads everything, never answers a ping (nor a close frame)."""
    try:
        c = open_ws(PORT, "/mute")
        t0 = time.monotonic()
        res["pings"] = 0
        res["close"] = None
        try:
            while True:
                fin, rsv, op, p = c.recv_frame(timeout=max(0.01, t0 + 6.0 - time.monotonic()))
                if op == OP_PING:
                    res["pings"] += 1
                elif op == OP_CLOSE:
                    res["close"] = parse_close(p)[0]
                    res["close_at"] = time.monotonic() - t0
        except Closed as e:
            res["eof_at"] = time.monotonic() - t0
            res["how"] = str(e)
        except Timeout:
            res["eof_at"] = None
        c.close()
    except Exception as e:  # noqa: BLE001
        res["error"] = f"{type(e).__name__}: {e}"


def ponging_client(res, stay=4.0):
    """Answers every ping with a pong carrying the same payload."""
    try:
        c = open_ws(PORT, "/alive")
        t0 = time.monotonic()
        res["pings"] = 0
        res["bad"] = []
        try:
            while time.monotonic() - t0 < stay:
                try:
                    fin, rsv, op, p = c.recv_frame(timeout=max(0.01, t0 + stay - time.monotonic()))
                except Timeout:
                    break
                if op == OP_PING:
                    res["pings"] += 1
                    c.send_frame(OP_PONG, p)
                else:
                    res["bad"].append((op, p[:40]))
        except Closed as e:
            res["closed_at"] = time.monotonic() - t0
            res["how"] = str(e)
            return
        op, p = c.echo(OP_TEXT, b"alive after 4 s")
        res["echo"] = (op, p)
        c.send_close(1000)
        res["close"] = c.expect_close()[0]
        c.close()
    except Exception as e:  # noqa: BLE001
        res["error"] = f"{type(e).__name__}: {e}"


def ping_mode():
    mute, alive = {}, {}
    ts = [threading.Thread(target=mute_client, args=(mute,), daemon=True),
          threading.Thread(target=ponging_client, args=(alive,), daemon=True)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)

    name = "--ping-interval 1s --pong-timeout 1s: a client that never answers pings is closed within 5 s"
    if "error" in mute:
        r.not_ok(name, mute["error"])
    else:
        print(f"# mute client: {mute.get('pings')} pings, close frame {mute.get('close')}, "
              f"TCP closed after {mute.get('eof_at')} s ({mute.get('how')})")
        r.check("the mute client was pinged", mute.get("pings", 0) >= 1, f"{mute.get('pings')} pings")
        r.check(name, mute.get("eof_at") is not None and mute["eof_at"] <= 5.0,
                f"TCP connection closed after {mute.get('eof_at')} s (close frame {mute.get('close')} "
                f"at {mute.get('close_at')} s)")
        r.check("... and not before a pong could be missed (>= 1 s)",
                mute.get("eof_at") is None or mute["eof_at"] >= 0.9, f"closed after {mute.get('eof_at')} s")

    name = "a client that answers pings stays open for 4 s"
    if "error" in alive:
        r.not_ok(name, alive["error"])
    else:
        r.check(name, "closed_at" not in alive, f"closed after {alive.get('closed_at')} s ({alive.get('how')})")
        r.check("... and is pinged about every second (>= 2 pings in 4 s)", alive.get("pings", 0) >= 2,
                f"{alive.get('pings')} pings")
        r.check("... and gets nothing but pings while quiet", not alive.get("bad"), f"got {alive.get('bad')}")
        r.check("... and still echoes afterwards", alive.get("echo") == (OP_TEXT, b"alive after 4 s"),
                f"got {alive.get('echo')!r}")
        r.check("... and closes cleanly", alive.get("close") == 1000, f"close code {alive.get('close')!r}")


def chatty_client(res):
    try:
        c = open_ws(PORT, "/chatty")
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 3.0:
            op, p = c.echo(OP_TEXT, f"chat {n}".encode())
            if (op, p) != (OP_TEXT, f"chat {n}".encode()):
                res["error"] = f"bad echo {op} {p!r}"
                return
            n += 1
            time.sleep(0.3)
        res["n"] = n
        c.send_close(1000)
        res["close"] = c.expect_close()[0]
        c.close()
    except Exception as e:  # noqa: BLE001
        res["error"] = f"{type(e).__name__}: {e}"


def idle_mode():
    quiet, chatty = {}, {}
    th = threading.Thread(target=chatty_client, args=(chatty,), daemon=True)
    th.start()
    c = open_ws(PORT, "/quiet")
    t0 = time.monotonic()
    try:
        while True:
            fin, rsv, op, p = c.recv_frame(timeout=max(0.01, t0 + 4.0 - time.monotonic()))
            if op == OP_PING:
                c.send_frame(OP_PONG, p)
            elif op == OP_CLOSE:
                quiet["close"] = parse_close(p)[0]
                quiet["at"] = time.monotonic() - t0
                c.send_close(quiet["close"])
                break
    except (Closed, Timeout) as e:
        quiet["error"] = f"{type(e).__name__}: {e}"
    r.check("--idle-timeout 1s: a quiet client gets close 1001 within 4 s", quiet.get("close") == 1001,
            f"{quiet}")
    if "at" in quiet:
        r.check("... not before about 1 s", quiet["at"] >= 0.8, f"after {quiet['at']:.2f} s")
        try:
            c.wait_eof(4.0)
            r.ok("... and the TCP connection is closed after the closing handshake")
        except Timeout:
            r.not_ok("... and the TCP connection is closed after the closing handshake", "still open after 4 s")
    c.close()
    th.join(10)
    r.check("a client that sends a message every 0.3 s stays open for 3 s", "error" not in chatty and chatty.get("n", 0) >= 5,
            f"{chatty}")
    r.check("... and closes cleanly", chatty.get("close") == 1000, f"{chatty}")


{"handshake": handshake_mode, "ping": ping_mode, "idle": idle_mode}[MODE]()
r.finish()

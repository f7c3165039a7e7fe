"""A client that sends but never reads must be cut off (server started with
--max-buffered 1M), while a normal client keeps getting echoes and the
server's memory stays bounded.

    slow_reader.py PORT SERVER_PID
"""
import errno
import os
import select
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import OP_BINARY, OP_CLOSE, OP_TEXT, Conn, Report, frame, open_ws, parse_close  # noqa: E402

PORT, PID = int(sys.argv[1]), int(sys.argv[2])
RSS_LIMIT_MB = 200
# The cut-off is a close 1008 as soon as the cap is passed (well under a
# second), then, since this client never answers it, the drop one close
# timeout later (the server's default, 5 s): the connection is reset about
# 5 s in. 20 s leaves a loaded machine room while a server that never cuts
# the client off still fails (and grows past RSS_LIMIT_MB meanwhile).
CUTOFF_WITHIN = 20.0
r = Report("slow reader")
stop = threading.Event()


def rss_mb():
    try:
        with open(f"/proc/{PID}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def sampler(res):
    res["max"] = 0.0
    res["samples"] = 0
    while not stop.is_set():
        v = rss_mb()
        if v is not None:
            res["max"] = max(res["max"], v)
            res["samples"] += 1
        time.sleep(0.05)


def normal(res):
    res["ok"] = 0
    res["fail"] = []
    res["max_rtt"] = 0.0
    try:
        c = open_ws(PORT, "/normal")
    except Exception as e:  # noqa: BLE001
        res["fail"].append(f"connect: {e!r}")
        return
    i = 0
    while not stop.is_set():
        msg = f"normal {i} ".encode() * 64
        t0 = time.monotonic()
        try:
            op, p = c.echo(OP_TEXT, msg, timeout=5.0)
        except Exception as e:  # noqa: BLE001
            res["fail"].append(f"echo {i}: {type(e).__name__}: {e}")
            return
        res["max_rtt"] = max(res["max_rtt"], time.monotonic() - t0)
        if (op, p) != (OP_TEXT, msg):
            res["fail"].append(f"echo {i}: wrong echo {op} {p[:30]!r}")
            return
        res["ok"] += 1
        i += 1
        time.sleep(0.05)
    try:
        c.send_close(1000)
        res["close"] = c.expect_close()[0]
    except Exception as e:  # noqa: BLE001
        res["fail"].append(f"close: {e!r}")
    c.close()


def late_reader():
    """Stops reading long enough to pass the cap, then reads: it must find
    the echoes that fit, then a close frame with 1008 (policy violation)."""
    name = "a client that reads again after passing the cap finds close 1008"
    c = Conn(PORT, rcvbuf=4096)
    c.handshake("/late")
    c.sock.setblocking(False)
    msg = frame(OP_BINARY, b"L" * (64 << 10))
    sent, pending, t0 = 0, memoryview(msg), time.monotonic()
    try:
        while sent < 8 << 20 and time.monotonic() - t0 < 3.0:
            _, w, _ = select.select([], [c.sock], [], 0.1)
            if not w:
                continue
            try:
                n = c.sock.send(pending)
            except BlockingIOError:
                continue
            sent += n
            pending = pending[n:] or memoryview(msg)
    except OSError as e:
        r.not_ok(name, f"sending failed before reading: {e}")
        c.close()
        return
    c.sock.setblocking(True)
    echoes, code = 0, None
    try:
        while True:
            op, p = c.recv_message(timeout=5.0, pong_pings=True)
            if op == OP_BINARY:
                echoes += 1
            elif op == OP_CLOSE:
                code = parse_close(p)[0]
                break
        c.send_close(code)
    except Exception as e:  # noqa: BLE001
        r.not_ok(name, f"after {echoes} echoes ({sent / (1 << 20):.1f} MiB sent): {type(e).__name__}: {e}")
        c.close()
        return
    print(f"# late reader: sent {sent / (1 << 20):.1f} MiB, read {echoes} echoes, then close {code}")
    r.check(name, code == 1008, f"close code {code}")
    c.close()


def main():
    rss, good = {}, {}
    ts = [threading.Thread(target=sampler, args=(rss,), daemon=True),
          threading.Thread(target=normal, args=(good,), daemon=True)]
    for t in ts:
        t.start()
    time.sleep(0.3)

    # The slow client: a small receive buffer, set before connect so the
    # window it advertises stays small; after the handshake it never reads.
    slow = Conn(PORT, rcvbuf=4096)
    slow.handshake("/slow")
    sock = slow.sock
    sock.setblocking(False)
    msg = frame(OP_BINARY, os.urandom(64 << 10))
    sent = 0
    pending = memoryview(msg)
    cut_how, cut_at = None, None
    t0 = time.monotonic()
    while time.monotonic() - t0 < CUTOFF_WITHIN:
        _, w, _ = select.select([], [sock], [], 0.1)
        if not w:
            continue
        try:
            n = sock.send(pending)
        except BlockingIOError:
            continue
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET):
                cut_how, cut_at = errno.errorcode[e.errno], time.monotonic() - t0
                break
            raise
        sent += n
        pending = pending[n:]
        if not pending:
            pending = memoryview(frame(OP_BINARY, os.urandom(64 << 10)))
            # By 16 MiB the server's 1 MiB cap and every kernel buffer on
            # the way are long full; from then on a message every 20 ms is
            # enough to notice the cut-off without burning CPU.
            if sent > 16 << 20:
                time.sleep(0.02)
    print(f"# slow client sent {sent / (1 << 20):.1f} MiB; cut off: {cut_how} after "
          f"{cut_at if cut_at is None else round(cut_at, 2)} s")
    r.check(f"--max-buffered 1M: a client that never reads is cut off within {CUTOFF_WITHIN:.0f} s",
            cut_how is not None, f"sends still accepted (or blocked) after {CUTOFF_WITHIN:.0f} s; "
            f"{sent / (1 << 20):.1f} MiB sent")
    slow.close()

    # The normal client keeps going after the cut-off too: wait for three
    # more echoes (bounded) rather than sleeping a fixed time.
    at_cut = good.get("ok", 0)
    t1 = time.monotonic()
    while good.get("ok", 0) < at_cut + 3 and not good.get("fail") and time.monotonic() - t1 < 10.0:
        time.sleep(0.05)
    after_cut = good.get("ok", 0) - at_cut
    stop.set()
    for t in ts:
        t.join(10)
    r.check("a normal client kept getting echoes throughout", not good["fail"] and good["ok"] >= 20,
            f"{good['ok']} echoes, failures: {good['fail'][:3]}")
    r.check("... including after the cut-off", after_cut >= 3, f"{after_cut} echoes in 10 s after it")
    print(f"# normal client: {good['ok']} echoes ({after_cut} after the cut-off), "
          f"slowest round trip {good['max_rtt'] * 1000:.0f} ms")
    r.check("... and closes cleanly", good.get("close") == 1000, f"close {good.get('close')!r}")
    print(f"# server peak VmRSS {rss['max']:.0f} MB over {rss['samples']} samples")
    r.check(f"server VmRSS stayed below {RSS_LIMIT_MB} MB", rss["samples"] > 0 and rss["max"] < RSS_LIMIT_MB,
            f"peak {rss['max']:.0f} MB ({rss['samples']} samples)")
    late_reader()
    try:
        op, p = open_ws(PORT).echo(OP_BINARY, b"after")
        r.check("a new client is served after the cut-off", (op, p) == (OP_BINARY, b"after"), f"got {op} {p!r}")
    except Exception as e:  # noqa: BLE001
        r.not_ok("a new client is served after the cut-off", repr(e))


main()
r.finish()

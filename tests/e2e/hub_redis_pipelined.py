"""Pipelined HTTP API calls on a duplex serve --redis node: served while the
ones before them wait for Redis, answered in request order.
   hub_redis_pipelined.py PORT API_KEY TOPIC"""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import Report  # noqa: E402

port, key, topic = int(sys.argv[1]), sys.argv[2], sys.argv[3]
report = Report("pipelined API calls")
check = report.check


def req(method, path, body=None, close=False):
    b = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
    if b:
        head += f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + b


def publish(n):
    return req("POST", "/api/publish", {"topic": topic, "data": {"n": n}})


def exchange(payload, count, timeout=10):
    """Send the requests in one write; read `count` answers (status, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(payload)
    buf, out, end = b"", [], time.monotonic() + timeout
    while len(out) < count and time.monotonic() < end:
        while True:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                break
            head = buf[:i].decode("latin-1")
            clen = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    clen = int(v)
            if len(buf) < i + 4 + clen:
                break
            out.append((int(head.split(" ")[1]), buf[i + 4 : i + 4 + clen]))
            buf = buf[i + 4 + clen :]
        if len(out) >= count:
            break
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
    s.close()
    return out


# 1. Forty publications in one write, then the history: in order, numbered in order.
n = 40
answers = exchange(b"".join(publish(i) for i in range(n)) +
                   req("GET", f"/api/history?topic={topic}&limit=100"), n + 1)
check("41 answers to 41 pipelined requests", len(answers) == n + 1, f"got {len(answers)}")
offs = [json.loads(b).get("offset") for st, b in answers[:n] if st == 200]
check("every publication acknowledged", len(offs) == n, f"{answers[:3]}")
check("offsets in request order, consecutive", offs == list(range(offs[0], offs[0] + n)) if offs else False,
      f"{offs}")
if len(answers) == n + 1:
    h = json.loads(answers[n][1])
    got = [m["data"]["n"] for m in h.get("publications", [])]
    check("the history after them has them all, in order", got[-n:] == list(range(n)), f"{h}"[:300])

# 2. Answered at once (404) between waiting ones, and a route that is not
# pipelined (/healthz, which closes) behind them: all in order.
answers = exchange(publish(100) + req("GET", "/api/nothing") + publish(101) + publish(102) +
                   req("GET", "/healthz"), 5)
st = [a[0] for a in answers]
check("mixed line answered in order", st == [200, 404, 200, 200, 200], f"{st}")
check("the last is the health check", len(answers) == 5 and b"ok" in answers[4][1].lower(),
      f"{answers[-1:]}")
if len(answers) == 5:
    o = [json.loads(answers[i][1]).get("offset") for i in (0, 2, 3)]
    check("publications around them in order", o[0] + 1 == o[1] and o[1] + 1 == o[2], f"{o}")

# 3. Connection: close in the line: answered up to it, then closed.
answers = exchange(publish(200) + req("POST", "/api/publish", {"topic": topic, "data": 201}, close=True) +
                   publish(202), 3, timeout=5)
check("closes after the request that asked", [a[0] for a in answers] == [200, 200], f"{answers}")

# 4. The client goes while thirty wait: the node carries on.
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"".join(publish(300 + i) for i in range(30)))
s.close()
time.sleep(0.3)
answers = exchange(publish(400), 1)
check("a publication after a client left mid-line", answers and answers[0][0] == 200, f"{answers}")

report.finish()

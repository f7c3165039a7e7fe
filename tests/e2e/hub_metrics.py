"""GET /metrics of duplex serve parses with Prometheus' own text parser
(python3-prometheus-client) and its counters move as clients act.
   hub_metrics.py PORT API_KEY SECRET"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.request

import websockets
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import Report  # noqa: E402

port, key, secret = sys.argv[1], sys.argv[2], sys.argv[3]
report = Report("metrics")
check = report.check


def scrape():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        ctype = r.headers["Content-Type"]
        text = r.read().decode()
    samples = {}
    for fam in text_string_to_metric_families(text):  # raises on a malformed page
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[s.name + ("{" + labels + "}" if labels else "")] = s.value
    return ctype, samples


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(sub, exp_in=600):
    head = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64u(
        json.dumps({"sub": sub, "exp": int(time.time()) + exp_in}).encode())
    sig = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + b64u(sig)


async def req(ws, msg):
    await ws.send(json.dumps(msg))
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if m.get("type") == "reply" and m.get("id") == msg.get("id"):
            return m


def api_publish(topic, data):
    r = urllib.request.Request(f"http://127.0.0.1:{port}/api/publish",
                               data=json.dumps({"topic": topic, "data": data}).encode(),
                               headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(r, timeout=5) as resp:
        return json.loads(resp.read())


async def main():
    ctype, before = scrape()
    check("the page is Prometheus text 0.0.4", ctype.startswith("text/plain; version=0.0.4"), ctype)
    check("it parses with prometheus_client's parser", "duplex_connections" in " ".join(before), list(before)[:5])
    url = f"ws://127.0.0.1:{port}/ws?token={token('alice')}"
    async with websockets.connect(url, subprotocols=["duplex.v1"]) as a, \
            websockets.connect(url, subprotocols=["duplex.v1"]) as b:
        await a.recv()
        await b.recv()
        await req(a, {"id": 1, "op": "subscribe", "topic": "m"})
        await req(b, {"id": 1, "op": "subscribe", "topic": "m"})
        for i in range(3):
            await req(a, {"id": 10 + i, "op": "publish", "topic": "m", "data": i})
        api_publish("m", "from the api")
        r = await req(a, {"id": 20, "op": "subscribe", "topic": "m"})  # already: an error
        _, mid = scrape()
        check("two connections open", mid['duplex_connections{transport=websocket}'] == before['duplex_connections{transport=websocket}'] + 2,
              mid['duplex_connections{transport=websocket}'])
        check("subscriptions gauge", mid["duplex_subscriptions"] == before["duplex_subscriptions"] + 2, mid["duplex_subscriptions"])
        check("publishes by source", mid['duplex_publishes_total{source=client}'] - before['duplex_publishes_total{source=client}'] == 3
              and mid['duplex_publishes_total{source=api}'] - before['duplex_publishes_total{source=api}'] == 1)
        check("deliveries: 4 publications x 2 subscribers", mid["duplex_deliveries_total"] - before["duplex_deliveries_total"] == 8,
              mid["duplex_deliveries_total"] - before["duplex_deliveries_total"])
        check("an error reply is counted", mid["duplex_errors_total"] - before["duplex_errors_total"] == 1 and not r["ok"])
        check("tokens accepted counted", mid["duplex_auth_successes_total"] - before["duplex_auth_successes_total"] == 2)
        check("history bytes retained", mid["duplex_history_retained_bytes"] > 0)
    # A refused token and a resume.
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={token('bob', -60)}", subprotocols=["duplex.v1"]) as c:
            await asyncio.wait_for(c.recv(), 5)
    except websockets.exceptions.ConnectionClosed as e:
        check("an expired token closes with 4001", e.rcvd and e.rcvd.code == 4001, e)
    async with websockets.connect(url, subprotocols=["duplex.v1"]) as d:
        await d.recv()
        await req(d, {"id": 1, "op": "subscribe", "topic": "m", "since": {"offset": 1, "epoch": "nope"}})
        await asyncio.sleep(0.2)
        _, after = scrape()
        check("auth failures by reason", after['duplex_auth_failures_total{reason=token expired}'] -
              before['duplex_auth_failures_total{reason=token expired}'] == 1)
        check("resumes by outcome", after['duplex_resumes_total{result=epoch_changed}'] -
              before['duplex_resumes_total{result=epoch_changed}'] == 1)
        check("loop lag gauge present", 'duplex_loop_lag_seconds{loop=0}' in after)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
        check("/readyz answers 200 ready", r.status == 200 and r.read() == b"ready\n")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        check("/healthz answers 200", r.status == 200)


asyncio.run(asyncio.wait_for(main(), 30))
report.finish()

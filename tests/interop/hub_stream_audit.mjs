// A steady publisher and an audit of what subscribers received, for the
// Redis fault tests (hub_redis_sentinel.mjs, hub_redis_faults.mjs).
//
// The rule checked: a subscriber sees each publication at most once, in the
// order they were acknowledged, at the position (epoch, offset) its
// acknowledgement gave; an acknowledged publication it did not see must be
// covered by an explicit gap notice (the epoch it was in ended, or a
// too_old gap skipped over it). Anything else is a silent loss.
import { http, sleep } from './hub_common.mjs';

// Publish {p, n} to `topic` through the HTTP API of `ports` in turn, one at
// a time, every `pauseMs`, until stop(); p names the publisher (several may
// run at once). Every answer is kept in `results` ({p, n, port, status,
// offset, epoch, ms, code, message}).
export class Publisher {
  constructor(ports, key, topic, pauseMs = 10, p = 'p', client = undefined) {
    Object.assign(this, { ports, key, topic, pauseMs, p, client, results: [], stopped: false, n: 0 });
    this.done = this.run();
  }

  async run() {
    while (!this.stopped) {
      const n = ++this.n;
      const port = this.ports[n % this.ports.length];
      const t0 = Date.now();
      let r;
      try {
        r = await http(port, 'POST', '/api/publish', { key: this.key, body: { topic: this.topic, data: { p: this.p, n } } });
      } catch (e) {
        r = { status: 0, json: undefined, text: String(e) };
      }
      const j = r.json || {};
      this.results.push({
        p: this.p, n, port, status: r.status, offset: j.offset, epoch: j.epoch, ms: Date.now() - t0,
        code: j.error && j.error.code, message: j.error && j.error.message, text: r.status === 0 ? r.text : undefined,
      });
      await sleep(this.pauseMs);
    }
  }

  async stop() {
    this.stopped = true;
    await this.done;
  }

  acked() { return this.results.filter((r) => r.status === 200); }
  refused() { return this.results.filter((r) => r.status !== 200); }
  // Acknowledged after the first publication numbered > n.
  ackedAfter(n) { return this.acked().filter((r) => r.n > n); }
}

// As Publisher, over a WebSocket connection (a Hub from hub_common.mjs):
// an error reply is kept with status 'error' and its code and message.
export class WsPublisher extends Publisher {
  constructor(client, topic, pauseMs = 10, p = 'w') {
    super([], undefined, topic, pauseMs, p, client);
  }

  async run() {
    await null; /* the constructor has finished */
    while (!this.stopped) {
      const n = ++this.n;
      const t0 = Date.now();
      let r;
      try {
        r = await this.client.req({ op: 'publish', topic: this.topic, data: { p: this.p, n } }, 15_000);
      } catch (e) {
        r = { ok: false, error: { code: '(no reply)', message: String(e) } };
      }
      this.results.push({
        p: this.p, n, port: 'ws', status: r.ok ? 200 : 'error', offset: r.offset, epoch: r.epoch,
        ms: Date.now() - t0, code: r.error && r.error.code, message: r.error && r.error.message,
      });
      await sleep(this.pauseMs);
    }
  }
}

// Audit a subscriber's log for `topic`, having subscribed at `start`
// ({epoch, offset} of the subscribe reply), against the acknowledged
// publications `acks`. Returns { problems: [...], missing: [acks neither
// delivered nor covered], covered: [acks covered by a gap], delivered, gaps }.
export function audit(log, topic, start, acks) {
  const problems = [];
  const got = new Map(); // p/n -> {epoch, offset}
  const gaps = [];
  let cur = { epoch: start.epoch, offset: start.offset };
  const lastN = new Map(); // p -> the last n seen
  for (const m of log) {
    if (m.topic !== topic) continue;
    if (m.type === 'gap') {
      const g = { from: { ...cur }, to: { epoch: m.epoch, offset: m.offset }, reason: m.reason };
      if (g.to.epoch === cur.epoch && g.to.offset < cur.offset)
        problems.push(`a gap notice goes back within epoch ${cur.epoch}: ${cur.offset} -> ${g.to.offset}`);
      gaps.push(g);
      cur = { ...g.to };
    } else if (m.type === 'message') {
      const { p, n } = m.data || {};
      const id = `${p}/${n}`;
      if (m.offset !== cur.offset + 1)
        problems.push(`${id} at offset ${m.offset} after ${cur.offset} (epoch ${cur.epoch}) without a gap notice`);
      const last = lastN.get(p) || 0;
      if (!(n > last)) problems.push(`${id} after ${p}/${last}: ${got.has(id) ? 'a duplicate' : 'out of order'}`);
      lastN.set(p, Math.max(last, n));
      got.set(id, { epoch: cur.epoch, offset: m.offset });
      cur.offset = m.offset;
    }
  }
  const missing = [];
  const covered = [];
  for (const a of acks) {
    const d = got.get(`${a.p}/${a.n}`);
    if (d) {
      if (d.epoch !== a.epoch || d.offset !== a.offset)
        problems.push(`${a.p}/${a.n} acknowledged at ${a.epoch}/${a.offset}, delivered at ${d.epoch}/${d.offset}`);
      continue;
    }
    const gap = gaps.find((g) => g.from.epoch === a.epoch && a.offset > g.from.offset &&
      (g.to.epoch !== a.epoch || a.offset <= g.to.offset));
    (gap ? covered : missing).push(a);
  }
  return { problems, missing, covered, delivered: got.size, gaps };
}

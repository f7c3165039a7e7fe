// Shared pieces of the Node helpers that test `duplex serve` (the hub of
// docs/PROTOCOL.md): check reporting, bounded waits, and a protocol client.
//
//   import { Hub, check, ok, notOk, group, finish, waitFor } from './hub_common.mjs';
//   const a = await Hub.open(port, { name: 'a' });   // waits for the welcome
//   const r = await a.req({ op: 'subscribe', topic: 't' });   // the reply to it
//
// Every wait is bounded (default T ms); a wait that times out throws, and the
// check group it is in reports "not ok".
import { isDeepStrictEqual } from 'node:util';
import WebSocket from 'ws';

export const T = 10_000;
export const deepEqual = isDeepStrictEqual;
let passed = 0;
let failed = 0;
let tag = '';

export function setTag(t) {
  tag = t ? `[${t}] ` : '';
}
export function ok(name) {
  passed++;
  console.log(`ok - ${tag}${name}`);
}
export function notOk(name, why) {
  failed++;
  console.log(`not ok - ${tag}${name}: ${String(why).replace(/\n/g, ' | ').slice(0, 1500)}`);
}
// why may be a function, evaluated only on failure.
export function check(name, cond, why) {
  if (cond) ok(name);
  else notOk(name, typeof why === 'function' ? why() : why);
  return !!cond;
}
// Run one group of checks; an exception (a timeout, a closed connection)
// counts as one failure named after the group.
export async function group(name, fn) {
  try {
    await fn();
  } catch (e) {
    notOk(name, e && e.message ? e.message : String(e));
  }
}
export function finish() {
  console.log(`# ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
// The whole helper must not hang.
export function watchdog(ms) {
  setTimeout(() => {
    notOk('watchdog', `the helper did not finish within ${ms / 1000} s`);
    process.exit(1);
  }, ms);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

// Poll cond() every 5 ms until it is true; throws after ms.
export async function waitFor(cond, ms, what) {
  const t0 = Date.now();
  for (;;) {
    if (cond()) return;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

export const show = (v, n = 300) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > n ? `${s.slice(0, n)}...` : s;
};

// Offsets of message events must be consecutive (each one more than the one
// before): the first problem found, or null.
export function gapOrDisorder(msgs, first) {
  let want = first;
  for (let i = 0; i < msgs.length; i++) {
    const o = msgs[i].offset;
    if (want !== undefined && o !== want) return `message #${i} has offset ${o}, expected ${want}`;
    want = o + 1;
  }
  return null;
}

// Is r an error reply with this code (and a message for people)?
export function isError(r, code) {
  return (
    r && r.type === 'reply' && r.ok === false && r.error && r.error.code === code &&
    typeof r.error.message === 'string' && r.error.message.length > 0
  );
}

let nextOpenSeq = 0;

// One connection to the hub. Every message received is parsed and kept:
// `log` (all, in order), `inbox` (not yet taken by next()), and per topic the
// `message` events (`msgs(topic)`).
export class Hub {
  // Options: name, path ('/ws'), protocols (['duplex.v1']; null offers none),
  // welcome (wait for it: true), beforeWelcome (called on open, before any
  // message is read), ws (options for the ws client).
  static async open(port, opts = {}) {
    const name = opts.name || `c${++nextOpenSeq}`;
    const protocols = opts.protocols === undefined ? ['duplex.v1'] : opts.protocols;
    const url = `ws://127.0.0.1:${port}${opts.path || '/ws'}`;
    const ws = protocols
      ? new WebSocket(url, protocols, { maxPayload: 64 << 20, ...(opts.ws || {}) })
      : new WebSocket(url, { maxPayload: 64 << 20, ...(opts.ws || {}) });
    const c = new Hub(ws, name);
    await withTimeout(
      new Promise((resolve, reject) => {
        ws.once('open', () => {
          if (opts.beforeWelcome) opts.beforeWelcome(c);
          resolve();
        });
        ws.once('error', reject);
        ws.once('unexpected-response', (req, res) => {
          res.resume();
          req.destroy();
          const e = new Error(`unexpected HTTP ${res.statusCode} to the upgrade`);
          e.status = res.statusCode;
          reject(e);
        });
      }),
      T,
      `${name}: open ${url}`,
    );
    if (opts.welcome !== false) {
      c.welcome = await c.next((m) => m.type === 'welcome', T, 'the welcome event');
      c.id = c.welcome.client;
    }
    return c;
  }

  constructor(ws, name) {
    this.ws = ws;
    this.name = name;
    this.log = [];
    this.inbox = [];
    this.waiters = [];
    this.byTopic = new Map();
    // Automatic ids start high, apart from the small ids tests pick.
    this.nextId = 1_000_000_000;
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        const err = new Error(`${name}: connection closed (code ${code})`);
        for (const w of this.waiters.splice(0)) w.reject(err);
        resolve(this.closeInfo);
      });
    });
    ws.on('error', (e) => {
      this.error = e;
    });
    ws.on('message', (data, isBinary) => {
      let m;
      if (isBinary) m = { type: '(binary frame)', raw: data };
      else {
        try {
          m = JSON.parse(data.toString('utf8'));
        } catch {
          m = { type: '(not JSON)', raw: data.toString('utf8') };
        }
        if (m === null || typeof m !== 'object' || Array.isArray(m)) m = { type: '(not an object)', raw: m };
      }
      this.log.push(m);
      if (m.type === 'message' && typeof m.topic === 'string') this.msgs(m.topic).push(m);
      for (let i = 0; i < this.waiters.length; i++) {
        if (this.waiters[i].pred(m)) {
          this.waiters.splice(i, 1)[0].resolve(m);
          return;
        }
      }
      this.inbox.push(m);
    });
  }

  // The message events of a topic received so far (a live array).
  msgs(topic) {
    let a = this.byTopic.get(topic);
    if (!a) this.byTopic.set(topic, (a = []));
    return a;
  }

  // Take the first message (already received or still to come) that
  // matches pred; throws after ms.
  next(pred = () => true, ms = T, what = 'a message') {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    if (this.closeInfo)
      return Promise.reject(new Error(`${this.name}: closed (code ${this.closeInfo.code}) before ${what}`));
    let w;
    const p = new Promise((resolve, reject) => {
      w = { pred, resolve, reject };
      this.waiters.push(w);
    });
    return withTimeout(p, ms, `${this.name}: ${what}`).finally(() => {
      const k = this.waiters.indexOf(w);
      if (k >= 0) this.waiters.splice(k, 1);
    });
  }

  // Take every received message that matches pred.
  take(pred) {
    const out = [];
    this.inbox = this.inbox.filter((m) => (pred(m) ? (out.push(m), false) : true));
    return out;
  }

  // The next reply (whatever its id): replies come in request order.
  nextReply(ms = T, what = 'a reply') {
    return this.next((m) => m.type === 'reply', ms, what);
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
  }

  // Send a request (given an integer id if it has none) and return its reply.
  req(obj, ms = T) {
    const msg = 'id' in obj ? obj : { id: this.nextId++, ...obj };
    this.send(msg);
    return this.next((m) => m.type === 'reply' && m.id === msg.id, ms, `the reply to ${show(msg, 120)}`);
  }

  // As req, but the reply must be ok.
  async must(obj, ms = T) {
    const r = await this.req(obj, ms);
    if (r.ok !== true) throw new Error(`${this.name}: ${show(obj, 120)} failed: ${show(r)}`);
    return r;
  }

  // A round trip: every reply to earlier requests, and every event the
  // server wrote to this connection before it handled the ping, has arrived.
  async sync(ms = T) {
    await this.must({ op: 'ping' }, ms);
  }

  close(code = 1000) {
    if (!this.closeInfo) this.ws.close(code);
    return withTimeout(this.closed, T, `${this.name}: the close handshake`);
  }

  // Drop the TCP connection without a close handshake.
  terminate() {
    this.ws.terminate();
    return withTimeout(this.closed, T, `${this.name}: the end of the connection`);
  }
}

// HTTP: a call to the hub's API; returns { status, json, text, type }.
export async function http(port, method, path, { key, via = 'bearer', body, raw, headers = {} } = {}) {
  const h = { ...headers };
  if (key !== undefined) {
    if (via === 'bearer') h.Authorization = `Bearer ${key}`;
    else h['X-API-Key'] = key;
  }
  let b;
  if (raw !== undefined) b = raw;
  else if (body !== undefined) b = JSON.stringify(body);
  if (b !== undefined && !('Content-Type' in h)) h['Content-Type'] = 'application/json';
  const res = await withTimeout(
    fetch(`http://127.0.0.1:${port}${path}`, { method, headers: h, body: b, signal: AbortSignal.timeout(T) }),
    T + 1000,
    `${method} ${path}`,
  );
  const text = await withTimeout(res.text(), T, `the body of ${method} ${path}`);
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, type: res.headers.get('content-type') || '' };
}

// Is this HTTP answer the documented error with status and code?
export function isHttpError(res, status, code) {
  return (
    res.status === status && res.json && res.json.ok === false && res.json.error &&
    res.json.error.code === code && typeof res.json.error.message === 'string'
  );
}

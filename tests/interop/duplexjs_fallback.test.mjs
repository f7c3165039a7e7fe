// web/duplex.js on its fallback transports (SSE via EventSource, and
// long-polling, each with POST /http/request for requests), against real
// `duplex serve` processes:
//
//   node --experimental-websocket --experimental-eventsource --test tests/interop/duplexjs_fallback.test.mjs
//
// Without --experimental-eventsource (Node has no EventSource then) the SSE
// tests are skipped and the automatic fallback goes straight to polling.
// DUPLEX (or DX_BUILD_DIR) names the binary; DX_HUB_PORT and DX_HUB_KEY name
// an already started `duplex serve --api-key KEY` (tests/e2e/test_duplexjs.sh).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { connect } from '../../web/duplex.js';
import { api, Serve, sleep, TcpProxy, waitFor, within } from './web_common.mjs';

const KEY = process.env.DX_HUB_KEY || 'duplexjs-test-key';
const HAVE_SSE = typeof globalThis.EventSource === 'function';
let shared;
let hubUrl;
let hubHttp;
const clients = [];
const uniq = (() => {
  let n = 0;
  return (p) => `${p}-${process.pid}-${++n}`;
})();

function client(url = hubUrl, opts = {}) {
  const c = connect(url, { WebSocket, ...opts });
  clients.push(c);
  return c;
}

function states(c) {
  const list = [];
  c.on('state', (e) => list.push(e));
  return list;
}

// A WebSocket that can never be opened (as behind a proxy that cuts upgrades).
function refusedWebSocket() {
  const made = [];
  class Refused {
    constructor(url) {
      made.push(url);
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.onclose?.({ code: 1006, reason: '' });
      }, 5);
    }
    send() {
      throw new Error('not open');
    }
    close() {}
  }
  Refused.made = made;
  return Refused;
}

before(async () => {
  if (process.env.DX_HUB_PORT) {
    hubUrl = `ws://127.0.0.1:${process.env.DX_HUB_PORT}/ws`;
    hubHttp = `http://127.0.0.1:${process.env.DX_HUB_PORT}`;
  } else {
    shared = await new Serve(['--api-key', KEY, '--history-size', '1000']).start();
    hubUrl = shared.url;
    hubHttp = shared.http;
  }
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  if (shared) await shared.stop();
});

const KINDS = [['poll', true], ['sse', HAVE_SSE]];

for (const [kind, available] of KINDS) {
  test(`${kind}: subscribe, publish, history, presence, a second topic, unsubscribe`, { skip: !available && 'no EventSource' }, async () => {
    const a = uniq(`${kind}-a`);
    const b = uniq(`${kind}-b`);
    const c = client(hubUrl, { transports: [kind] });
    const st = states(c);
    await within(c.whenOpen(), 5000, 'open');
    assert.equal(c.transport, kind);
    assert.equal(st.at(-1).transport, kind);
    const gotA = [];
    const gotB = [];
    const sa = c.subscribe(a, { onMessage: (m) => gotA.push(m.data.n) });
    const info = await sa.ready;
    assert.equal(info.offset, 0);
    const ack = await c.publish(a, { n: 1 });
    assert.equal(ack.offset, 1);
    assert.equal(ack.epoch, info.epoch);
    await api(hubHttp, KEY, 'publish', { topic: a, data: { n: 2 } });
    await waitFor(() => gotA.length === 2, 5000, 'two messages on a');
    // A new topic restarts the stream (or the poll) from the positions held.
    const pumping = (async () => {
      for (let n = 3; n <= 40; n++) {
        await c.publish(a, { n });
        await sleep(2);
      }
    })();
    await sleep(10);
    const sb = c.subscribe(b, { onMessage: (m) => gotB.push(m.data) });
    await sb.ready;
    await c.publish(b, 'x');
    await within(pumping, 10000, 'publishing');
    await waitFor(() => gotA.length >= 40 && gotB.length === 1, 5000, () => `a: ${gotA.length}, b: ${gotB.length}`);
    await sleep(50);
    assert.deepEqual(gotA, Array.from({ length: 40 }, (_, i) => i + 1));
    assert.deepEqual(gotB, ['x']);
    const h = await c.history(a, { limit: 3 });
    assert.deepEqual(h.publications.map((p) => p.data.n), [38, 39, 40]);
    assert.ok(Array.isArray(await c.presence(a)));
    await assert.rejects(c.publish('bad topic!', 1), (e) => e.code && e.code !== 'connection_lost');
    await sb.unsubscribe();
    await api(hubHttp, KEY, 'publish', { topic: b, data: 'y' });
    await c.publish(a, { n: 41 });
    await waitFor(() => gotA.length === 41, 5000, 'a after unsubscribing b');
    await sleep(50);
    assert.deepEqual(gotB, ['x']);
    assert.equal(c.transport, kind);
    await c.close();
  });

  test(`${kind}: one client in presence (its session): info, join once, join/leave events, leave on close`, { skip: !available && 'no EventSource' }, async () => {
    const topic = uniq(`${kind}-presence`);
    const seen = [];
    const b = client();
    await b.subscribe(topic, { onJoin: (e) => seen.push(['join', e.client, e.info]), onLeave: (e) => seen.push(['leave', e.client]) }).ready;
    const a = client(hubUrl, { transports: [kind] });
    await within(a.whenOpen(), 5000, 'open');
    assert.match(a.id, /^[0-9a-z]+-[0-9a-f]+$/, 'the welcome of the session gives a client id');
    assert.ok(a.limits && a.limits.max_publication > 0, 'and the limits');
    const aSeen = [];
    const sa = a.subscribe(topic, { info: { name: 'ana' }, onJoin: (e) => aSeen.push(['join', e.client]), onLeave: (e) => aSeen.push(['leave', e.client]) });
    const r = await sa.ready;
    assert.equal(r.topic, topic);
    assert.match(r.epoch, /^[0-9a-f]{16}$/);
    await waitFor(() => seen.some((e) => e[0] === 'join' && e[1] === a.id), 5000, 'the join of the fallback client');
    assert.deepEqual(seen.find((e) => e[1] === a.id)[2], { name: 'ana' });
    // Publishing answers polls (and restarts nothing): presence must hold across them.
    for (let n = 0; n < 10; n++) {
      await a.publish(topic, n);
      const list = await b.presence(topic);
      assert.ok(list.some((e) => e.client === a.id && e.info?.name === 'ana'), `listed after publish ${n}`);
      await sleep(50);
    }
    assert.equal(seen.filter((e) => e[0] === 'join' && e[1] === a.id).length, 1, 'one join, not one per poll');
    const c = client();
    await c.subscribe(topic).ready;
    await waitFor(() => aSeen.some((e) => e[0] === 'join' && e[1] === c.id), 5000, 'the fallback client hears a join');
    await c.close();
    await waitFor(() => aSeen.some((e) => e[0] === 'leave' && e[1] === c.id), 5000, 'and a leave');
    await a.close();
    await waitFor(() => seen.some((e) => e[0] === 'leave' && e[1] === a.id), 5000, 'its leave when it closes');
    await sleep(300);
    assert.equal(seen.filter((e) => e[0] === 'leave' && e[1] === a.id).length, 1, 'one leave');
    await b.close();
  });

  test(`${kind}: a session the hub forgot (410) is renewed, nothing lost or repeated`, { skip: !available && 'no EventSource' }, async () => {
    const topic = uniq(`${kind}-renew`);
    const a = client(hubUrl, { transports: [kind] });
    const st = states(a);
    const got = [];
    await a.subscribe(topic, { onMessage: (m) => got.push(m.data) }).ready;
    for (let n = 1; n <= 3; n++) await api(hubHttp, KEY, 'publish', { topic, data: n });
    await waitFor(() => got.length === 3, 5000, 'three messages');
    const before = a.id;
    a._ws._sid = 'f'.repeat(32); // as if it had expired on the hub
    await a.publish(topic, 4); // 410, a new session, the same request again
    for (let n = 5; n <= 8; n++) await api(hubHttp, KEY, 'publish', { topic, data: n });
    await waitFor(() => got.length >= 8, 5000, () => `eight messages (have ${got})`);
    await sleep(100);
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.notEqual(a.id, before, 'a new session, a new client id');
    assert.ok(!st.some((e) => e.state === 'reconnecting'), 'without a reconnect');
    await a.close();
  });

  test(`${kind}: token refresh works on this transport (open past the first token's exp)`, { skip: !available && 'no EventSource' }, async () => {
    const secret = 'fallback-secret-0123456789abcdef';
    const hub = await new Serve(['--api-key', KEY, '--token-secret', secret, '--token-leeway', '0']).start();
    try {
      const b64u = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
      let minted = 0;
      const token = () => {
        minted++;
        const h = b64u({ alg: 'HS256', typ: 'JWT' }) + '.' + b64u({ sub: 'ana', exp: Math.floor(Date.now() / 1000) + 3 });
        return h + '.' + createHmac('sha256', secret).update(h).digest('base64url');
      };
      const topic = uniq(`${kind}-refresh`);
      const a = client(hub.url, { transports: [kind], token });
      const st = states(a);
      const got = [];
      await a.subscribe(topic, { onMessage: (m) => got.push(m.data) }).ready;
      assert.equal(a.user, 'ana');
      const t0 = Date.now();
      let n = 0;
      while (Date.now() - t0 < 5500) {
        await a.publish(topic, ++n);
        await sleep(250);
      }
      await waitFor(() => got.length === n, 5000, () => `${n} messages (have ${got.length})`);
      assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1));
      assert.ok(minted >= 3, `the token function was asked ${minted} times`);
      assert.ok(!st.some((e) => e.state === 'reconnecting'), `no reconnect: ${JSON.stringify(st.map((e) => [e.state, e.reason, e.code]))}`);
      await a.close();
    } finally {
      await hub.stop();
    }
  });

  test(`${kind}: network drops: resume without loss or duplicates`, { skip: !available && 'no EventSource' }, async () => {
    const proxy = await new TcpProxy(Number(new URL(hubUrl).port)).start();
    try {
      const topic = uniq(`${kind}-drop`);
      const sub = client(`ws://127.0.0.1:${proxy.port}/ws`, { transports: [kind], reconnect: { base: 20, cap: 200 } });
      const st = states(sub);
      const got = [];
      const resubs = [];
      let resets = 0;
      const s = sub.subscribe(topic, { onMessage: (m) => got.push(m.data.n), onSubscribed: (i) => resubs.push(i), onReset: () => resets++ });
      await s.ready;
      const pub = client();
      await pub.whenOpen();
      const N = 200;
      const sending = (async () => {
        for (let n = 1; n <= N; n++) {
          await pub.publish(topic, { n });
          await sleep(3);
        }
      })();
      for (let k = 0; k < 3; k++) {
        await waitFor(() => got.length > (k + 1) * 40, 10000, `messages before cut ${k + 1}`);
        const before = st.length;
        proxy.kill();
        await waitFor(() => st.slice(before).some((e) => e.state === 'reconnecting'), 5000, 'the client to notice the cut');
      }
      await within(sending, 20000, 'publishing');
      await waitFor(() => got.length >= N || resets > 0, 10000, () => `${N} messages (have ${got.length})`);
      await sleep(50);
      assert.deepEqual(got, Array.from({ length: N }, (_, i) => i + 1));
      assert.equal(resets, 0);
      const resumed = resubs.filter((r) => r.resumed);
      assert.ok(resumed.length >= 3, `resubscribed ${resumed.length} times`);
      assert.ok(resumed.every((r) => r.recovered === true));
      assert.ok(st.every((e) => e.transport === kind));
    } finally {
      await proxy.close();
    }
  });

  test(`${kind}: server restart: reconnect, reset on epoch change, then every message once`, { skip: !available && 'no EventSource' }, async () => {
    const hub = await new Serve(['--api-key', KEY]).start();
    try {
      const topic = uniq(`${kind}-restart`);
      const c = client(hub.url, { transports: [kind], reconnect: { base: 50, cap: 300 } });
      const st = states(c);
      const got = [];
      const resets = [];
      const s = c.subscribe(topic, { onMessage: (m) => got.push(m.data.n), onReset: (e) => resets.push(e) });
      await s.ready;
      for (let n = 1; n <= 3; n++) await c.publish(topic, { n });
      await waitFor(() => got.length === 3, 5000, 'three messages');
      const oldEpoch = s.position.epoch;
      await hub.stop();
      await waitFor(() => st.some((e) => e.state === 'reconnecting'), 5000, 'reconnecting');
      const queued = c.publish(topic, { n: 4 }); // waits in the queue, sent once after the reconnect
      await hub.start();
      await within(c.whenOpen(), 10000, 'reconnect');
      await waitFor(() => resets.length === 1, 5000, 'reset event');
      assert.equal(resets[0].reason, 'epoch_changed');
      assert.equal(resets[0].previous.epoch, oldEpoch);
      await within(queued, 5000, 'the queued publish');
      await api(hub.http, KEY, 'publish', { topic, data: { n: 5 } });
      await c.publish(topic, { n: 6 });
      await waitFor(() => got.length === 6, 5000, () => `messages after the restart: ${got}`);
      await sleep(50);
      assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
      assert.equal(c.transport, kind);
      assert.equal(st.at(-1).state, 'open');
      assert.equal(st.at(-1).reason, 'reconnected');
    } finally {
      await hub.stop();
    }
  });
}

test('automatic fallback: WebSocket refused twice, then SSE (or polling without EventSource); WebSocket again later', async () => {
  const topic = uniq('auto');
  for (const transports of [undefined, ['websocket', 'poll']]) {
    const Refused = refusedWebSocket();
    const c = client(hubUrl, { WebSocket: Refused, transports, retryWebSocket: 0, reconnect: { base: 10, cap: 20 } });
    const st = states(c);
    const seen = [];
    c.on('transport', (e) => seen.push(e.transport));
    const got = [];
    c.subscribe(topic, { onMessage: (m) => got.push(m.data) });
    await within(c.whenOpen(), 5000, 'open on a fallback');
    const expect = transports || !HAVE_SSE ? 'poll' : 'sse';
    assert.equal(c.transport, expect);
    assert.equal(Refused.made.length, 2, 'two WebSocket attempts (fallbackAfter)');
    assert.deepEqual(seen, [expect]);
    assert.deepEqual(st.filter((e) => e.state === 'reconnecting').map((e) => e.transport), ['websocket', 'websocket']);
    assert.equal(st.at(-1).transport, expect);
    await c.subscription(topic).ready;
    await c.publish(topic, expect);
    await waitFor(() => got.includes(expect), 5000, 'own message');
    await c.close();
  }
  // fallbackAfter; retryWebSocket brings the client back once WebSocket works.
  let refuse = 3;
  const made = [];
  class Flaky extends WebSocket {
    constructor(url, protocols) {
      made.push(url);
      super(refuse-- > 0 ? url.replace(/\/ws$/, '/not-here') : url, protocols);
    }
  }
  const c = client(hubUrl, { WebSocket: Flaky, transports: ['websocket', 'poll'], fallbackAfter: 3, retryWebSocket: 300, reconnect: { base: 10, cap: 20 } });
  const seen = [];
  c.on('transport', (e) => seen.push(e.transport));
  const got = [];
  const s = c.subscribe(topic, { onMessage: (m) => got.push(m.data) });
  await waitFor(() => c.transport === 'poll' && c.state === 'open', 5000, 'polling');
  assert.equal(made.length, 3);
  await s.ready;
  await c.publish(topic, 'on poll');
  await waitFor(() => c.transport === 'websocket' && c.state === 'open', 5000, 'back on WebSocket');
  assert.deepEqual(seen, ['poll', 'websocket']);
  await c.publish(topic, 'on websocket');
  await waitFor(() => got.includes('on websocket'), 5000, 'message over WebSocket');
  await sleep(50);
  assert.deepEqual(got, ['on poll', 'on websocket'], 'no loss or duplicate across the switch');
  await c.close();
});

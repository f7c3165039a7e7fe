// Unit tests of web/duplex.js under Node's test runner, against real
// `duplex serve` processes (and a TCP proxy that cuts or freezes
// connections, and a few fake servers for close codes).
//
//   node --experimental-websocket --test tests/interop/duplexjs.test.mjs
//
// DUPLEX (or DX_BUILD_DIR) names the binary; DX_HUB_PORT and DX_HUB_KEY, when
// set, name an already started `duplex serve --api-key KEY` for the tests
// that need no restart (tests/e2e/test_duplexjs.sh passes them).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { after, before, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import {
  backoffDelay, connect, DuplexError, fromBase64, isFatalCloseCode, toBase64,
} from '../../web/duplex.js';
import { api, DUPLEX, Serve, sleep, TcpProxy, waitFor, within } from './web_common.mjs';

const KEY = process.env.DX_HUB_KEY || 'duplexjs-test-key';
let shared; // the long-running hub
let hubUrl;
let hubHttp;
const clients = [];
const uniq = (() => {
  let n = 0;
  return (p) => `${p}-${process.pid}-${++n}`;
})();

// Every client a test makes is closed after the file's tests.
function client(url = hubUrl, opts = {}) {
  const c = connect(url, { WebSocket, ...opts });
  clients.push(c);
  return c;
}

// Record every state event.
function states(c) {
  const list = [];
  c.on('state', (e) => list.push(e));
  return list;
}

before(async () => {
  if (process.env.DX_HUB_PORT) {
    hubUrl = `ws://127.0.0.1:${process.env.DX_HUB_PORT}/ws`;
    hubHttp = `http://127.0.0.1:${process.env.DX_HUB_PORT}`;
  } else {
    shared = await new Serve(['--api-key', KEY]).start();
    hubUrl = shared.url;
    hubHttp = shared.http;
  }
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  if (shared) await shared.stop();
});

test('backoffDelay: full jitter within [0, min(cap, base*2^attempt))', () => {
  for (let a = 0; a < 40; a++) {
    const ceiling = Math.min(8000, 250 * 2 ** a);
    assert.equal(backoffDelay(a, 250, 8000, () => 0), 0);
    assert.ok(backoffDelay(a, 250, 8000, () => 0.999999) < ceiling);
    assert.ok(backoffDelay(a, 250, 8000, () => 0.999999) >= ceiling - 1);
    for (let i = 0; i < 20; i++) {
      const d = backoffDelay(a, 250, 8000);
      assert.ok(d >= 0 && d < ceiling, `attempt ${a}: ${d}`);
    }
  }
  assert.equal(backoffDelay(2000, 1, 5000, () => 0.5), 2500, 'no overflow at huge attempts');
  assert.ok(isFatalCloseCode(4000) && isFatalCloseCode(1002) && isFatalCloseCode(1009) && isFatalCloseCode(4099));
  assert.ok(!isFatalCloseCode(1000) && !isFatalCloseCode(1001) && !isFatalCloseCode(1006) &&
    !isFatalCloseCode(1008) && !isFatalCloseCode(1011) && !isFatalCloseCode(1013) && !isFatalCloseCode(4100));
  assert.deepEqual([...fromBase64(toBase64(new Uint8Array([0, 1, 254, 255])))], [0, 1, 254, 255]);
});

test('connect, subscribe with history, publish acked with offset and epoch', async () => {
  const topic = uniq('basic');
  for (let i = 1; i <= 5; i++) await api(hubHttp, KEY, 'publish', { topic, data: { i } });
  const a = client();
  const seen = [];
  const sub = a.subscribe(topic, { history: 3, onMessage: (m) => seen.push(m) });
  const r = await within(sub.ready, 5000, 'subscribe');
  assert.equal(a.state, 'open');
  assert.match(a.id, /.+/);
  assert.equal(r.offset, 5);
  assert.equal(r.resumed, false);
  await waitFor(() => seen.length === 3, 3000, 'three history messages');
  assert.deepEqual(seen.map((m) => m.data.i), [3, 4, 5]);
  assert.deepEqual(seen.map((m) => m.offset), [3, 4, 5]);
  assert.equal(seen[0].epoch, r.epoch);

  const b = client();
  const ack = await within(b.publish(topic, { i: 6 }), 5000, 'publish ack');
  assert.deepEqual(ack, { offset: 6, epoch: r.epoch });
  await waitFor(() => seen.length === 4, 3000, 'the live message');
  assert.equal(seen[3].from, b.id);
  assert.deepEqual(sub.position, { offset: 6, epoch: r.epoch });

  // skip_self: not delivered to the publisher's own subscription.
  const mine = [];
  b.subscribe(topic, { onMessage: (m) => mine.push(m.data.i) });
  await b.subscription(topic).ready;
  await b.publish(topic, { i: 7 }, { skipSelf: true });
  await b.publish(topic, { i: 8 });
  await waitFor(() => seen.length === 6 && mine.length === 1, 3000, 'skip_self deliveries');
  assert.deepEqual(mine, [8]);
});

test('requests made before the connection opens wait for it', async () => {
  const c = client();
  assert.equal(c.state, 'connecting');
  const topic = uniq('early');
  const [p, h] = await within(Promise.all([c.presence(topic), c.history(topic, { limit: 5 })]), 5000, 'early requests');
  assert.deepEqual(p, []);
  assert.equal(h.publications.length, 0);
  assert.equal(h.offset, 0);
});

test('presence, join and leave events', async () => {
  const topic = uniq('presence');
  const a = client();
  const joins = [];
  const leaves = [];
  const subA = a.subscribe(topic, {
    info: { name: 'ana' }, onJoin: (e) => joins.push(e), onLeave: (e) => leaves.push(e),
  });
  await subA.ready;
  const b = client();
  await b.subscribe(topic, { info: { name: 'bo' }, presence: true }).ready;
  await waitFor(() => joins.length === 1, 3000, 'join');
  assert.equal(joins[0].client, b.id);
  assert.deepEqual(joins[0].info, { name: 'bo' });
  const who = await subA.presence();
  assert.deepEqual(who.map((w) => w.info.name).sort(), ['ana', 'bo']);
  await b.unsubscribe(topic);
  await waitFor(() => leaves.length === 1, 3000, 'leave');
  assert.equal(leaves[0].client, joins[0].client);
  assert.equal((await a.presence(topic)).length, 1);
});

test('history with since and limit; binary publications', async () => {
  const topic = uniq('history');
  const c = client();
  let last;
  for (let i = 1; i <= 6; i++) last = await c.publish(topic, { i });
  const h = await c.history(topic, { since: { offset: 2, epoch: last.epoch }, limit: 3 });
  assert.deepEqual(h.publications.map((p) => p.data.i), [3, 4, 5]);
  assert.equal(h.complete, true);
  const latest = await c.history(topic, { limit: 2 });
  assert.deepEqual(latest.publications.map((p) => p.offset), [5, 6]);
  await assert.rejects(c.history(topic, { since: { offset: 1, epoch: 'nope' } }), { code: 'epoch_changed' });

  const got = [];
  await c.subscribe(topic + '-bin', { onMessage: (m) => got.push(m) }).ready;
  await c.publish(topic + '-bin', new Uint8Array([0, 255, 7]));
  await waitFor(() => got.length === 1, 3000, 'binary message');
  assert.equal(got[0].data, undefined);
  assert.deepEqual([...got[0].bytes], [0, 255, 7]);
});

test('errors reject with the protocol code; the connection stays', async () => {
  const c = client();
  const errors = [];
  c.on('error', (e) => errors.push(e));
  await assert.rejects(c.publish('bad topic!', 1), (e) => e instanceof DuplexError && e.code === 'bad_topic');
  await assert.rejects(c.request('dance'), { code: 'unknown_op' });
  const sub = c.subscribe('also bad!', {});
  await assert.rejects(sub.ready, { code: 'bad_topic' });
  assert.equal(c.subscription('also bad!'), undefined);
  assert.throws(() => {
    c.subscribe('x1');
    c.subscribe('x1');
  }, { code: 'already_subscribed' });
  assert.equal(c.state, 'open');
  await c.publish(uniq('ok'), 'still fine');
});

test('unsubscribe stops delivery', async () => {
  const topic = uniq('unsub');
  const c = client();
  const got = [];
  const sub = c.subscribe(topic, { onMessage: (m) => got.push(m.data) });
  await sub.ready;
  await c.publish(topic, 1);
  await waitFor(() => got.length === 1, 3000, 'first message');
  await sub.unsubscribe();
  assert.equal(sub.active, false);
  await c.publish(topic, 2);
  await c.request('ping'); // replies come in order: anything for topic came before
  await sleep(50);
  assert.deepEqual(got, [1]);
});

// One subscriber behind a proxy that cuts its connection three times while
// another client publishes 300 numbered messages: every one arrives, once,
// in order, and every resubscribe recovered.
test('network drops: resume without loss or duplicates', async () => {
  const proxy = await new TcpProxy(Number(new URL(hubUrl).port)).start();
  try {
    const topic = uniq('drop');
    const sub = client(`ws://127.0.0.1:${proxy.port}/ws`, { reconnect: { base: 20, cap: 200 } });
    const st = states(sub);
    const got = [];
    const resubs = [];
    const s = sub.subscribe(topic, { onMessage: (m) => got.push(m.data.n), onSubscribed: (i) => resubs.push(i) });
    let resets = 0;
    s.on('reset', () => resets++);
    await s.ready;
    const pub = client();
    await pub.whenOpen();
    const N = 300;
    const sending = (async () => {
      for (let n = 1; n <= N; n++) {
        await pub.publish(topic, { n });
        await sleep(3); // an outage of ~100 ms misses ~30, well within the history

      }
    })();
    for (let k = 0; k < 3; k++) {
      await waitFor(() => got.length > (k + 1) * 60, 10000, `messages before cut ${k + 1}`);
      const before = st.length;
      proxy.kill();
      await waitFor(() => st.slice(before).some((e) => e.state === 'reconnecting'), 2000, 'the client to notice the cut');
    }
    await within(sending, 20000, 'publishing');
    await waitFor(() => got.length >= N || resets > 0, 10000, () => `${N} messages (have ${got.length}; states ${JSON.stringify(st)}; subscribes ${JSON.stringify(resubs)})`);
    await sleep(50);
    assert.deepEqual(got, Array.from({ length: N }, (_, i) => i + 1));
    assert.equal(resets, 0);
    const resumed = resubs.filter((r) => r.resumed);
    assert.ok(resumed.length >= 3, `resubscribed ${resumed.length} times`);
    assert.ok(resumed.every((r) => r.recovered === true));
    assert.ok(st.some((e) => e.state === 'reconnecting' && e.reason === 'closed'));
  } finally {
    await proxy.close();
  }
});

// The hub restarts: the client reconnects by itself (close code 1001), the
// topic's epoch changed so the subscription reports a reset (the app
// reloads), and later publications arrive once each.
test('server restart: reconnect, reset on epoch change, no duplicates', async () => {
  const hub = await new Serve(['--api-key', KEY]).start();
  try {
    const topic = uniq('restart');
    const c = client(hub.url, { reconnect: { base: 50, cap: 300 } });
    const st = states(c);
    const got = [];
    const resets = [];
    const s = c.subscribe(topic, { onMessage: (m) => got.push(m.data.n), onReset: (e) => resets.push(e) });
    await s.ready;
    for (let n = 1; n <= 3; n++) await c.publish(topic, { n });
    await waitFor(() => got.length === 3, 3000, 'three messages');
    const oldEpoch = s.position.epoch;
    await hub.stop();
    await waitFor(() => st.some((e) => e.state === 'reconnecting' && e.code === 1001), 3000, 'reconnecting (1001)');
    await hub.start(); // same port, new epoch
    await within(c.whenOpen(), 10000, 'reconnect');
    await waitFor(() => resets.length === 1, 3000, 'reset event');
    assert.equal(resets[0].reason, 'epoch_changed');
    assert.equal(resets[0].previous.epoch, oldEpoch);
    assert.notEqual(s.position.epoch, oldEpoch);
    await api(hub.http, KEY, 'publish', { topic, data: { n: 4 } });
    await c.publish(topic, { n: 5 });
    await waitFor(() => got.length === 5, 3000, 'messages after the restart');
    assert.deepEqual(got, [1, 2, 3, 4, 5]);
    const last = st.at(-1);
    assert.equal(last.state, 'open');
    assert.equal(last.reason, 'reconnected');
  } finally {
    await hub.stop();
  }
});

test('publishes made while disconnected are queued, sent once after the reconnect', async () => {
  const proxy = await new TcpProxy(Number(new URL(hubUrl).port)).start();
  try {
    const topic = uniq('queue');
    const watcher = client();
    const seen = [];
    await watcher.subscribe(topic, { onMessage: (m) => seen.push(m.data) }).ready;
    const c = client(`ws://127.0.0.1:${proxy.port}/ws`, { reconnect: { base: 20, cap: 100 }, queue: 5 });
    await c.whenOpen();
    proxy.mode = 'refuse';
    proxy.kill();
    await waitFor(() => c.state === 'reconnecting', 2000, 'reconnecting');
    const settled = [];
    const acks = [];
    for (let i = 1; i <= 5; i++) {
      acks.push(c.publish(topic, `q${i}`).then((a) => {
        settled.push(i);
        return a;
      }));
    }
    await assert.rejects(c.publish(topic, 'q6'), { code: 'queue_full' });
    await sleep(300); // several refused attempts
    assert.deepEqual(settled, [], 'nothing acked while disconnected');
    assert.equal(seen.length, 0);
    proxy.mode = 'pass';
    const res = await within(Promise.all(acks), 5000, 'acks after the reconnect');
    assert.deepEqual(settled, [1, 2, 3, 4, 5]);
    const offsets = res.map((a) => a.offset);
    assert.deepEqual(offsets, [1, 2, 3, 4, 5]);
    await waitFor(() => seen.length === 5, 3000, 'the queued messages');
    await c.request('ping');
    await sleep(50);
    assert.deepEqual(seen, ['q1', 'q2', 'q3', 'q4', 'q5'], 'each sent exactly once');

    // queue: 0 refuses at once.
    const d = client(`ws://127.0.0.1:${proxy.port}/ws`, { queue: 0 });
    await assert.rejects(d.publish(topic, 'x'), { code: 'not_connected' });
  } finally {
    await proxy.close();
  }
});

test('heartbeat notices a dead connection and the client resumes', async () => {
  const proxy = await new TcpProxy(Number(new URL(hubUrl).port)).start();
  try {
    const topic = uniq('dead');
    const hb = { interval: 200, timeout: 300 };
    // When each ping leaves the client (its clock), and when it gives up.
    const pings = [];
    class PingClock extends WebSocket {
      send(data, ...rest) {
        if (typeof data === 'string' && JSON.parse(data).op === 'ping') pings.push(performance.now());
        return super.send(data, ...rest);
      }
    }
    const c = client(`ws://127.0.0.1:${proxy.port}/ws`, {
      WebSocket: PingClock, heartbeat: hb, reconnect: { base: 20, cap: 100 },
    });
    const st = states(c);
    let droppedAt;
    c.on('state', (x) => { if (x.reason === 'heartbeat_timeout' && droppedAt === undefined) droppedAt = performance.now(); });
    const got = [];
    const s = c.subscribe(topic, { onMessage: (m) => got.push(m.data) });
    await s.ready;
    const pub = client();
    await pub.publish(topic, 1);
    await waitFor(() => got.length === 1, 3000, 'first message');
    proxy.freeze(); // the socket stays open but nothing gets through
    const t0 = performance.now();
    await pub.publish(topic, 2); // lost in the black hole
    const e = await waitFor(() => st.find((x) => x.reason === 'heartbeat_timeout'), 3000, 'heartbeat_timeout');
    // Never early: the drop comes a whole timeout after the unanswered ping
    // (the last one sent; Node's timers may round 1 ms down). Not late: a
    // ping within an interval of the freeze, the drop a timeout later; the
    // bound allows a busy machine three times that (the defaults, 10 s and
    // 5 s, or a heartbeat that never fires, still fail it).
    const lastPing = pings.filter((p) => p <= droppedAt).at(-1);
    const waited = droppedAt - lastPing;
    const took = droppedAt - t0;
    assert.ok(waited >= hb.timeout - 1, `dropped ${waited.toFixed(1)} ms after the last ping`);
    assert.ok(took <= 3 * (hb.interval + hb.timeout), `noticed after ${took.toFixed(0)} ms`);
    assert.equal(e.state, 'reconnecting');
    await within(c.whenOpen(), 3000, 'reconnect through the proxy');
    await pub.publish(topic, 3);
    await waitFor(() => got.length === 3, 3000, 'the missed and the new message');
    assert.deepEqual(got, [1, 2, 3]);
    assert.ok(c.rtt >= 0);
  } finally {
    await proxy.close();
  }
});

test('fatal close 4000 from the hub: no reconnect', async () => {
  const proxy = await new TcpProxy(Number(new URL(hubUrl).port)).start();
  try {
    const c = client(`ws://127.0.0.1:${proxy.port}/ws`, { reconnect: { base: 10, cap: 20 } });
    const st = states(c);
    await c.whenOpen();
    // 20 invalid requests in a row: the hub closes with 4000.
    const fails = [];
    for (let i = 0; i < 20; i++) fails.push(c.request('dance').catch((e) => e.code));
    await within(Promise.all(fails), 5000, 'the invalid requests to fail');
    await waitFor(() => c.state === 'closed', 3000, 'closed');
    const last = st.at(-1);
    assert.equal(last.reason, 'fatal');
    assert.equal(last.code, 4000);
    await sleep(200);
    assert.equal(proxy.accepted, 1, 'no reconnect attempt');
    await assert.rejects(c.publish('t', 1), { code: 'closed' });
  } finally {
    await proxy.close();
  }
});

// A fake server that closes every connection with a given code.
async function closingServer(code, onConn) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'duplex.v1' });
  await new Promise((r) => wss.on('listening', r));
  wss.count = 0;
  wss.on('connection', (ws, req) => {
    wss.count++;
    onConn?.(ws, req);
    ws.send(JSON.stringify({ type: 'welcome', version: 1, client: `fake-${wss.count}`, user: '', limits: {} }));
    setTimeout(() => ws.close(code, 'test'), 5);
  });
  wss.url = `ws://127.0.0.1:${wss.address().port}/ws`;
  return wss;
}

test('close codes: 1002, 1009, 4001 are fatal; 1001, 1008, 1011, 1013 reconnect', async () => {
  for (const code of [1002, 1009, 4001]) {
    const wss = await closingServer(code);
    try {
      const c = client(wss.url, { reconnect: { base: 10, cap: 20 } });
      await waitFor(() => c.state === 'closed', 3000, `closed after ${code}`);
      await sleep(100);
      assert.equal(wss.count, 1, `${code}: one connection only`);
    } finally {
      wss.close();
    }
  }
  for (const code of [1001, 1008, 1011, 1013]) {
    const wss = await closingServer(code);
    try {
      const c = client(wss.url, { reconnect: { base: 10, cap: 20 } });
      await waitFor(() => wss.count >= 3, 3000, `reconnects after ${code}`);
      await c.close();
      assert.equal(c.state, 'closed');
    } finally {
      wss.close();
    }
  }
  // fatalCodes overrides the rule.
  const wss = await closingServer(4001);
  try {
    const c = client(wss.url, { reconnect: { base: 10, cap: 20 }, fatalCodes: [4000] });
    await waitFor(() => wss.count >= 2, 3000, 'reconnect after 4001 when not fatal');
    await c.close();
  } finally {
    wss.close();
  }
});

test('backoff: reconnect delays within bounds, attempts limit, close() stops it', async () => {
  const proxy = await new TcpProxy(1).start();
  proxy.mode = 'refuse';
  try {
    const base = 20;
    const cap = 160;
    const c = client(`ws://127.0.0.1:${proxy.port}/ws`, { reconnect: { base, cap, attempts: 8 } });
    const st = states(c);
    await waitFor(() => c.state === 'closed', 5000, 'giving up');
    const tries = st.filter((e) => e.state === 'reconnecting');
    assert.equal(tries.length, 8);
    tries.forEach((e, i) => {
      assert.equal(e.attempt, i + 1);
      assert.ok(e.delay >= 0 && e.delay < Math.min(cap, base * 2 ** i), `attempt ${i + 1}: ${e.delay} ms`);
    });
    assert.equal(st.at(-1).reason, 'gave_up');
    assert.equal(proxy.accepted, 9, 'the first try and 8 retries');

    const d = client(`ws://127.0.0.1:${proxy.port}/ws`, { reconnect: { base: 5, cap: 10 } });
    await waitFor(() => proxy.accepted >= 12, 3000, 'retries');
    await d.close();
    const n = proxy.accepted;
    await sleep(100);
    assert.ok(proxy.accepted <= n + 1, 'no attempt after close()');
    assert.equal(d.state, 'closed');
  } finally {
    await proxy.close();
  }
});

test('connect timeout when the server never answers the upgrade', async () => {
  const silent = await new Promise((resolve) => {
    const s = net.createServer((sock) => sock.on('error', () => {}));
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
  try {
    const c = client(`ws://127.0.0.1:${silent.address().port}/ws`, { connectTimeout: 200, reconnect: { base: 1000, cap: 1000 } });
    const st = states(c);
    const e = await waitFor(() => st.find((x) => x.reason === 'connect_timeout'), 2000, 'connect_timeout');
    assert.equal(e.state, 'reconnecting');
    await c.close();
  } finally {
    silent.close();
  }
});

test('a token goes as a subprotocol (or in the query when it cannot); a token function is called for every connection', async () => {
  const seen = [];
  const wss = await closingServer(1011, (ws, req) => seen.push([req.url, req.headers['sec-websocket-protocol']]));
  try {
    let n = 0;
    const c = client(wss.url, { token: () => `t${++n}.x_y-z`, reconnect: { base: 10, cap: 20 } });
    await waitFor(() => seen.length >= 2, 3000, 'two connections');
    await c.close();
    assert.deepEqual(seen[0], ['/ws', 'duplex.v1,duplex.token.t1.x_y-z']);
    assert.deepEqual(seen[1], ['/ws', 'duplex.v1,duplex.token.t2.x_y-z']);
    const d = client(wss.url, { token: 'not a jwt/=', reconnect: false });
    await waitFor(() => seen.some(([u]) => u.includes('?')), 3000, 'the connection with a query token');
    await d.close();
    assert.deepEqual(seen.find(([u]) => u.includes('?')), ['/ws?token=not+a+jwt%2F%3D', 'duplex.v1']);
  } finally {
    wss.close();
  }
});

// Tokens minted by `duplex token` for a hub with --token-secret.
function mint(sub, ttl = '1h') {
  return execFileSync(DUPLEX, ['token', '--secret', SECRET, '--sub', sub, '--ttl', ttl], { encoding: 'utf8' }).trim();
}
const SECRET = 'duplexjs-test-secret-0123456789';

test('tokens: accepted, refused (4001 is final for a fixed token), retried with a token function, refreshed before exp', async () => {
  const hub = await new Serve(['--token-secret', SECRET, '--token-leeway', '0']).start();
  try {
    const good = client(hub.url, { token: mint('alice') });
    await within(good.whenOpen(), 5000, 'open with a token');
    assert.equal(good.user, 'alice');
    await good.close();

    const bad = client(hub.url, { token: mint('bob').slice(0, -3) + 'AAA', reconnect: { base: 10, cap: 20 } });
    const badStates = states(bad);
    await waitFor(() => bad.state === 'closed', 5000, 'closed after 4001');
    assert.equal(badStates.at(-1).reason, 'fatal');
    assert.equal(badStates.at(-1).code, 4001);
    assert.equal(badStates.filter((e) => e.state === 'reconnecting').length, 0, 'no retry of the same token');

    // A token function: the first token is refused, the next one passes.
    let calls = 0;
    const fn = client(hub.url, { token: () => (++calls === 1 ? 'eyJ.bad.token' : mint('carol')), reconnect: { base: 10, cap: 50 } });
    const fnStates = states(fn);
    await within(fn.whenOpen(), 5000, 'open with the second token');
    assert.ok(fnStates.some((e) => e.state === 'reconnecting' && e.code === 4001));
    assert.equal(fn.user, 'carol');
    await fn.close();

    // Tokens valid for 3 s: refreshed before exp, the connection stays.
    let minted = 0;
    const short = client(hub.url, { token: () => { minted++; return mint('dan', '3s'); } });
    const shortStates = states(short);
    await within(short.whenOpen(), 5000, 'open with a short token');
    await sleep(4500);
    assert.ok(minted >= 2, `refreshed (${minted} tokens)`);
    assert.equal(short.state, 'open');
    assert.deepEqual(shortStates.map((e) => e.state), ['open'], 'never dropped');
    await short.request('ping');
    await short.close();
  } finally {
    await hub.stop();
  }
});

test("Node's built-in WebSocket works without the ws package", { skip: typeof globalThis.WebSocket !== 'function' }, async () => {
  const c = connect(hubUrl); // globalThis.WebSocket
  clients.push(c);
  const topic = uniq('global');
  const got = [];
  await within(c.subscribe(topic, { onMessage: (m) => got.push(m.data) }).ready, 5000, 'subscribe');
  await c.publish(topic, { hello: 'world' });
  await waitFor(() => got.length === 1, 3000, 'message');
  assert.deepEqual(got, [{ hello: 'world' }]);
  await c.close();
});

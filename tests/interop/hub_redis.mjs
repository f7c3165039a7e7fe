// Two `duplex serve` nodes on one real Redis (issue 14): publications cross
// nodes in offset order, a client resumes on the other node, history is the
// same on both, and Redis faults lose nothing that was accepted.
//
//   node hub_redis.mjs PORT_A PORT_B REDIS_PORT API_KEY CTL_DIR PORT_C
//
// Redis is stopped and started, and node C killed, by the test script
// (tests/e2e/test_hub_redis.sh) on request: this helper creates CTL_DIR/kill,
// CTL_DIR/start or CTL_DIR/killnode and waits for CTL_DIR/killed,
// CTL_DIR/started or CTL_DIR/nodekilled. The nodes run with --presence-ttl 3s.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import {
  Hub, T, check, finish, gapOrDisorder, group, http, isError, isHttpError, show, sleep, waitFor,
  watchdog,
} from './hub_common.mjs';
import WebSocket from 'ws';
import { connect } from '../../web/duplex.js';

const [a, b, redisPort] = process.argv.slice(2, 5).map(Number);
const key = process.argv[5];
const ctl = process.argv[6];
const c3 = Number(process.argv[7]);
watchdog(120_000);

const tag = `${process.pid}`;
const rcli = (...args) =>
  execFileSync('redis-cli', ['-p', String(redisPort), ...args], { encoding: 'utf8', timeout: T }).trim();

async function ask(what, done) {
  rmSync(`${ctl}/${done}`, { force: true });
  writeFileSync(`${ctl}/${what}`, '');
  await waitFor(() => existsSync(`${ctl}/${done}`), 20_000, `the test script to ${what} Redis`);
}

const apiPublish = (port, topic, data) =>
  http(port, 'POST', '/api/publish', { key, body: { topic, data } });

// Offsets of the message events of `topic` that a client has received.
const offsets = (c, topic) => c.msgs(topic).map((m) => m.offset);

// Wait until GET path on port answers `status` (bounded).
async function waitStatus(port, path, status, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if ((await http(port, 'GET', path)).status === status) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function metric(port, name) {
  const r = await http(port, 'GET', '/metrics');
  const line = r.text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : NaN;
}

await group('publications cross nodes, in order, once', async () => {
  const topic = `x:${tag}`;
  const sa = await Hub.open(a, { name: 'sa' });
  const sb = await Hub.open(b, { name: 'sb' });
  const pa = await Hub.open(a, { name: 'pa' });
  await sa.must({ op: 'subscribe', topic });
  await sb.must({ op: 'subscribe', topic });
  await pa.must({ op: 'subscribe', topic });
  // 30 from a WebSocket client on A (skip_self), 30 through B's HTTP API.
  const acks = [];
  for (let i = 0; i < 30; i++) {
    acks.push(pa.must({ op: 'publish', topic, data: { i, via: 'ws' }, skip_self: true }));
    acks.push(apiPublish(b, topic, { i, via: 'api' }));
  }
  const done = await Promise.all(acks);
  const apiOk = done.filter((r) => r.status !== undefined).every((r) => r.status === 200);
  check('every publish was acknowledged', apiOk, () => show(done.find((r) => r.status && r.status !== 200)));
  const wsOffsets = done.filter((r) => r.type === 'reply').map((r) => r.offset);
  await waitFor(() => sa.msgs(topic).length >= 60 && sb.msgs(topic).length >= 60, T, '60 messages on both');
  const want = Array.from({ length: 60 }, (_, i) => i + 1);
  check('a subscriber on A got offsets 1..60 in order', JSON.stringify(offsets(sa, topic)) === JSON.stringify(want),
    () => show(offsets(sa, topic)));
  check('a subscriber on B got the same', JSON.stringify(offsets(sb, topic)) === JSON.stringify(want),
    () => show(offsets(sb, topic)));
  check('both got the same messages', JSON.stringify(sa.msgs(topic)) === JSON.stringify(sb.msgs(topic)));
  await pa.sync();
  await sleep(100);
  const self = offsets(pa, topic);
  check('skip_self across nodes: the publisher got only the API ones',
    self.length === 30 && self.every((o) => !wsOffsets.includes(o)), () => show({ self, wsOffsets }));
  await Promise.all([sa.close(), sb.close(), pa.close()]);
});

await group('a client resumes on the other node', async () => {
  const topic = `r:${tag}`;
  const c = await Hub.open(a, { name: 'c-on-a' });
  const first = await c.must({ op: 'subscribe', topic });
  for (let i = 1; i <= 5; i++) await apiPublish(a, topic, { i });
  await waitFor(() => c.msgs(topic).length === 5, T, '5 messages');
  const last = c.msgs(topic).at(-1).offset;
  await c.close();
  for (let i = 6; i <= 9; i++) await apiPublish(b, topic, { i });
  const d = await Hub.open(b, { name: 'c-on-b' });
  const r = await d.must({ op: 'subscribe', topic, since: { offset: last, epoch: first.epoch } });
  check('recovered on B with the epoch from A', r.recovered === true && r.epoch === first.epoch && r.offset === 9, () => show(r));
  await waitFor(() => d.msgs(topic).length === 4, T, 'the 4 missed');
  check('exactly the missed ones, in order', JSON.stringify(d.msgs(topic).map((m) => m.data.i)) === '[6,7,8,9]',
    () => show(d.msgs(topic)));
  await d.close();
});

await group('history is the same on every node (live there or not)', async () => {
  const topic = `h:${tag}`;
  for (let i = 1; i <= 7; i++) await apiPublish(a, topic, { i });
  const sub = await Hub.open(a, { name: 'live' });
  await sub.must({ op: 'subscribe', topic });
  const q = await Hub.open(b, { name: 'q' });
  const ha = await sub.must({ op: 'history', topic, limit: 5 });
  const hb = await q.must({ op: 'history', topic, limit: 5 });
  check('history on A (live) = history on B (from Redis)', JSON.stringify(ha) === JSON.stringify({ ...hb, id: ha.id }),
    () => show({ ha, hb }));
  check('the newest 5, complete (1 and 2 are there to page to)',
    ha.publications.map((m) => m.data.i).join() === '3,4,5,6,7' && ha.complete === true,
    () => show(ha));
  const since = await q.must({ op: 'history', topic, since: { offset: 5, epoch: ha.epoch }, limit: 10 });
  check('history since on B', since.publications.map((m) => m.offset).join() === '6,7' && since.complete === true, () => show(since));
  const bad = await q.req({ op: 'history', topic, since: { offset: 5, epoch: 'nope' } });
  check('history since another epoch: epoch_changed', isError(bad, 'epoch_changed'), () => show(bad));
  const api = await http(b, 'GET', `/api/history?topic=${topic}&limit=2`, { key });
  check('the HTTP API history from Redis', api.status === 200 && api.json.publications.length === 2 && api.json.offset === 7,
    () => show(api.json));
  await Promise.all([sub.close(), q.close()]);
});

await group('a broken subscriber connection: the gap is filled from the stream', async () => {
  const topic = `f:${tag}`;
  const sa = await Hub.open(a, { name: 'fa' });
  const sb = await Hub.open(b, { name: 'fb' });
  await sa.must({ op: 'subscribe', topic });
  await sb.must({ op: 'subscribe', topic });
  const before = (await metric(a, 'duplex_broker_resyncs_total')) + (await metric(b, 'duplex_broker_resyncs_total'));
  let n = 0;
  const acked = [];
  const publisher = (async () => {
    while (n < 120) {
      n++;
      const r = await apiPublish(n % 2 ? a : b, topic, { n });
      if (r.status === 200) acked.push(r.json.offset);
      await sleep(5);
    }
  })();
  await sleep(150);
  rcli('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await publisher;
  const maxOffset = Math.max(...acked);
  await waitFor(() => {
    const la = offsets(sa, topic).at(-1), lb = offsets(sb, topic).at(-1);
    return la === maxOffset && lb === maxOffset;
  }, T, `both to reach offset ${maxOffset}`).catch(() => {});
  for (const [name, c] of [['A', sa], ['B', sb]]) {
    const o = offsets(c, topic);
    check(`${name}: every acknowledged publication arrived, in order, once`,
      acked.length === 120 && gapOrDisorder(c.msgs(topic), 1) === null && o.length === maxOffset,
      () => show({ acked: acked.length, got: o.length, problem: gapOrDisorder(c.msgs(topic), 1) }));
    check(`${name}: no gap event (Redis still had them)`, !c.log.some((m) => m.type === 'gap'),
      () => show(c.log.filter((m) => m.type === 'gap')));
  }
  const after = (await metric(a, 'duplex_broker_resyncs_total')) + (await metric(b, 'duplex_broker_resyncs_total'));
  check('the nodes loaded the topic again (duplex_broker_resyncs_total)', after > before, () => show({ before, after }));
  await Promise.all([sa.close(), sb.close()]);
});

await group('presence spans nodes; a killed node\'s clients leave in bounded time', async () => {
  const topic = `p:${tag}`;
  const pa = await Hub.open(a, { name: 'pa' });
  await pa.must({ op: 'subscribe', topic, presence: true, info: { name: 'ann' } });
  const pb = await Hub.open(b, { name: 'pb' });
  await pb.must({ op: 'subscribe', topic, presence: true, info: { name: 'bob' } });
  const join = await pa.next((m) => m.type === 'join' && m.topic === topic, T, 'the join of pb (node B) on node A');
  check('a join on B reaches A, with its info', join.client === pb.id && join.info && join.info.name === 'bob', () => show(join));
  await pb.sync();
  check('no join of its own', !pb.log.some((m) => m.type === 'join' && m.client === pb.id));
  const pc = await Hub.open(c3, { name: 'pc' });
  await pc.must({ op: 'subscribe', topic, presence: true, info: { name: 'cat' } });
  await pa.next((m) => m.type === 'join' && m.client === pc.id, T, 'the join of pc (node C)');
  for (const [name, c] of [['A', pa], ['B', pb]]) {
    const r = await c.must({ op: 'presence', topic });
    const names = r.presence.map((p) => p.info && p.info.name).sort().join();
    check(`presence on ${name} lists the clients of all three nodes`, names === 'ann,bob,cat' && r.complete === true, () => show(r));
  }
  const api = await http(c3, 'GET', `/api/presence?topic=${topic}`, { key });
  check('the HTTP API presence is cluster-wide', api.status === 200 && api.json.presence.length === 3, () => show(api.json));
  await pb.close();
  const left = await pa.next((m) => m.type === 'leave' && m.topic === topic, T, 'the leave of pb');
  check('a leave on B reaches A', left.client === pb.id, () => show(left));
  // Node C dies without telling anyone: its client leaves within the ttl.
  const t0 = Date.now();
  await ask('killnode', 'nodekilled');
  const gone = await pa.next((m) => m.type === 'leave' && m.client === pc.id, 15_000, 'the leave of pc after node C died');
  const took = Date.now() - t0;
  check(`the dead node's client left within the presence ttl (${took} ms)`, gone && took < 3000 + 1500 + 1000, () => show(took));
  const r = await pa.must({ op: 'presence', topic });
  check('presence lists only the living', r.presence.length === 1 && r.presence[0].client === pa.id, () => show(r));
  await pa.sync();
  await sleep(1500);
  check('each leave was told once', pa.log.filter((m) => m.type === 'leave').length === 2,
    () => show(pa.log.filter((m) => m.type === 'leave')));
  await pa.close();
});

await group('Redis down: errors instead of silent loss; back: a gap notice, then on', async () => {
  const topic = `d:${tag}`;
  const sa = await Hub.open(a, { name: 'da' });
  const sb = await Hub.open(b, { name: 'db' });
  const pa = await Hub.open(a, { name: 'dp' });
  const first = await sa.must({ op: 'subscribe', topic });
  await sb.must({ op: 'subscribe', topic });
  // duplex.js, as a browser would run it, on node B
  const resets = [], seen = [];
  const js = connect(`ws://127.0.0.1:${b}/ws`, { WebSocket });
  const jsub = js.subscribe(topic, { onMessage: (m) => seen.push(m.data.i), onReset: (e) => resets.push(e) });
  await jsub.ready;
  for (let i = 1; i <= 3; i++) await pa.must({ op: 'publish', topic, data: { i } });
  await waitFor(() => sa.msgs(topic).length === 3 && sb.msgs(topic).length === 3, T, '3 before the outage');
  await ask('kill', 'killed');
  const refused = await pa.req({ op: 'publish', topic, data: { lost: true } });
  check('a publish while Redis is down: error unavailable', isError(refused, 'unavailable'), () => show(refused));
  const api = await apiPublish(b, topic, { lost: true });
  check('an API publish while Redis is down: 503 unavailable', isHttpError(api, 503, 'unavailable'), () => show(api));
  await waitStatus(a, '/readyz', 503, T, '/readyz 503 on A');
  check('/metrics: duplex_broker_up 0', (await metric(a, 'duplex_broker_up')) === 0);
  const s2 = await Hub.open(b, { name: 'late' });
  const late = await s2.req({ op: 'subscribe', topic: `other:${tag}` }, 15_000);
  check('a subscribe while Redis is down: error unavailable (bounded wait)', isError(late, 'unavailable'), () => show(late));
  check('local connections stay open', !sa.closeInfo && !sb.closeInfo && !pa.closeInfo);
  await ask('start', 'started');
  await waitStatus(a, '/readyz', 200, 15_000, '/readyz 200 on A');
  await waitStatus(b, '/readyz', 200, 15_000, '/readyz 200 on B');
  const up = await metric(b, 'duplex_broker_up');
  check('/metrics: duplex_broker_up 1', up === 1, () => show(up));
  const r = await pa.must({ op: 'publish', topic, data: { i: 4 } });
  check('Redis restarted empty: a new epoch', r.epoch !== first.epoch && r.offset === 1, () => show(r));
  for (const [name, c] of [['A', sa], ['B', sb]]) {
    await waitFor(() => c.msgs(topic).some((m) => m.data.i === 4), T, `${name}: the publication after the restart`);
    const gaps = c.log.filter((m) => m.type === 'gap' && m.topic === topic);
    check(`${name}: one gap notice (epoch_changed) before it`, gaps.length === 1 && gaps[0].reason === 'epoch_changed' &&
      gaps[0].epoch === r.epoch && gaps[0].offset === 0, () => show(gaps));
    check(`${name}: everything acknowledged arrived, once`, c.msgs(topic).map((m) => m.data.i).join() === '1,2,3,4',
      () => show(c.msgs(topic)));
  }
  await waitFor(() => seen.includes(4), T, 'duplex.js: the publication after the restart');
  check('duplex.js: the gap is an onReset with gap: true, then the messages go on',
    resets.length === 1 && resets[0].gap === true && resets[0].reason === 'epoch_changed' &&
      resets[0].epoch === r.epoch && seen.join() === '1,2,3,4',
    () => show({ resets, seen }));
  js.close();
  await Promise.all([sa.close(), sb.close(), pa.close(), s2.close()]);
});

finish();

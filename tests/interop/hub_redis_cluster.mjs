// duplex serve nodes on a 3-master Redis Cluster (issue 14): a topic's
// stream, meta, presence and shard channel share one slot ({topic} hash
// tag), publications cross nodes in order on every shard, a client resumes
// on the other node, history and presence read the right shard, and a slot
// that moves to another master mid-stream loses nothing.
//
//   node hub_redis_cluster.mjs PORT_A PORT_B API_KEY REDIS_PORT...
import { execFileSync } from 'node:child_process';
import {
  Hub, T, check, finish, gapOrDisorder, group, http, show, sleep, waitFor, watchdog,
} from './hub_common.mjs';

const [a, b] = process.argv.slice(2, 4).map(Number);
const key = process.argv[4];
const masters = process.argv.slice(5).map(Number);
watchdog(120_000);
const tag = `${process.pid}`;
const rcli = (port, ...args) =>
  execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: T }).trim();
const apiPublish = (port, topic, data) => http(port, 'POST', '/api/publish', { key, body: { topic, data } });
const slotOf = (topic) => Number(rcli(masters[0], 'CLUSTER', 'KEYSLOT', `duplex:{${topic}}`));
// The master port that serves a slot, from CLUSTER SLOTS.
function ownerOf(slot) {
  const lines = rcli(masters[0], 'CLUSTER', 'SHARDS');
  for (const p of masters) {
    const id = rcli(p, 'CLUSTER', 'MYID');
    const slots = rcli(p, 'CLUSTER', 'NODES').split('\n').find((l) => l.startsWith(id));
    for (const r of slots.split(' ').slice(8)) {
      const [lo, hi] = r.split('-').map(Number);
      if (slot >= lo && slot <= (hi ?? lo)) return p;
    }
  }
  return lines ? undefined : undefined;
}

// Topics on every master.
const topics = [];
for (let i = 0; topics.length < 6 && i < 200; i++) {
  const t = `c${i}:${tag}`;
  const owner = ownerOf(slotOf(t));
  if (topics.filter((x) => x.owner === owner).length < 2) topics.push({ t, owner });
}

await group('publications cross nodes in order, on every shard', async () => {
  check('the topics spread over the three masters', new Set(topics.map((x) => x.owner)).size === 3,
    () => show(topics));
  const sa = await Hub.open(a, { name: 'sa' });
  const sb = await Hub.open(b, { name: 'sb' });
  for (const { t } of topics) {
    await sa.must({ op: 'subscribe', topic: t });
    await sb.must({ op: 'subscribe', topic: t });
  }
  const acks = [];
  for (let i = 0; i < 10; i++) for (const { t } of topics) acks.push(apiPublish(i % 2 ? a : b, t, { i }));
  const res = await Promise.all(acks);
  check('every publish acknowledged', res.every((r) => r.status === 200), () => show(res.find((r) => r.status !== 200)));
  for (const { t } of topics) {
    await waitFor(() => sa.msgs(t).length === 10 && sb.msgs(t).length === 10, T, `10 on ${t}`);
    check(`${t}: offsets 1..10 in order on both nodes`,
      gapOrDisorder(sa.msgs(t), 1) === null && gapOrDisorder(sb.msgs(t), 1) === null &&
        JSON.stringify(sa.msgs(t)) === JSON.stringify(sb.msgs(t)),
      () => show({ a: sa.msgs(t).map((m) => m.offset), b: sb.msgs(t).map((m) => m.offset) }));
    const owner = topics.find((x) => x.t === t).owner;
    check(`${t}: its stream lives on its slot's master`, rcli(owner, 'XLEN', `duplex:{${t}}:s`) === '10');
  }
  await Promise.all([sa.close(), sb.close()]);
});

await group('resume on the other node, history and presence from the right shard', async () => {
  const { t } = topics[1];
  const c = await Hub.open(a, { name: 'c' });
  const r0 = await c.must({ op: 'subscribe', topic: t, presence: true, info: { n: 'c' } });
  const last = r0.offset;
  await c.close();
  for (let i = 0; i < 3; i++) await apiPublish(a, t, { more: i });
  const d = await Hub.open(b, { name: 'd' });
  const r = await d.must({ op: 'subscribe', topic: t, since: { offset: last, epoch: r0.epoch }, presence: true, info: { n: 'd' } });
  check('recovered on B', r.recovered === true && r.offset === last + 3, () => show(r));
  await waitFor(() => d.msgs(t).length === 3, T, 'the 3 missed');
  const q = await Hub.open(a, { name: 'q' });
  const h = await q.must({ op: 'history', topic: t, limit: 3 });
  check('history on A (not live there)', h.publications.map((m) => m.data.more).join() === '0,1,2', () => show(h));
  const p = await q.must({ op: 'presence', topic: t });
  check('presence on A lists the client on B', p.presence.length === 1 && p.presence[0].client === d.id, () => show(p));
  await Promise.all([d.close(), q.close()]);
});

await group('a slot that moves to another master mid-stream', async () => {
  const { t, owner } = topics[0];
  const slot = slotOf(t);
  const target = masters.find((p) => p !== owner);
  const sa = await Hub.open(a, { name: 'ma' });
  const sb = await Hub.open(b, { name: 'mb' });
  const r0 = await sa.must({ op: 'subscribe', topic: t });
  await sb.must({ op: 'subscribe', topic: t });
  const base = r0.offset;
  let n = 0, failed = 0;
  const acked = [];
  const publisher = (async () => {
    while (n < 80) {
      n++;
      const r = await apiPublish(n % 2 ? a : b, t, { n });
      if (r.status === 200) acked.push(r.json.offset);
      else failed++;
      await sleep(10);
    }
  })();
  await sleep(200);
  const src = rcli(owner, 'CLUSTER', 'MYID'), dst = rcli(target, 'CLUSTER', 'MYID');
  rcli(target, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', src);
  rcli(owner, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', dst);
  const keys = rcli(owner, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100').split('\n').filter(Boolean);
  if (keys.length) rcli(owner, 'MIGRATE', '127.0.0.1', String(target), '', '0', '5000', 'KEYS', ...keys);
  for (const p of masters) rcli(p, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', dst);
  await publisher;
  check('the slot moved', ownerOf(slot) === target);
  check('publishes went on (a few may be refused while it moved)', acked.length >= 70, () => show({ acked: acked.length, failed }));
  const max = Math.max(...acked);
  await waitFor(() => sa.msgs(t).at(-1)?.offset === max && sb.msgs(t).at(-1)?.offset === max, 15_000,
    `both to reach ${max}`).catch(() => {});
  for (const [name, c] of [['A', sa], ['B', sb]]) {
    const got = c.msgs(t).map((m) => m.offset);
    check(`${name}: every acknowledged publication arrived, in order, once`,
      gapOrDisorder(c.msgs(t), base + 1) === null && acked.every((o) => got.includes(o)) && !c.log.some((m) => m.type === 'gap'),
      () => show({ last: got.at(-1), acked: acked.length, gaps: c.log.filter((m) => m.type === 'gap'),
        shard_subscribers: masters.map((p) => `${p}${p === target ? ' (new owner)' : ''}: ${rcli(p, 'PUBSUB', 'SHARDNUMSUB', `duplex:{${t}}`).replace(/\n/g, ' ')}`) }, 1000));
  }
  await Promise.all([sa.close(), sb.close()]);
});

finish();

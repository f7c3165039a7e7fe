// Faults around `duplex serve` nodes on one real Redis (issue 14), with
// tests/e2e/test_hub_redis_faults.sh doing the faults on request
// (CTL/<what> -> CTL/done.<what>: stop and cont = SIGSTOP / SIGCONT Redis,
// save = SAVE, restart = kill -9 Redis and start it on its dump, killnode =
// kill -9 node A):
//   - SSE and long-poll subscribers on Redis nodes, resuming on the other node
//   - Redis paused past the reply timeout: the nodes drop and reconnect; no
//     acknowledged publication lost, none twice; the publish whose answer never
//     came is refused as "may have been done"
//   - Redis restarted from a dump older than the last acknowledged
//     publications: a new epoch (epoch_changed gap), not offsets reused
//   - a node killed mid-stream: its clients resume on the other node
//
//   node hub_redis_faults.mjs PORT_A PORT_B API_KEY CTL_DIR
//   node hub_redis_faults.mjs cross PORT_A PORT_B API_KEY   (cross-node delivery only)
import nodeHttp from 'node:http';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import {
  Hub, T, check, finish, group, http, show, sleep, waitFor, watchdog, withTimeout,
} from './hub_common.mjs';
import { Publisher, audit } from './hub_stream_audit.mjs';

const cross = process.argv[2] === 'cross';
const args = process.argv.slice(cross ? 3 : 2);
const [a, b] = args.slice(0, 2).map(Number);
const key = args[2];
const ctl = args[3];
watchdog(cross ? 30_000 : 100_000);
const tag = `${process.pid}`;

async function ask(what) {
  rmSync(`${ctl}/done.${what}`, { force: true });
  writeFileSync(`${ctl}/${what}`, '');
  await waitFor(() => existsSync(`${ctl}/done.${what}`), 20_000, `the test script to ${what}`);
}

const publish = (port, topic, data) => http(port, 'POST', '/api/publish', { key, body: { topic, data } });

async function crossNodes() {
  await group('publications cross nodes', async () => {
    const topic = `c:${tag}`;
    const sa = await Hub.open(a, { name: 'sa' });
    const sb = await Hub.open(b, { name: 'sb' });
    const ra = await sa.must({ op: 'subscribe', topic });
    await sb.must({ op: 'subscribe', topic });
    const acks = [];
    for (let n = 1; n <= 20; n++) {
      const r = await publish(n % 2 ? a : b, topic, { p: 'c', n });
      acks.push({ p: 'c', n, status: r.status, ...r.json });
    }
    check('20 publishes acknowledged', acks.every((r) => r.status === 200), () => show(acks.find((r) => r.status !== 200)));
    await waitFor(() => sa.msgs(topic).length >= 20 && sb.msgs(topic).length >= 20, T, '20 on both').catch(() => {});
    for (const [name, c] of [['A', sa], ['B', sb]]) {
      const r = audit(c.log, topic, ra, acks);
      check(`${name}: all 20, in order, once`, r.delivered === 20 && !r.problems.length && !r.missing.length,
        () => show(r));
    }
    await Promise.all([sa.close(), sb.close()]);
  });
}

// An SSE stream, parsed into `events` (name, id, json).
function sse(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = nodeHttp.get({ host: '127.0.0.1', port, path, headers }, (res) => {
      const s = { res, req, events: [], buf: '' };
      res.setEncoding('utf8');
      res.on('data', (d) => {
        s.buf += d;
        let k;
        while ((k = s.buf.indexOf('\n\n')) >= 0) {
          const ev = { event: 'message', id: null, data: '' };
          for (const line of s.buf.slice(0, k).split('\n')) {
            const c = line.indexOf(':');
            if (c <= 0) continue;
            const f = line.slice(0, c), v = line.slice(c + 2);
            if (f === 'data') ev.data += v; else ev[f] = v;
          }
          s.buf = s.buf.slice(k + 2);
          if (ev.data) s.events.push({ ...ev, json: JSON.parse(ev.data) });
        }
      });
      res.on('error', () => {});
      resolve(s);
    });
    req.on('error', reject);
  });
}

const sseMsgs = (s, topic) => s.events.filter((e) => e.event === 'message' && e.json.topic === topic);

async function sseAndPoll() {
  await group('SSE and long-poll on Redis nodes', async () => {
    const topic = `e:${tag}`;
    const s = await withTimeout(sse(b, `/sse?topics=${topic}`), T, 'an SSE stream on B');
    await waitFor(() => s.events.some((e) => e.event === 'reply' && e.json.ok), T, 'the SSE subscribe reply');
    const acks = [];
    for (let n = 1; n <= 3; n++) acks.push((await publish(a, topic, { n })).json);
    await waitFor(() => sseMsgs(s, topic).length === 3, T, '3 SSE events on B');
    const got = sseMsgs(s, topic);
    check('an SSE subscriber on B gets what is published on A, in order',
      got.map((e) => e.json.data.n).join() === '1,2,3', () => show(got));
    const lastId = got.at(-1).id;
    check('event ids are Redis positions', lastId === `${acks[2].offset}.${acks[2].epoch}`, () => show({ lastId, ack: acks[2] }));
    s.req.destroy();
    for (let n = 4; n <= 6; n++) await publish(b, topic, { n });
    const s2 = await withTimeout(sse(a, `/sse?topics=${topic}`, { 'Last-Event-ID': lastId }), T, 'an SSE stream on A');
    await waitFor(() => sseMsgs(s2, topic).length >= 3, T, 'the 3 missed, on A');
    await sleep(100);
    const reply = s2.events.find((e) => e.event === 'reply');
    check('resumed on A with the Last-Event-ID from B', reply && reply.json.recovered === true, () => show(reply));
    check('exactly the missed ones, in order', sseMsgs(s2, topic).map((e) => e.json.data.n).join() === '4,5,6',
      () => show(sseMsgs(s2, topic)));
    const sinceB = sseMsgs(s2, topic).at(-1).id;
    s2.req.destroy();
    // Long-poll: answered on A from what B's stream gave, then waiting on B.
    await publish(a, topic, { n: 7 });
    const p1 = await http(b, 'GET', `/poll?topics=${topic}&since=${sinceB}&timeout=5`);
    const m1 = (p1.json?.events || []).filter((e) => e.type === 'message');
    check('a long-poll on B from an SSE id of A: the one missed', p1.status === 200 &&
      m1.map((e) => e.data.n).join() === '7', () => show(p1.json));
    const waiting = http(a, 'GET', `/poll?topics=${topic}&since=${p1.json.since}&timeout=10`);
    await sleep(300);
    await publish(b, topic, { n: 8 });
    const p2 = await waiting;
    const m2 = (p2.json?.events || []).filter((e) => e.type === 'message');
    check('a waiting long-poll on A is answered by a publication on B',
      p2.status === 200 && m2.map((e) => e.data.n).join() === '8', () => show(p2.json));
  });
}

async function pausedRedis() {
  await group('Redis paused past the reply timeout', async () => {
    const topic = `p:${tag}`;
    const subs = [];
    for (const [name, port] of [['A', a], ['B', b]]) {
      const c = await Hub.open(port, { name: `p${name}` });
      subs.push({ name, c, start: await c.must({ op: 'subscribe', topic }) });
    }
    // One publisher per node: each node has a publish out when Redis stops.
    const pubs = [new Publisher([a], key, topic, 10, 'A'), new Publisher([b], key, topic, 10, 'B')];
    await sleep(300);
    await ask('stop');
    /* The reply timeout is 5 s; an idle connection PINGs after 5 s: past
     * 10 s every connection, the subscriber ones too, has given up. */
    await sleep(11_000);
    const during = pubs.map((p) => p.n);
    await ask('cont');
    await waitFor(() => pubs.every((p, i) => p.ackedAfter(during[i]).length >= 10), 20_000,
      'publishes acknowledged after SIGCONT');
    await Promise.all(pubs.map((p) => p.stop()));
    const acks = pubs.flatMap((p) => p.acked());
    const refused = pubs.flatMap((p) => p.refused());
    console.log(`# ${acks.length} acknowledged, ${refused.length} refused: ${show(refused.map((r) => `${r.p}/${r.n} ${r.ms}ms ${r.message}`), 800)}`);
    check('refused publishes are 503 unavailable', refused.length > 0 &&
      refused.every((r) => r.status === 503 && r.code === 'unavailable'), () => show(refused));
    for (const port of [a, b])
      check(`${port === a ? 'A' : 'B'}: the publish whose answer never came: "it may have been done", after the reply timeout`,
        refused.some((r) => r.port === port && /may have been done/.test(r.message) && r.ms >= 4000 && r.ms < 9000),
        () => show(refused));
    await waitFor(() => subs.every((s) => audit(s.c.log, topic, s.start, acks).missing.length === 0), T,
      'every acknowledged publication').catch(() => {});
    for (const s of subs) {
      const r = audit(s.c.log, topic, s.start, acks);
      check(`${s.name}: every acknowledged publication once, in order, no gap notice`,
        !r.problems.length && !r.missing.length && !r.gaps.length, () => show(r));
      check(`${s.name}: the client connection stayed open`, !s.c.closeInfo);
    }
    // The publishes that "may have been done" were done, or not, for both.
    const seq = (s) => s.c.msgs(topic).map((m) => `${m.data.p}/${m.data.n}@${m.offset}`).join();
    check('both subscribers saw the same publications at the same offsets', seq(subs[0]) === seq(subs[1]),
      () => show({ A: seq(subs[0]), B: seq(subs[1]) }, 2000));
    const ready = await Promise.all([a, b].map((p) => http(p, 'GET', '/readyz')));
    check('both nodes ready again', ready.every((r) => r.status === 200), () => show(ready));
    await Promise.all(subs.map((s) => s.c.close()));
  });
}

async function olderDump() {
  await group('Redis restarted from an older dump: a new epoch, nothing silently lost', async () => {
    const topic = `o:${tag}`;
    const subs = [];
    for (const [name, port] of [['A', a], ['B', b]]) {
      const c = await Hub.open(port, { name: `o${name}` });
      subs.push({ name, c, start: await c.must({ op: 'subscribe', topic }) });
    }
    const acks = [];
    const pub = async (n) => {
      const r = await publish(n % 2 ? a : b, topic, { p: 'o', n });
      if (r.status === 200) acks.push({ p: 'o', n, ...r.json });
      return r;
    };
    const arrived = (n) => waitFor(() => subs.every((s) => s.c.msgs(topic).some((m) => m.data.n === n)), T,
      `n=${n} on both nodes`);
    for (let n = 1; n <= 5; n++) await pub(n);
    await arrived(5);
    await ask('save');
    for (let n = 6; n <= 8; n++) await pub(n);
    await arrived(8);
    await ask('restart'); /* Redis comes back with offsets 1..5 only */
    let r9;
    const end = Date.now() + 15_000;
    while ((r9 = await pub(9)).status !== 200 && Date.now() < end) await sleep(100);
    check('after the restart: a new epoch that continues from the dump\'s offset',
      r9.status === 200 && r9.json.epoch !== subs[0].start.epoch && r9.json.offset === 6, () => show(r9));
    await arrived(9).catch(() => {});
    for (const s of subs) {
      const res = audit(s.c.log, topic, s.start, acks);
      check(`${s.name}: 1..9 once, in order, and an epoch_changed gap before 9`,
        !res.problems.length && !res.missing.length && res.delivered === 9 && res.gaps.length === 1 &&
        res.gaps[0].reason === 'epoch_changed' && res.gaps[0].to.epoch === r9.json.epoch && res.gaps[0].to.offset === 5,
        () => show(res));
    }
    const d = await Hub.open(b, { name: 'o-resume' });
    const rr = await d.req({ op: 'subscribe', topic, since: { offset: 8, epoch: subs[0].start.epoch } });
    check('resuming after offset 8 of the old epoch: recovered false, epoch_changed',
      rr.ok === true && rr.recovered === false && rr.reason === 'epoch_changed', () => show(rr));
    await Promise.all([...subs.map((s) => s.c.close()), d.close()]);
  });
}

async function killedNode() {
  await group('a node killed mid-stream: its clients resume on the other node', async () => {
    const topic = `k:${tag}`;
    /* After the restart above, every loop of both nodes reconnects. */
    for (const end = Date.now() + T; ;) {
      const ready = await Promise.all([a, b].map((p) => http(p, 'GET', '/readyz')));
      if (ready.every((r) => r.status === 200)) break;
      if (Date.now() > end) throw new Error(`nodes not ready after ${T} ms: ${show(ready)}`);
      await sleep(50);
    }
    const onA = await Hub.open(a, { name: 'onA' });
    const start = await onA.must({ op: 'subscribe', topic });
    const pub = new Publisher([b], key, topic, 5);
    await waitFor(() => onA.msgs(topic).length >= 20, T, '20 publications on A');
    await ask('killnode');
    await onA.closed;
    const last = onA.msgs(topic).at(-1);
    const moreFrom = pub.n;
    await waitFor(() => pub.ackedAfter(moreFrom).length >= 10, T, 'publishes after the kill');
    const onB = await Hub.open(b, { name: 'onB' });
    const r = await onB.must({ op: 'subscribe', topic, since: { offset: last.offset, epoch: start.epoch } });
    check('recovered on B', r.recovered === true && r.epoch === start.epoch, () => show(r));
    await sleep(200);
    await pub.stop();
    const acks = pub.acked();
    check('every publish on B was acknowledged', pub.refused().length === 0, () => show(pub.refused()));
    const log = [...onA.log, ...onB.log];
    await waitFor(() => audit([...onA.log, ...onB.log], topic, start, acks).missing.length === 0, T, 'all of them')
      .catch(() => {});
    const res = audit([...onA.log, ...onB.log], topic, start, acks);
    check('before and after the kill: every acknowledged publication once, in order',
      !res.problems.length && !res.missing.length && !res.gaps.length && log.length > 0,
      () => show(res));
    await onB.close();
  });
}

if (cross) {
  await crossNodes();
} else {
  await sseAndPoll();
  await pausedRedis();
  await olderDump();
  await killedNode();
}
finish();

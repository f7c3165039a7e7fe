// Two `duplex serve` nodes on Redis Sentinel through a failover and the
// master's death (tests/e2e/test_hub_redis_sentinel.sh does the faults on
// request: CTL/failover, CTL/kill -> CTL/done.<what>).
//
//   node hub_redis_sentinel.mjs PORT_A PORT_B API_KEY CTL_DIR
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { Hub, T, check, finish, group, http, show, sleep, waitFor, watchdog } from './hub_common.mjs';
import { Publisher, WsPublisher, audit } from './hub_stream_audit.mjs';

const [a, b] = process.argv.slice(2, 4).map(Number);
const key = process.argv[4];
const ctl = process.argv[5];
watchdog(100_000);
const tag = `${process.pid}`;

async function ask(what) {
  rmSync(`${ctl}/done.${what}`, { force: true });
  writeFileSync(`${ctl}/${what}`, '');
  await waitFor(() => existsSync(`${ctl}/done.${what}`), 30_000, `the test script to ${what}`);
}

async function ready(port) {
  return (await http(port, 'GET', '/readyz')).status === 200;
}

await group('publishing through a failover and a dead master', async () => {
  const topic = `sf:${tag}`;
  const subs = [];
  for (const [name, port] of [['A', a], ['B', b]]) {
    const c = await Hub.open(port, { name });
    const r = await c.must({ op: 'subscribe', topic });
    subs.push({ name, c, start: { epoch: r.epoch, offset: r.offset } });
  }
  const pub = new Publisher([a, b], key, topic, 10);
  const wsc = await Hub.open(b, { name: 'ws-publisher' });
  const wpub = new WsPublisher(wsc, topic, 20);
  // Deliveries go on after each fault: a publication acknowledged after it
  // reaches both subscribers.
  const resumed = async (what) => {
    const from = pub.n;
    await waitFor(() => pub.ackedAfter(from).length >= 5, 30_000, `publishes acknowledged again after ${what}`);
    const want = pub.ackedAfter(from)[4].n;
    await waitFor(() => subs.every((s) => s.c.msgs(topic).some((m) => m.data.n >= want)), T,
      `both subscribers to get n=${want} after ${what}`);
    return want;
  };
  await waitFor(() => pub.acked().length >= 20, T, '20 publishes acknowledged before the failover');
  const before = pub.acked().length;
  await ask('failover');
  const n1 = await resumed('SENTINEL FAILOVER');
  await ask('kill');
  const n2 = await resumed('the master killed');
  await sleep(300);
  await Promise.all([pub.stop(), wpub.stop()]);
  check('the nodes are ready again', (await ready(a)) && (await ready(b)));
  const acks = pub.acked();
  const refused = pub.refused();
  check('publishes went on before, between and after the faults',
    before >= 20 && acks.some((r) => r.n > n1 && r.n <= n2) && acks.at(-1).n > n2,
    () => show({ before, n1, n2, last: acks.at(-1) }));
  check('every refused publish is a 503 unavailable with a message',
    refused.every((r) => r.status === 503 && r.code === 'unavailable' && r.message),
    () => show(refused.filter((r) => !(r.status === 503 && r.code === 'unavailable'))));
  console.log(`# ${acks.length} acknowledged, ${refused.length} refused (${[...new Set(refused.map((r) => r.message))].join(' | ')})`);
  const wacks = wpub.acked();
  const wrefused = wpub.refused();
  console.log(`# over WebSocket: ${wacks.length} acknowledged, ${wrefused.length} refused`);
  check('WebSocket publishes went on after the faults', wacks.length > 0 && wacks.at(-1).n > wpub.n - 5,
    () => show({ n: wpub.n, last: wacks.at(-1) }));
  check('every refused WebSocket publish is an error reply unavailable with a message',
    wrefused.every((r) => r.code === 'unavailable' && r.message), () => show(wrefused.filter((r) => r.code !== 'unavailable')));
  acks.push(...wacks);
  // Everything acknowledged arrives (or is covered by a gap notice).
  const final = (s) => audit(s.c.log, topic, s.start, acks);
  await waitFor(() => subs.every((s) => final(s).missing.length === 0), T, 'every acknowledged publication').catch(() => {});
  for (const s of subs) {
    const r = final(s);
    console.log(`# ${s.name}: ${r.delivered} delivered, ${r.covered.length} covered by gap notices ${show(r.gaps)}`);
    check(`${s.name}: no duplicate, no reordering, positions as acknowledged`, r.problems.length === 0,
      () => show(r.problems.slice(0, 5)));
    check(`${s.name}: no silent loss (each acknowledged publication delivered or under a gap notice)`,
      r.missing.length === 0, () => show(r.missing.slice(0, 5)));
    check(`${s.name}: the connection stayed open`, !s.c.closeInfo);
  }
  // A client that resumes on either node with the position it had.
  const last = subs[0];
  const lastMsg = last.c.msgs(topic).at(-1);
  const epoch = (final(last).gaps.at(-1) || { to: last.start }).to.epoch;
  const d = await Hub.open(b, { name: 'resume' });
  const rr = await d.must({ op: 'subscribe', topic, since: { offset: lastMsg.offset, epoch } });
  check('a client resumes on B from where A left it', rr.recovered === true, () => show(rr));
  await Promise.all([...subs.map((s) => s.c.close()), d.close(), wsc.close()]);
});

finish();

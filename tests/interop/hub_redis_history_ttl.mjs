// --history-ttl on the Redis broker: a history query answers the same on a
// node that mirrors the topic (a live subscriber there) and on one that asks
// Redis (tests/e2e/test_hub_redis_history_ttl.sh: two nodes, --history-ttl 2s).
//
//   node hub_redis_history_ttl.mjs PORT_A PORT_B API_KEY
import { Hub, check, finish, group, http, show, sleep, watchdog } from './hub_common.mjs';

const [a, b] = process.argv.slice(2, 4).map(Number);
const key = process.argv[4];
watchdog(60_000);
const topic = `ttl:${process.pid}`;

await group('history older than --history-ttl is gone on every node', async () => {
  const s = await Hub.open(a, { name: 's' }); // A mirrors the topic
  await s.must({ op: 'subscribe', topic });
  const pub = (data) => http(b, 'POST', '/api/publish', { key, body: { topic, data } });
  check('m1 published', (await pub('m1')).status === 200);
  await sleep(1500);
  check('m2 published', (await pub('m2')).status === 200);
  await sleep(1000); // m1 is 2.5 s old, m2 1 s
  const ha = await http(a, 'GET', `/api/history?topic=${topic}`, { key });
  const hb = await http(b, 'GET', `/api/history?topic=${topic}`, { key });
  const data = (h) => (h.json && h.json.publications ? h.json.publications.map((p) => p.data) : null);
  check('node A (mirror) answers [m2]', show(data(ha)) === show(['m2']), () => show(ha.json));
  check('node B (from Redis) answers the same', show(data(hb)) === show(data(ha)), () => show(hb.json));
  await s.close();
});

finish();

// An unsubscribe sent before the subscribe's answer (duplex.js does this when
// a page drops a subscription at once) on the Redis broker, where the
// subscribe waits for Redis: it must end as with the memory broker, not
// subscribed (tests/e2e/test_hub_redis_unsub_pending.sh).
//
//   node hub_redis_unsub_pending.mjs PORT
import { Hub, check, finish, group, show, sleep, watchdog } from './hub_common.mjs';

const port = Number(process.argv[2]);
watchdog(60_000);
const tag = `${process.pid}`;

await group('subscribe then unsubscribe at once: not subscribed', async () => {
  const topic = `up:${tag}`;
  const c = await Hub.open(port, { name: 'c' });
  const p = await Hub.open(port, { name: 'p' });
  const sub = c.req({ op: 'subscribe', topic, presence: true });
  const unsub = c.req({ op: 'unsubscribe', topic });
  const [rs, ru] = await Promise.all([sub, unsub]);
  check('the subscribe is answered ok', rs.ok === true, () => show(rs));
  check('the unsubscribe is answered ok (not not_subscribed)', ru.ok === true, () => show(ru));
  await p.must({ op: 'publish', topic, data: 1 });
  await sleep(300);
  check('no message reaches the unsubscribed client', c.msgs(topic).length === 0, () => show(c.msgs(topic)));
  const pr = await p.must({ op: 'presence', topic });
  check('it is not in presence', pr.presence.every((e) => e.client !== c.id), () => show(pr));
  const again = await c.req({ op: 'subscribe', topic });
  check('subscribing again works', again.ok === true, () => show(again));
  const un2 = await c.req({ op: 'unsubscribe', topic });
  check('and its unsubscribe too', un2.ok === true, () => show(un2));
  await c.close();
  await p.close();
});

await group('subscribe, unsubscribe, subscribe at once: subscribed once', async () => {
  const topic = `up2:${tag}`;
  const c = await Hub.open(port, { name: 'c2' });
  const p = await Hub.open(port, { name: 'p2' });
  const rs = await Promise.all([
    c.req({ op: 'subscribe', topic }),
    c.req({ op: 'unsubscribe', topic }),
    c.req({ op: 'subscribe', topic }),
  ]);
  check('all three answered ok', rs.every((r) => r.ok === true), () => show(rs));
  await p.must({ op: 'publish', topic, data: 7 });
  await sleep(300);
  check('the message arrives once', c.msgs(topic).length === 1, () => show(c.msgs(topic)));
  const un = await c.req({ op: 'unsubscribe', topic });
  check('one unsubscribe ends it', un.ok === true, () => show(un));
  await c.close();
  await p.close();
});

finish();

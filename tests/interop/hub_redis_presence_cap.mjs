// Presence on Redis past --max-presence (tests/e2e/test_hub_redis_presence_cap.sh:
// one node, --max-presence 1, --presence-ttl 2s). A subscriber the node does
// not list (the topic's list is full) is not in Redis's presence either, as
// with the memory broker: no join is told for it, and above all no leave
// while it is still subscribed (its entry would never be refreshed).
//
//   node hub_redis_presence_cap.mjs PORT
import { Hub, check, finish, group, show, sleep, watchdog } from './hub_common.mjs';

const port = Number(process.argv[2]);
watchdog(60_000);
const topic = `cap:${process.pid}`;

await group('a subscriber past max-presence neither joins nor leaves', async () => {
  const w = await Hub.open(port, { name: 'w' });
  const x = await Hub.open(port, { name: 'x' });
  await w.must({ op: 'subscribe', topic, presence: true });
  await x.must({ op: 'subscribe', topic, presence: true });
  await sleep(7000); // over three ttls: refreshes ran, an unrefreshed entry expired
  const about = (type) => w.log.filter((m) => m.type === type && m.client === x.id);
  check('no leave of a client that is still subscribed', about('leave').length === 0,
    () => show(about('leave')));
  check('no join of a client the node does not list (as the memory broker)', about('join').length === 0,
    () => show(about('join')));
  const r = await w.must({ op: 'presence', topic });
  check('presence lists the listed subscriber', r.presence.length === 1 && r.presence[0].client === w.id,
    () => show(r));
  await x.must({ op: 'unsubscribe', topic });
  await sleep(300);
  check('its unsubscribe tells no leave either', about('leave').length === 0, () => show(about('leave')));
  w.close();
  x.close();
});

finish();

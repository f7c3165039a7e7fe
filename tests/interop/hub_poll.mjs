// Long-polling and plain HTTP requests on `duplex serve` (GET /poll, POST
// /http/request): stateless polls carry their positions, get what is
// waiting at once or wait for it, and lose or repeat nothing while a
// publisher keeps going; publishing by POST.
//   node hub_poll.mjs PORT API_KEY AUTH_PORT SECRET
import { createHmac } from 'node:crypto';
import { check, group, finish, watchdog, sleep } from './hub_common.mjs';

const [port, key, authPort, secret] = process.argv.slice(2);
watchdog(60_000);
const base = `http://127.0.0.1:${port}`;
const api = (topic, data) => fetch(`${base}/api/publish`, { method: 'POST', headers: { authorization: `Bearer ${key}` },
  body: JSON.stringify({ topic, data }) }).then((r) => r.json());
const poll = async (q, p = port) => {
  const r = await fetch(`http://127.0.0.1:${p}/poll?${q}`);
  return { status: r.status, body: r.status === 200 ? await r.json() : await r.text() };
};
const msgs = (b) => b.events.filter((e) => e.type === 'message');

await group('poll basics', async () => {
  const first = await poll('topics=p:a&timeout=0');
  check('a poll with timeout 0 answers at once with the subscribe reply and a position',
    first.status === 200 && first.body.events[0].type === 'reply' && /^0\.[0-9a-f]{16}$/.test(first.body.since), JSON.stringify(first.body));
  await api('p:a', 1);
  await api('p:a', 2);
  const r = await poll(`topics=p:a&since=${first.body.since}`);
  check('what was published since the position comes at once, in order', msgs(r.body).map((m) => m.data).join() === '1,2', JSON.stringify(r.body));
  const t0 = Date.now();
  const waiting = poll(`topics=p:a&since=${r.body.since}&timeout=10`);
  await sleep(300);
  await api('p:a', 3);
  const w = await waiting;
  check('an empty poll waits and answers when a publication arrives', msgs(w.body).map((m) => m.data).join() === '3' && Date.now() - t0 < 5000,
    `${Date.now() - t0} ms ${JSON.stringify(w.body)}`);
  const t1 = Date.now();
  const idle = await poll(`topics=p:a&since=${w.body.since}&timeout=1`);
  check('an idle poll answers at its timeout with no message and the same position',
    msgs(idle.body).length === 0 && idle.body.since === w.body.since && Date.now() - t1 >= 900, JSON.stringify(idle.body));
});

await group('no loss, no duplicate across polls', async () => {
  let since = (await poll('topics=p:n,p:m&timeout=0')).body.since;
  let stop = false;
  const pub = (async () => { for (let i = 0; i < 200 && !stop; i++) { await api(i % 2 ? 'p:n' : 'p:m', i); if (i % 20 === 0) await sleep(5); } })();
  const got = [];
  const deadline = Date.now() + 20_000;
  while (got.length < 200 && Date.now() < deadline) {
    const r = await poll(`topics=p:n,p:m&since=${since}&timeout=2`);
    got.push(...msgs(r.body).map((m) => m.data));
    since = r.body.since;
  }
  stop = true;
  await pub;
  const sorted = [...got].sort((a, b) => a - b);
  check('all 200 publications on two topics arrive once across consecutive polls',
    got.length === 200 && sorted.every((v, i) => v === i), `${got.length} got`);
});

await group('refusals and resume edges', async () => {
  const hs = await poll('timeout=0');
  check('no topics: a handshake that opens a session (the welcome names it)', hs.status === 200 && hs.body.events[0].type === 'welcome' && /^[0-9a-f]{32}$/.test(hs.body.session) && hs.body.events[0].session === hs.body.session, JSON.stringify(hs.body));
  check('a bad topic: 400', (await poll('topics=a%20b')).status === 400);
  const old = await poll('topics=p:a&since=1.0000000000000000&timeout=0');
  const rep = old.body.events.find((e) => e.type === 'reply');
  check('a stale epoch: the reply says recovered false, epoch_changed', rep && rep.recovered === false && rep.reason === 'epoch_changed', JSON.stringify(old.body));
});

await group('POST /http/request', async () => {
  const r = await fetch(`${base}/http/request`, { method: 'POST', body: JSON.stringify({ id: 7, op: 'publish', topic: 'p:post', data: 'hi' }) });
  const j = await r.json();
  check('a publish by POST is acked like over WebSocket', j.type === 'reply' && j.id === 7 && j.ok && j.offset === 1, JSON.stringify(j));
  const h = await poll('topics=p:post&since=0.' + j.epoch + '&timeout=0');
  check('and reaches pollers', msgs(h.body).map((m) => m.data).join() === 'hi', JSON.stringify(h.body));
  const bad = await (await fetch(`${base}/http/request`, { method: 'POST', body: '{"id":1,"op":"dance"}' })).json();
  check('an unknown op gets its error reply', bad.ok === false && bad.error.code === 'unknown_op', JSON.stringify(bad));
  const sub = await fetch(`${base}/http/request`, { method: 'POST', body: '{"op":"subscribe","topic":"x"}' });
  check('subscribe by POST is refused (400: use /sse or /poll)', sub.status === 400);
});

await group('tokens', async () => {
  const b64u = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const h = b64u({ alg: 'HS256', typ: 'JWT' }) + '.' + b64u({ sub: 'pam', exp: Math.floor(Date.now() / 1000) + 60, publish: ['ok:*'] });
  const tok = h + '.' + createHmac('sha256', secret).update(h).digest('base64url');
  check('no token where one is needed: 401', (await poll('topics=t&timeout=0', authPort)).status === 401);
  const ok = await poll(`topics=t&timeout=0&token=${tok}`, authPort);
  check('a poll with a token', ok.status === 200, JSON.stringify(ok.body));
  const post = async (topic) => (await fetch(`http://127.0.0.1:${authPort}/http/request`, { method: 'POST',
    headers: { authorization: `Bearer ${tok}` }, body: JSON.stringify({ id: 1, op: 'publish', topic, data: 1 }) })).json();
  check('a POST with a bearer token publishes within its grants', (await post('ok:1')).ok === true);
  const f = await post('no');
  check('and is forbidden outside them', f.ok === false && f.error.code === 'forbidden', JSON.stringify(f));
});
finish();

// The sessions of the HTTP transports on `duplex serve` (docs/PROTOCOL.md,
// "Sessions"): a long-poller is ONE client across its polls — listed in
// presence while it keeps polling, gone (one leave event) after
// --session-idle; its rate limits count across requests; an unknown id gets
// 410 and a new session resumes from the client's positions without loss;
// many concurrent pollers on a --threads 2 server; a session is only good
// with a token of its own user.
//   node hub_session.mjs PORT KEY THREADS_PORT AUTH_PORT SECRET
// PORT: --session-idle 1s --publish-rate 5 --subscribe-rate 2 --api-key KEY;
// THREADS_PORT: --threads 2 --session-idle 20s --api-key KEY; AUTH_PORT: --token-secret SECRET
// --session-idle 1s --max-connections-per-user 2.
import { createHmac, randomBytes } from 'node:crypto';
import { check, finish, group, Hub, sleep, waitFor, watchdog } from './hub_common.mjs';

const [port, key, threadsPort, authPort, secret] = process.argv.slice(2);
watchdog(90_000);
const url = (p, path) => `http://127.0.0.1:${p}${path}`;
const poll = async (p, q, headers = {}) => {
  const r = await fetch(url(p, `/poll?${q}`), { headers });
  return { status: r.status, body: r.headers.get('content-type')?.startsWith('application/json') ? await r.json() : await r.text(), sid: r.headers.get('x-duplex-session') };
};
const post = async (p, body, q = '', headers = {}) => {
  const r = await fetch(url(p, `/http/request${q}`), { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json().catch(() => null) };
};
const api = (p, topic, data) => fetch(url(p, '/api/publish'), { method: 'POST', headers: { authorization: `Bearer ${key}` },
  body: JSON.stringify({ topic, data }) }).then((r) => r.json());
const metric = async (p, name) => {
  const text = await (await fetch(url(p, '/metrics'))).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};
const msgs = (b) => b.events.filter((e) => e.type === 'message');
const handshake = async (p, headers) => (await poll(p, 'timeout=0', headers)).body;

await group('presence of a long-poller: continuous while it polls, one leave after the idle time', async () => {
  const topic = `room-${process.pid}`;
  const obs = await Hub.open(port, { name: 'observer' });
  await obs.must({ op: 'subscribe', topic, presence: true });
  const hs = await handshake(port);
  const sid = hs.session;
  check('the handshake (GET /poll without topics) answers with a welcome naming the session',
    /^[0-9a-f]{32}$/.test(sid) && hs.events[0].type === 'welcome' && hs.events[0].session === sid && hs.events[0].client, JSON.stringify(hs));
  const me = hs.events[0].client;
  const info = encodeURIComponent(JSON.stringify({ [topic]: { name: 'ana' } }));
  let since = '';
  let stop = false;
  let polls = 0;
  const clients = new Set();
  const poller = (async () => {
    while (!stop) {
      const r = await poll(port, `topics=${topic}&session=${sid}&info=${info}&timeout=1${since ? `&since=${since}` : ''}`);
      if (r.status !== 200) throw new Error(`poll: ${r.status} ${JSON.stringify(r.body)}`);
      since = r.body.since;
      polls++;
    }
  })();
  // Presence, asked every 100 ms over 3 s (the poller makes ~3 polls of 1 s):
  // the poller is listed every time, under its session's client id.
  await waitFor(() => polls >= 1, 5000, 'the first poll');
  let listed = 0;
  let asked = 0;
  for (const t0 = Date.now(); Date.now() - t0 < 3000; asked++) {
    const pr = await obs.must({ op: 'presence', topic });
    const e = pr.presence.find((x) => x.client === me);
    if (e) listed++;
    for (const x of pr.presence) clients.add(x.client);
    await sleep(100);
  }
  stop = true;
  await poller;
  const joins = obs.log.filter((m) => m.type === 'join' && m.client === me);
  check('listed in presence at every one of the checks across several polls', listed === asked && polls >= 3, `${listed} of ${asked}, ${polls} polls`);
  check('one join event with its info (not one per poll), one client id for all polls',
    joins.length === 1 && joins[0].info?.name === 'ana' && clients.size === 2, JSON.stringify({ joins, clients: [...clients] }));
  const t1 = Date.now();
  await waitFor(() => obs.log.some((m) => m.type === 'leave' && m.client === me), 6000, 'the leave event');
  const after = Date.now() - t1;
  await sleep(1500);
  const leaves = obs.log.filter((m) => m.type === 'leave' && m.client === me).length;
  check('after the last poll: one leave event, after the idle time (1 s) and the sweep',
    leaves === 1 && after >= 700 && after < 4000, `${leaves} leaves after ${after} ms`);
  const pr = await obs.must({ op: 'presence', topic });
  check('and no longer listed', !pr.presence.some((x) => x.client === me), JSON.stringify(pr));
  check('/metrics counts the expired session', (await metric(port, 'duplex_http_sessions_expired_total')) >= 1);
  const gone = await poll(port, `topics=${topic}&session=${sid}&timeout=0`);
  check('the expired id gets 410 unknown_session', gone.status === 410 && gone.body.error?.code === 'unknown_session', JSON.stringify(gone));
  obs.close();
});

await group('rate limits count across the requests of one session', async () => {
  const sid = (await handshake(port)).session;
  let limited = 0;
  for (let i = 0; i < 10; i++) {
    const r = await post(port, { id: i, op: 'publish', topic: 'rl', data: i }, `?session=${sid}`);
    if (r.body?.error?.code === 'rate_limited') limited++;
  }
  check('10 POSTs of one session past --publish-rate 5: the excess is rate limited', limited >= 4 && limited <= 6, `${limited} limited`);
  const other = (await handshake(port)).session;
  const r = await post(port, { id: 1, op: 'publish', topic: 'rl', data: 'x' }, `?session=${other}`);
  check('another session has its own bucket', r.body?.ok === true, JSON.stringify(r.body));
  // --subscribe-rate 2: polling the same topics again is no new subscribe.
  let since = '';
  let refused = 0;
  for (let i = 0; i < 8; i++) {
    const p = await poll(port, `topics=rl,rl2&session=${sid}&timeout=0${since ? `&since=${since}` : ''}`);
    refused += p.body.events.filter((e) => e.type === 'reply' && !e.ok).length;
    since = p.body.since;
  }
  check('8 polls of the same 2 topics: no subscribe is rate limited (a poll continues)', refused === 0, `${refused} refused`);
  const more = await poll(port, `topics=rl,rl2,rl3,rl4,rl5&session=${sid}&timeout=0&since=${since}`);
  const errs = more.body.events.filter((e) => e.type === 'reply' && e.error?.code === 'rate_limited');
  check('but new topics beyond the burst are', errs.length >= 1, JSON.stringify(more.body.events));
});

await group('unknown and malformed session ids', async () => {
  const fake = randomBytes(16).toString('hex');
  const g = await poll(port, `topics=u&session=${fake}&timeout=0`);
  check('GET /poll with an unknown session: 410 unknown_session', g.status === 410 && g.body.error.code === 'unknown_session', JSON.stringify(g));
  const p = await post(port, { id: 1, op: 'ping' }, `?session=${fake}`);
  check('POST with an unknown session: 410', p.status === 410 && p.body.error.code === 'unknown_session');
  const h = await post(port, { id: 1, op: 'ping' }, '', { 'X-Duplex-Session': fake });
  check('the X-Duplex-Session header is read too', h.status === 410);
  check('a malformed id: 400', (await poll(port, 'topics=u&session=xyz&timeout=0')).status === 400);
  const hs = await poll(port, `session=${fake}&timeout=0`);
  check('a handshake (no topics=) with an unknown id starts a new session instead',
    hs.status === 200 && hs.body.session && hs.body.session !== fake && hs.body.events[0].type === 'welcome', JSON.stringify(hs));
  const cont = await poll(port, `session=${hs.body.session}&timeout=0`);
  check('and with a live id continues it (same session, same client id)', cont.body.session === hs.body.session
    && cont.body.events[0].client === hs.body.events[0].client, JSON.stringify(cont));
  const s = await fetch(url(port, `/sse?topics=u&session=${fake}`));
  check('GET /sse with an unknown session: 410', s.status === 410);
  // Recovery: the positions are the client's, so a new session loses nothing.
  const first = await poll(port, 'topics=u&timeout=0');
  for (let i = 1; i <= 3; i++) await api(port, 'u', i);
  const again = await poll(port, `topics=u&timeout=0&since=${first.body.since}`);
  check('a new session from the positions held: every message once', msgs(again.body).map((m) => m.data).join() === '1,2,3'
    && again.body.session && again.body.session !== first.body.session, JSON.stringify(again.body));
});

await group('many concurrent pollers (--threads 2): each one client, every message once', async () => {
  const N = 150;
  const topic = `many-${process.pid}`;
  const before = await metric(threadsPort, 'duplex_http_sessions');
  const sessions = await Promise.all(Array.from({ length: N }, async () => {
    const r = await poll(threadsPort, `topics=${topic}&timeout=0`);
    return { sid: r.body.session, since: r.body.since, got: [] };
  }));
  const open = await metric(threadsPort, 'duplex_http_sessions');
  check(`${N} sessions alive in /metrics`, open - before >= N, `${before} -> ${open}`);
  const M = 20;
  let stop = false;
  const errors = [];
  const loops = sessions.map(async (s) => {
    while (!stop && s.got.length < M) {
      const r = await poll(threadsPort, `topics=${topic}&session=${s.sid}&since=${s.since}&timeout=2`);
      if (r.status !== 200) return errors.push(r.status);
      s.got.push(...msgs(r.body).map((m) => m.data));
      s.since = r.body.since;
    }
  });
  await sleep(200);
  for (let i = 0; i < M; i++) await api(threadsPort, topic, i);
  const deadline = setTimeout(() => { stop = true; }, 20_000);
  await Promise.all(loops);
  clearTimeout(deadline);
  const complete = sessions.filter((s) => s.got.length === M && s.got.every((v, i) => v === i)).length;
  check(`all ${N} pollers got the ${M} messages once and in order`, complete === N && !errors.length,
    `${complete} complete; errors ${errors.join()}`);
  const pres = await (await fetch(url(threadsPort, `/api/presence?topic=${topic}`), { headers: { authorization: `Bearer ${key}` } })).json();
  check(`presence lists ${N} clients (one per session, whichever loop served each poll)`, pres.presence?.length === N, `${pres.presence?.length}`);
});

await group('tokens: a session is its user\'s; it counts once against --max-connections-per-user', async () => {
  const b64u = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const mint = (sub) => {
    const h = b64u({ alg: 'HS256', typ: 'JWT' }) + '.' + b64u({ sub, exp: Math.floor(Date.now() / 1000) + 60 });
    return h + '.' + createHmac('sha256', secret).update(h).digest('base64url');
  };
  const ana = { authorization: `Bearer ${mint('ana')}` };
  const bo = { authorization: `Bearer ${mint('bo')}` };
  const hs = await handshake(authPort, ana);
  check('a session for ana', hs.events?.[0]?.user === 'ana' && hs.session, JSON.stringify(hs));
  let ok = 0;
  for (let i = 0; i < 5; i++) ok += (await poll(authPort, `topics=t&session=${hs.session}&timeout=0`, ana)).status === 200;
  check('5 polls of one session are one connection of ana (limit 2)', ok === 5);
  const stolen = await poll(authPort, `topics=t&session=${hs.session}&timeout=0`, bo);
  check('the id with bo\'s token: 410, as an unknown id', stolen.status === 410, JSON.stringify(stolen));
  const p = await post(authPort, { id: 1, op: 'ping' }, `?session=${hs.session}`, bo);
  check('a POST with it too', p.status === 410);
  const second = await handshake(authPort, ana);
  const third = await handshake(authPort, ana);
  const closeEv = third.events?.find((e) => e.type === 'close');
  check('a second session of ana opens; a third is refused with 4008', second.session && closeEv?.code === 4008, JSON.stringify(third));
});

finish();

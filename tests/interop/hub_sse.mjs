// Server-Sent Events from `duplex serve` (GET /sse), read with Node's own
// HTTP client: the same publications as a WebSocket subscriber, event ids
// carrying every topic's position, resume with Last-Event-ID, refusals.
//   node hub_sse.mjs PORT API_KEY AUTH_PORT SECRET
import http from 'node:http';
import { createHmac } from 'node:crypto';
import { Hub, check, group, finish, watchdog, sleep, withTimeout } from './hub_common.mjs';

const [port, key, authPort, secret] = process.argv.slice(2);
watchdog(60_000);

// An SSE stream: parsed events in `events`, waitable.
function stream(p, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: p, path, headers }, (res) => {
      const s = { res, req, events: [], waiters: [], buf: '' };
      s.next = (pred, what) => withTimeout(new Promise((ok) => {
        const i = s.events.findIndex(pred);
        if (i >= 0) return ok(s.events.splice(i, 1)[0]);
        s.waiters.push({ pred, ok });
      }), 10_000, what);
      res.setEncoding('utf8');
      res.on('data', (d) => {
        s.buf += d;
        let k;
        while ((k = s.buf.indexOf('\n\n')) >= 0) {
          const block = s.buf.slice(0, k);
          s.buf = s.buf.slice(k + 2);
          const ev = { event: 'message', id: null, data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) { ev.comment = true; continue; }
            const c = line.indexOf(':');
            const f = line.slice(0, c), v = line.slice(c + 2);
            if (f === 'data') ev.data += v; else ev[f] = v;
          }
          if (!ev.data) continue; // comments and retry: (EventSource dispatches no empty event)
          ev.json = ev.data ? JSON.parse(ev.data) : null;
          const w = s.waiters.findIndex((x) => x.pred(ev));
          if (w >= 0) s.waiters.splice(w, 1)[0].ok(ev); else s.events.push(ev);
        }
      });
      resolve(s);
    });
    req.on('error', reject);
  });
}

async function api(path, body) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST', body: JSON.stringify(body), headers: { authorization: `Bearer ${key}` } });
  return r.json();
}
const isMsg = (topic, off) => (e) => e.event === 'message' && e.json.topic === topic && (off === undefined || e.json.offset === off);

await group('stream basics', async () => {
  const s = await stream(port, '/sse?topics=sse:a,sse:b');
  check('200 text/event-stream', s.res.statusCode === 200 && s.res.headers['content-type'].startsWith('text/event-stream'),
    `${s.res.statusCode} ${s.res.headers['content-type']}`);
  check('no caching, no proxy buffering', s.res.headers['cache-control'] === 'no-cache' && s.res.headers['x-accel-buffering'] === 'no',
    JSON.stringify(s.res.headers));
  check('chunked (HTTP/1.1)', s.res.headers['transfer-encoding'] === 'chunked');
  const w = await s.next((e) => e.event === 'welcome', 'welcome');
  check('a welcome event with a client id', typeof w.json.client === 'string');
  const r1 = await s.next((e) => e.event === 'reply' && e.json.id === 1, 'subscribe reply a');
  const r2 = await s.next((e) => e.event === 'reply' && e.json.id === 2, 'subscribe reply b');
  check('both topics subscribed', r1.json.ok && r2.json.ok, `${r1.data} ${r2.data}`);
  const ws = await Hub.open(port);
  await ws.must({ op: 'subscribe', topic: 'sse:a' });
  const pa = await api('/api/publish', { topic: 'sse:a', data: { n: 1 } });
  const pb = await api('/api/publish', { topic: 'sse:b', data: 'two' });
  const ea = await s.next(isMsg('sse:a'), 'message a');
  const eb = await s.next(isMsg('sse:b'), 'message b');
  const wa = await ws.next((m) => m.type === 'message' && m.topic === 'sse:a');
  check('SSE gets the same envelope as a WebSocket subscriber', JSON.stringify(ea.json) === JSON.stringify(wa),
    `${ea.data} vs ${JSON.stringify(wa)}`);
  check('event ids carry every topic\'s position', ea.id === `${pa.offset}.${pa.epoch},${r2.json.offset}.${r2.json.epoch}` &&
    eb.id === `${pa.offset}.${pa.epoch},${pb.offset}.${pb.epoch}`, `${ea.id} | ${eb.id}`);
  const big = 'x'.repeat(5000); /* larger than the event's stack buffer */
  await api('/api/publish', { topic: 'sse:a', data: big });
  const eBig = await s.next(isMsg('sse:a'), 'large message');
  check('a large publication arrives whole', eBig.json.data === big, eBig.data.length);
  s.req.destroy();
  await ws.close();
});

await group('resume with Last-Event-ID', async () => {
  let s = await stream(port, '/sse?topics=sse:r');
  await s.next((e) => e.event === 'reply', 'reply');
  for (let i = 0; i < 3; i++) await api('/api/publish', { topic: 'sse:r', data: i });
  let last;
  for (let i = 0; i < 3; i++) last = await s.next(isMsg('sse:r'), `message ${i}`);
  s.req.destroy();
  await sleep(100);
  for (let i = 3; i < 8; i++) await api('/api/publish', { topic: 'sse:r', data: i });
  s = await stream(port, '/sse?topics=sse:r', { 'Last-Event-ID': last.id });
  const r = await s.next((e) => e.event === 'reply', 'resume reply');
  check('resubscribed with the position: recovered', r.json.recovered === true, r.data);
  const got = [];
  for (let i = 0; i < 5; i++) got.push((await s.next(isMsg('sse:r'), `missed ${i}`)).json.data);
  await api('/api/publish', { topic: 'sse:r', data: 8 });
  got.push((await s.next(isMsg('sse:r'), 'live')).json.data);
  check('the missed ones once and in order, then live', got.join() === '3,4,5,6,7,8', got.join());
  await sleep(100);
  check('nothing twice', s.events.filter(isMsg('sse:r')).length === 0, JSON.stringify(s.events));
  s.req.destroy();
});

await group('refusals', async () => {
  const status = (path, method = 'GET') => new Promise((ok) => {
    const rq = http.request({ host: '127.0.0.1', port, path, method }, (res) => { ok(res.statusCode); res.resume(); });
    rq.end();
  });
  check('no topics: 400', (await status('/sse')) === 400);
  check('a bad topic name: 400', (await status('/sse?topics=bad%20name')) === 400);
  check('POST: 405', (await status('/sse?topics=a', 'POST')) === 405);
});

await group('tokens', async () => {
  const b64u = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const h = b64u({ alg: 'HS256', typ: 'JWT' }) + '.' + b64u({ sub: 'eve', exp: Math.floor(Date.now() / 1000) + 60 });
  const tok = h + '.' + createHmac('sha256', secret).update(h).digest('base64url');
  const s = await stream(authPort, `/sse?topics=t&token=${tok}`);
  const w = await s.next((e) => e.event === 'welcome', 'welcome');
  check('a token in the query authenticates the stream', w.json.user === 'eve' && w.json.auth === 'token', w.data);
  s.req.destroy();
  const bad = await stream(authPort, '/sse?topics=t&token=junk');
  const c = await bad.next((e) => e.event === 'close', 'close event');
  check('a bad token: a close event with 4001, then the stream ends', c.json.code === 4001, c.data);
  const anon = await stream(authPort, '/sse?topics=t');
  check('no token on a hub that needs one: 401 at once (a stream cannot authenticate later)',
    anon.res.statusCode === 401, anon.res.statusCode);
  anon.req.destroy();
});
finish();

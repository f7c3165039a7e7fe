// The hub's HTTP API (docs/PROTOCOL.md, "HTTP API") with Node's fetch, and
// Node `ws` clients to see what it does.
//
//   node hub_api.mjs PORT SECTION [KEY]
//
//   api     server with --api-key KEY --max-publication 1024 (one thread,
//           used by this helper alone: broadcast counts its connections)
//   nokey   server without a key: every call answers 403
//   envkey  server given the key KEY in DUPLEX_API_KEY only
//
// Prints "ok - NAME" / "not ok - NAME: WHY" per check.
import {
  Hub, T, check, deepEqual, finish, group, http, isHttpError, show, waitFor, watchdog,
} from './hub_common.mjs';

const port = Number(process.argv[2]);
const section = process.argv[3];
const key = process.argv[4];
if (!port || !section) {
  console.error('usage: node hub_api.mjs PORT SECTION [KEY]');
  process.exit(2);
}
watchdog(60_000);
const open = (name) => Hub.open(port, { name });
const q = encodeURIComponent;
const isJson = (res) => /^application\/json\b/i.test(res.type);

async function api() {
  const topic = `news:${process.pid}/a`; // ':' and '/' travel percent-encoded in queries
  const sub = await open('api-sub');
  const r0 = await sub.must({ op: 'subscribe', topic, presence: true, info: { role: 'reader' } });
  const others = [await open('api-2'), await open('api-3')];

  await group('publish', async () => {
    const p1 = await http(port, 'POST', '/api/publish', { key, body: { topic, data: { title: 'hello' } } });
    check('POST /api/publish with Authorization: Bearer: 200 {ok, offset 1, epoch}',
      p1.status === 200 && p1.json && p1.json.ok === true && p1.json.offset === 1 && p1.json.epoch === r0.epoch,
      `${p1.status} ${p1.text}`);
    check('... as JSON (Content-Type application/json)', isJson(p1), `Content-Type "${p1.type}"`);
    const m1 = await sub.next((m) => m.type === 'message' && m.topic === topic, T, 'the API publication');
    check('subscribers get it, without "from"',
      m1.offset === 1 && deepEqual(m1.data, { title: 'hello' }) && !('from' in m1), show(m1));
    const p2 = await http(port, 'POST', '/api/publish', { key, via: 'x-api-key', body: { topic, data: 'two' } });
    check('POST /api/publish with X-API-Key: 200, offset 2',
      p2.status === 200 && p2.json && p2.json.ok === true && p2.json.offset === 2, `${p2.status} ${p2.text}`);
    const p3 = await http(port, 'POST', '/api/publish', { key, body: { topic, b64: 'AAECAw==' } });
    const m3 = await sub.next((m) => m.type === 'message' && m.topic === topic && m.offset === 3, T, 'the b64 one');
    check('b64 publication: delivered as b64', p3.status === 200 && m3.b64 === 'AAECAw==' && !('data' in m3),
      `${p3.status} ${p3.text} ${show(m3)}`);
    const batch = await http(port, 'POST', '/api/publish', {
      key,
      body: {
        publications: [
          { topic, data: 4 },
          { topic: 'bad topic', data: 'x' },
          { topic, b64: 'AAE=' },
          { topic },
          { topic, data: 'y'.repeat(2000) },
          { topic, data: 5 },
        ],
      },
    });
    const rs = (batch.json && batch.json.results) || [];
    check('batch: 200, ok, one result per publication in order',
      batch.status === 200 && batch.json.ok === true && rs.length === 6, `${batch.status} ${batch.text}`);
    check('batch results: ok 4, bad_topic, ok 5, bad_request, message_too_big, ok 6',
      rs.length === 6 && rs[0].ok === true && rs[0].offset === 4 && rs[0].epoch === r0.epoch &&
        rs[1].ok === false && rs[1].error && rs[1].error.code === 'bad_topic' &&
        rs[2].ok === true && rs[2].offset === 5 &&
        rs[3].ok === false && rs[3].error && rs[3].error.code === 'bad_request' &&
        rs[4].ok === false && rs[4].error && rs[4].error.code === 'message_too_big' &&
        rs[5].ok === true && rs[5].offset === 6,
      show(rs));
    await waitFor(() => sub.msgs(topic).length >= 6, T, 'the batch publications');
    check('batch publications delivered in order', deepEqual(sub.msgs(topic).map((m) => m.offset), [1, 2, 3, 4, 5, 6]),
      show(sub.msgs(topic).map((m) => m.offset)));
    const many = Array.from({ length: 1001 }, (_, i) => ({ topic, data: i }));
    const tooMany = await http(port, 'POST', '/api/publish', { key, body: { publications: many } });
    check('batch of 1001 publications: refused (400 or 413, JSON error), nothing published',
      (tooMany.status === 400 || tooMany.status === 413) && tooMany.json && tooMany.json.ok === false,
      `${tooMany.status} ${tooMany.text.slice(0, 200)}`);
  });

  await group('errors', async () => {
    const body = { topic, data: 'nope' };
    const wrong = await http(port, 'POST', '/api/publish', { key: `${key}x`, body });
    check('wrong key (Bearer): 401 unauthorized, JSON', isHttpError(wrong, 401, 'unauthorized') && isJson(wrong),
      `${wrong.status} ${wrong.text}`);
    const prefix = await http(port, 'POST', '/api/publish', { key: key.slice(0, -1), via: 'x-api-key', body });
    check('a prefix of the key (X-API-Key): 401 unauthorized', isHttpError(prefix, 401, 'unauthorized'),
      `${prefix.status} ${prefix.text}`);
    const none = await http(port, 'POST', '/api/publish', { body });
    check('no key: 401 unauthorized', isHttpError(none, 401, 'unauthorized'), `${none.status} ${none.text}`);
    const basic = await http(port, 'GET', '/api/topics', { headers: { Authorization: `Basic ${key}` } });
    check('the key under another scheme (Basic): 401', isHttpError(basic, 401, 'unauthorized'),
      `${basic.status} ${basic.text}`);
    const noKeyGet = await http(port, 'GET', `/api/history?topic=${q(topic)}`);
    check('GET without a key: 401 too', isHttpError(noKeyGet, 401, 'unauthorized'), `${noKeyGet.status} ${noKeyGet.text}`);
    const badJson = await http(port, 'POST', '/api/publish', { key, raw: '{"topic": "a", "data": ' });
    check('bad JSON: 400 bad_request with a message', isHttpError(badJson, 400, 'bad_request') &&
      badJson.json.error.message.length > 0, `${badJson.status} ${badJson.text}`);
    console.log(`# bad JSON message: ${badJson.json && badJson.json.error && badJson.json.error.message}`);
    const arr = await http(port, 'POST', '/api/publish', { key, raw: '[1,2]' });
    check('a JSON array body: 400 bad_request', isHttpError(arr, 400, 'bad_request'), `${arr.status} ${arr.text}`);
    const empty = await http(port, 'POST', '/api/publish', { key, raw: '' });
    check('an empty body: 400 bad_request', isHttpError(empty, 400, 'bad_request'), `${empty.status} ${empty.text}`);
    const noTopic = await http(port, 'POST', '/api/publish', { key, body: { data: 1 } });
    check('no topic: 400 bad_request', isHttpError(noTopic, 400, 'bad_request'), `${noTopic.status} ${noTopic.text}`);
    const both = await http(port, 'POST', '/api/publish', { key, body: { topic, data: 1, b64: 'AA==' } });
    check('data and b64: 400 bad_request', isHttpError(both, 400, 'bad_request'), `${both.status} ${both.text}`);
    const b64 = await http(port, 'POST', '/api/publish', { key, body: { topic, b64: '!!' } });
    check('bad base64: 400 bad_request', isHttpError(b64, 400, 'bad_request'), `${b64.status} ${b64.text}`);
    const bt = await http(port, 'POST', '/api/publish', { key, body: { topic: 'a b', data: 1 } });
    check('bad topic: 400 bad_topic', isHttpError(bt, 400, 'bad_topic'), `${bt.status} ${bt.text}`);
    const big = await http(port, 'POST', '/api/publish', { key, body: { topic, data: 'z'.repeat(1023) } });
    check('a publication over --max-publication: 413 message_too_big', isHttpError(big, 413, 'message_too_big'),
      `${big.status} ${big.text}`);
    const edge = await http(port, 'POST', '/api/publish', { key, body: { topic, data: 'z'.repeat(1022) } });
    check('a publication of exactly --max-publication: 200', edge.status === 200 && edge.json.offset === 7,
      `${edge.status} ${edge.text}`);
    const huge = await http(port, 'POST', '/api/publish', {
      key,
      raw: JSON.stringify({ topic, data: 'h'.repeat((1 << 20) + 10) }),
    }).catch((e) => ({ status: `error ${e.message}`, text: '' }));
    check('a body over the 1 MiB --max-body default: 413', huge.status === 413, `${huge.status} ${huge.text.slice(0, 200)}`);
    const nf = await http(port, 'GET', '/api/nope', { key });
    check('unknown call: 404 not_found', isHttpError(nf, 404, 'not_found'), `${nf.status} ${nf.text}`);
    const nf2 = await http(port, 'POST', '/api/publish/extra', { key, body });
    check('unknown call under a known one: 404 not_found', isHttpError(nf2, 404, 'not_found'), `${nf2.status} ${nf2.text}`);
    for (const [method, path] of [['GET', '/api/publish'], ['POST', '/api/topics'], ['DELETE', `/api/history?topic=${q(topic)}`],
      ['PUT', '/api/broadcast'], ['POST', `/api/presence?topic=${q(topic)}`]]) {
      const r = await http(port, method, path, { key, body: method === 'GET' ? undefined : {} });
      check(`${method} ${path.split('?')[0]}: 405 method_not_allowed`, isHttpError(r, 405, 'method_not_allowed'),
        `${r.status} ${r.text}`);
    }
    await sub.sync();
    check('nothing was published by the refused calls (offsets 1..7 only)',
      deepEqual(sub.msgs(topic).map((m) => m.offset), [1, 2, 3, 4, 5, 6, 7]), show(sub.msgs(topic).map((m) => m.offset)));
  });

  await group('history, presence, topics', async () => {
    const h = await http(port, 'GET', `/api/history?topic=${q(topic)}`, { key });
    const hj = h.json || {};
    check('GET /api/history: 200, as the history reply without type and id',
      h.status === 200 && hj.ok === true && hj.offset === 7 && hj.epoch === r0.epoch && hj.complete === true &&
        !('type' in hj) && !('id' in hj) && Array.isArray(hj.publications), `${h.status} ${h.text.slice(0, 300)}`);
    check('... the publications exactly as delivered', deepEqual(hj.publications, sub.msgs(topic)),
      show(hj.publications));
    const hs = await http(port, 'GET', `/api/history?topic=${q(topic)}&since=2&epoch=${q(r0.epoch)}&limit=3`, { key });
    check('GET /api/history since 2, limit 3: 3, 4, 5',
      hs.status === 200 && hs.json && deepEqual((hs.json.publications || []).map((m) => m.offset), [3, 4, 5]),
      `${hs.status} ${hs.text.slice(0, 300)}`);
    const hl = await http(port, 'GET', `/api/history?topic=${q(topic)}&limit=2`, { key });
    check('GET /api/history limit 2: the latest 2 (6, 7)',
      hl.status === 200 && hl.json && deepEqual((hl.json.publications || []).map((m) => m.offset), [6, 7]),
      `${hl.status} ${hl.text.slice(0, 300)}`);
    const he = await http(port, 'GET', `/api/history?topic=${q(topic)}&since=2&epoch=other`, { key });
    check('GET /api/history with another epoch: 400 epoch_changed', isHttpError(he, 400, 'epoch_changed'),
      `${he.status} ${he.text}`);
    const hn = await http(port, 'GET', '/api/history', { key });
    check('GET /api/history without topic: 400 bad_request', isHttpError(hn, 400, 'bad_request'), `${hn.status} ${hn.text}`);
    const hb = await http(port, 'GET', `/api/history?topic=${q('a b')}`, { key });
    check('GET /api/history with a bad topic: 400 bad_topic', isHttpError(hb, 400, 'bad_topic'), `${hb.status} ${hb.text}`);
    const hlim = await http(port, 'GET', `/api/history?topic=${q(topic)}&limit=0`, { key });
    check('GET /api/history limit=0: 400 bad_request', isHttpError(hlim, 400, 'bad_request'), `${hlim.status} ${hlim.text}`);

    const p = await http(port, 'GET', `/api/presence?topic=${q(topic)}`, { key });
    check('GET /api/presence: the subscriber with user and info',
      p.status === 200 && p.json && p.json.ok === true &&
        deepEqual(p.json.presence, [{ client: sub.id, user: '', info: { role: 'reader' } }]), `${p.status} ${p.text}`);
    const pn = await http(port, 'GET', '/api/presence', { key });
    check('GET /api/presence without topic: 400 bad_request', isHttpError(pn, 400, 'bad_request'), `${pn.status} ${pn.text}`);

    const t = await http(port, 'GET', '/api/topics', { key });
    const mine = t.json && Array.isArray(t.json.topics) ? t.json.topics.find((x) => x.topic === topic) : undefined;
    check('GET /api/topics: the topic with subscribers, offset, epoch, retained',
      t.status === 200 && t.json.ok === true &&
        deepEqual(mine, { topic, subscribers: 1, offset: 7, epoch: r0.epoch, retained: 7 }), `${t.status} ${t.text.slice(0, 400)}`);
  });

  await group('broadcast', async () => {
    const conns = [sub, ...others];
    const b = await http(port, 'POST', '/api/broadcast', { key, body: { data: { notice: 'maintenance' } } });
    check(`POST /api/broadcast: 200 {ok, clients: ${conns.length}}`,
      b.status === 200 && b.json && b.json.ok === true && b.json.clients === conns.length, `${b.status} ${b.text}`);
    for (const c of conns) {
      const m = await c.next((x) => x.type === 'broadcast', T, 'the broadcast');
      check(`${c.name} (${c === sub ? 'subscribed' : 'not subscribed'}) gets {type: broadcast, data}`,
        deepEqual(m, { type: 'broadcast', data: { notice: 'maintenance' } }), show(m));
    }
    const b2 = await http(port, 'POST', '/api/broadcast', { key, body: { b64: 'AAEC' } });
    const m2 = await others[0].next((x) => x.type === 'broadcast', T, 'the b64 broadcast');
    check('b64 broadcast', b2.status === 200 && m2.b64 === 'AAEC' && !('data' in m2), `${b2.status} ${show(m2)}`);
    const b3 = await http(port, 'POST', '/api/broadcast', { key, body: { notice: 'no data field' } });
    check('broadcast without data or b64: 400 bad_request', isHttpError(b3, 400, 'bad_request'), `${b3.status} ${b3.text}`);
    const b4 = await http(port, 'POST', '/api/broadcast', { key: 'wrong', body: { data: 1 } });
    check('broadcast with a wrong key: 401', isHttpError(b4, 401, 'unauthorized'), `${b4.status} ${b4.text}`);
    for (const c of conns) await c.sync();
    const counts = conns.map((c) => c.log.filter((m) => m.type === 'broadcast').length);
    check('each connection got the 2 broadcasts, the refused ones reached nobody', counts.every((n) => n === 2),
      show(counts));
  });
  for (const c of [sub, ...others]) await c.close();
}

async function nokey() {
  await group('no API key configured', async () => {
    for (const [method, path, body] of [['POST', '/api/publish', { topic: 'x', data: 1 }], ['GET', '/api/topics'],
      ['GET', '/api/history?topic=x'], ['POST', '/api/broadcast', { data: 1 }]]) {
      const r = await http(port, method, path, { body });
      check(`${method} ${path}: 403 forbidden`, isHttpError(r, 403, 'forbidden'), `${r.status} ${r.text}`);
      const r2 = await http(port, method, path, { body, key: 'anything' });
      check(`${method} ${path} with some key: 403 forbidden`, isHttpError(r2, 403, 'forbidden'), `${r2.status} ${r2.text}`);
    }
  });
}

async function envkey() {
  await group('key from DUPLEX_API_KEY', async () => {
    const r = await http(port, 'POST', '/api/publish', { key, body: { topic: 'env', data: 1 } });
    check('the key from the environment works', r.status === 200 && r.json && r.json.ok === true && r.json.offset === 1,
      `${r.status} ${r.text}`);
    const w = await http(port, 'POST', '/api/publish', { key: 'other', body: { topic: 'env', data: 1 } });
    check('another key: 401', isHttpError(w, 401, 'unauthorized'), `${w.status} ${w.text}`);
  });
}

const sections = { api, nokey, envkey };
if (!sections[section]) {
  console.log(`not ok - section ${section}: unknown`);
  process.exit(1);
}
await sections[section]();
finish();

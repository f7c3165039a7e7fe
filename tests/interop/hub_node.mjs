// Interop: Node `ws` clients speaking the hub protocol (docs/PROTOCOL.md)
// to a started `duplex serve`.
//
//   node hub_node.mjs PORT SECTION...
//
// Each section expects the server flags named in its comment (the shell
// driver, test_hub_node.sh / test_hub_threads.sh, starts the servers):
//
//   main      --history-size 1000 --max-publication 1024 --max-message 16384
//             --max-subscriptions 2 (welcome, subprotocol, ids, no-id
//             requests, subscribe state, skip_self, payloads, malformed
//             envelopes, the 4000 close, size limits, ordering, resume,
//             history, presence)
//   small     --history-size 5 (too_old, history capped, complete flag)
//   ttl       --history-ttl 1 (expiry of history, new epoch of a topic)
//   threads   --threads 2 --history-size 1000 (fan-out, resume and presence
//             across loops)
//   sigterm   any; writes the file $DX_READY once its clients are connected,
//             then expects every one to be closed with 1001
//
// DX_HUB_LIMITS (JSON), if set, is compared with the welcome's limits; with
// DX_EXPECT_DEFLATE=1 (server run with --deflate) the offer must be taken.
// Prints "ok - NAME" / "not ok - NAME: WHY" per check.
import { Buffer } from 'node:buffer';
import { writeFileSync } from 'node:fs';
import {
  T, Hub, check, deepEqual, finish, gapOrDisorder, group, isError, notOk, ok, setTag, show, sleep,
  waitFor, watchdog,
} from './hub_common.mjs';

const port = Number(process.argv[2]);
const sections = process.argv.slice(3);
if (!port || !sections.length) {
  console.error('usage: node hub_node.mjs PORT SECTION...');
  process.exit(2);
}
watchdog(120_000);
const open = (name, opts = {}) => Hub.open(port, { name, ...opts });
let topicSeq = 0;
// A fresh topic name per test, so that tests do not see each other's data.
const fresh = (what) => `${what}:${process.pid}.${++topicSeq}`;
const offsets = (msgs) => msgs.map((m) => m.offset);

// ---------------------------------------------------------------- main

async function welcome() {
  await group('welcome', async () => {
    const a = await open('w1');
    const w = a.welcome;
    check('welcome is the first message', a.log[0] === w, `first message ${show(a.log[0])}`);
    check('welcome: auth "anonymous" (a server without tokens)', w.auth === 'anonymous', show(w));
    if (process.env.DX_EXPECT_DEFLATE === '1')
      check('permessage-deflate negotiated (the ws client offers it)', /permessage-deflate/.test(a.ws.extensions),
        `extensions "${a.ws.extensions}"`);
    check('welcome: type, version 1, client id, user ""',
      w.type === 'welcome' && w.version === 1 && typeof w.client === 'string' && w.client.length > 0 && w.user === '',
      show(w));
    const l = w.limits || {};
    check('welcome: limits has the four numbers',
      ['max_publication', 'max_subscriptions', 'history_size', 'history_ttl'].every((k) => Number.isInteger(l[k])),
      show(w));
    if (process.env.DX_HUB_LIMITS) {
      const want = JSON.parse(process.env.DX_HUB_LIMITS);
      const got = Object.fromEntries(Object.keys(want).map((k) => [k, l[k]]));
      check(`welcome: limits are the server's flags ${show(want)}`, deepEqual(got, want), `got ${show(l)}`);
    }
    // A request sent before the welcome arrived is answered after it.
    const b = await open('w2', { welcome: false, beforeWelcome: (c) => c.send({ id: 'early', op: 'ping' }) });
    const r = await b.next((m) => m.type === 'reply', T, 'the reply to a ping sent at once');
    check('a request sent at once is answered, after the welcome',
      b.log[0] && b.log[0].type === 'welcome' && r.id === 'early' && r.ok === true, show(b.log.slice(0, 2)));
    const more = await Promise.all([1, 2, 3, 4].map((i) => open(`w${i + 2}`)));
    const ids = new Set([a, b.log[0], ...more.map((c) => c.welcome)].map((x) => (x.welcome || x).client));
    check('client ids are unique', ids.size === 6, `ids ${show([...ids])}`);
    for (const c of [a, b, ...more]) await c.close();
  });
}

async function subprotocol() {
  await group('subprotocol', async () => {
    const a = await open('sp1');
    check('duplex.v1 offered: selected', a.ws.protocol === 'duplex.v1', `protocol "${a.ws.protocol}"`);
    const b = await open('sp2', { protocols: ['chat', 'duplex.v1'] });
    check('duplex.v1 offered among others: selected', b.ws.protocol === 'duplex.v1', `protocol "${b.ws.protocol}"`);
    const c = await open('sp3', { protocols: null });
    check('no subprotocol offered: none in the answer, served as duplex.v1',
      c.ws.protocol === '' && c.welcome.type === 'welcome', `protocol "${c.ws.protocol}"`);
    await c.sync();
    ok('no subprotocol offered: requests answered');
    try {
      const d = await open('sp4', { protocols: ['chat'] });
      notOk('only other subprotocols offered: refused with HTTP 400', `connected (protocol "${d.ws.protocol}")`);
      await d.close();
    } catch (e) {
      check('only other subprotocols offered: refused with HTTP 400', e.status === 400, e.message);
    }
    for (const x of [a, b, c]) await x.close();
  });
}

async function ids() {
  await group('request ids', async () => {
    const a = await open('ids');
    const good = [0, 1, 9007199254740991, '', 'abc', 'é'.repeat(32), 'x'.repeat(64)];
    for (const id of good) {
      const r = await a.req({ id, op: 'ping' });
      check(`id ${show(id, 20)} (${typeof id}) comes back unchanged in an ok reply`,
        r.ok === true && r.id === id && typeof r.id === typeof id, show(r));
    }
    const t = fresh('ids');
    const r1 = await a.req({ id: 'sub-1', op: 'subscribe', topic: t });
    check('string id on subscribe: ok reply with the same id', r1.ok === true && r1.id === 'sub-1', show(r1));
    const r2 = await a.req({ id: 77, op: 'publish', topic: t, data: 1 });
    check('integer id on publish: ok reply with the same id', r2.ok === true && r2.id === 77, show(r2));
    const r3 = await a.req({ id: 'u', op: 'unsubscribe', topic: t });
    check('string id on unsubscribe: ok reply with the same id', r3.ok === true && r3.id === 'u', show(r3));
    const r4 = await a.req({ id: 78, op: 'subscribe', topic: 'no spaces allowed' });
    check('an error reply carries the id too', isError(r4, 'bad_topic') && r4.id === 78, show(r4));
    // Ids outside the rules are a bad request (the reply cannot carry them).
    const bad = [-1, 1.5, 9007199254740992, 'x'.repeat(65), true, {}, [1]];
    for (const id of bad) {
      a.send({ id, op: 'ping' });
      const r = await a.nextReply();
      check(`bad id ${show(id, 20)}: bad_request`, isError(r, 'bad_request'), show(r));
      await a.sync(); // a valid request between invalid ones (the 4000 rule)
    }
    // Replies come in request order.
    const many = [];
    for (let i = 0; i < 50; i++) a.send({ id: 1000 + i, op: i % 2 ? 'ping' : 'history', topic: t, limit: 1 });
    for (let i = 0; i < 50; i++) many.push((await a.nextReply()).id);
    check('50 pipelined requests: replies in request order',
      deepEqual(many, Array.from({ length: 50 }, (_, i) => 1000 + i)), show(many));
    await a.close();
  });
}

async function noId() {
  await group('requests without id', async () => {
    const a = await open('noid');
    const b = await open('noid-sub');
    const t = fresh('noid');
    await b.must({ op: 'subscribe', topic: t });
    a.send({ op: 'subscribe', topic: t });
    a.send({ op: 'publish', topic: t, data: 'fire and forget' });
    a.send({ op: 'ping' });
    a.send({ op: 'unsubscribe', topic: t });
    const r = await a.req({ id: 'after', op: 'ping' });
    const replies = a.log.filter((m) => m.type === 'reply');
    check('successful requests without id get no reply',
      replies.length === 1 && replies[0] === r, `replies ${show(replies)}`);
    const m = await b.next((x) => x.type === 'message' && x.topic === t, T, 'the id-less publication');
    check('a publish without id is delivered', m.data === 'fire and forget' && m.from === a.id, show(m));
    const own = a.msgs(t);
    check('the id-less subscribe took effect (own publication received)',
      own.length === 1 && own[0].data === 'fire and forget', show(own));
    a.send({ op: 'publish', topic: 'bad topic', data: 1 });
    const e = await a.nextReply();
    check('a failed request without id: error reply without id',
      isError(e, 'bad_topic') && !('id' in e), show(e));
    a.send({ op: 'unsubscribe', topic: t });
    const e2 = await a.nextReply();
    check('unsubscribe without id when not subscribed: not_subscribed without id',
      isError(e2, 'not_subscribed') && !('id' in e2), show(e2));
    await a.sync();
    await a.close();
    await b.close();
  });
}

async function subscribeState() {
  await group('subscribe state', async () => {
    const a = await open('st');
    const b = await open('st-ctl');
    const t = fresh('st');
    const n = await a.req({ op: 'unsubscribe', topic: t });
    check('unsubscribe never subscribed: not_subscribed', isError(n, 'not_subscribed'), show(n));
    const s = await a.req({ op: 'subscribe', topic: t });
    check('subscribe to a new topic: topic, offset 0, epoch string, no recovered',
      s.ok === true && s.topic === t && s.offset === 0 && typeof s.epoch === 'string' &&
        s.epoch.length > 0 && Buffer.byteLength(s.epoch) <= 32 && !('recovered' in s),
      show(s));
    await b.must({ op: 'subscribe', topic: t });
    const again = await a.req({ op: 'subscribe', topic: t, presence: true });
    check('subscribe twice: already_subscribed', isError(again, 'already_subscribed'), show(again));
    const p = await b.must({ op: 'publish', topic: t, data: { n: 1 } });
    check('first publication of a topic: offset 1, the subscribe epoch',
      p.offset === 1 && p.epoch === s.epoch, show(p));
    await b.next((m) => m.type === 'message' && m.topic === t, T, 'control copy');
    await a.sync();
    check('after already_subscribed the subscription is unchanged: one copy',
      a.msgs(t).length === 1 && a.msgs(t)[0].offset === 1, show(a.msgs(t)));
    const u = await a.req({ op: 'unsubscribe', topic: t });
    check('unsubscribe: ok reply', u.ok === true, show(u));
    await b.must({ op: 'publish', topic: t, data: { n: 2 } });
    await b.next((m) => m.type === 'message' && m.topic === t && m.offset === 2, T, 'control copy 2');
    await a.sync();
    check('nothing is delivered after unsubscribe', a.msgs(t).length === 1, show(a.msgs(t)));
    const u2 = await a.req({ op: 'unsubscribe', topic: t });
    check('unsubscribe twice: not_subscribed', isError(u2, 'not_subscribed'), show(u2));
    const s2 = await a.req({ op: 'subscribe', topic: t });
    check('subscribe again: the current position (offset 2, same epoch)',
      s2.ok === true && s2.offset === 2 && s2.epoch === s.epoch, show(s2));
    await a.close();
    await b.close();
  });
}

async function skipSelf() {
  await group('skip_self', async () => {
    const a = await open('self');
    const b = await open('other');
    const t = fresh('chat');
    await a.must({ op: 'subscribe', topic: t });
    await b.must({ op: 'subscribe', topic: t });
    const p1 = await a.must({ op: 'publish', topic: t, data: 'not to me', skip_self: true });
    const m1 = await b.next((m) => m.type === 'message' && m.topic === t, T, 'the skip_self publication');
    check('skip_self: other subscribers get it, with from = the publisher',
      m1.data === 'not to me' && m1.from === a.id && m1.offset === p1.offset, show(m1));
    await a.sync();
    check('skip_self: the publisher does not', a.msgs(t).length === 0, show(a.msgs(t)));
    await a.must({ op: 'publish', topic: t, data: 'to me too' });
    await a.must({ op: 'publish', topic: t, data: 'also to me', skip_self: false });
    await waitFor(() => a.msgs(t).length >= 2 && b.msgs(t).length >= 3, T, 'two own publications');
    check('without skip_self (or false) the publisher gets its own publications',
      deepEqual(a.msgs(t).map((m) => [m.data, m.from]), [['to me too', a.id], ['also to me', a.id]]),
      show(a.msgs(t)));
    const c = await open('not-subscribed');
    const p = await c.req({ op: 'publish', topic: t, data: 'outsider' });
    check('publishing needs no subscription', p.ok === true && p.offset === p1.offset + 3, show(p));
    await waitFor(() => b.msgs(t).length >= 4, T, 'the outsider publication');
    for (const x of [a, b, c]) await x.close();
  });
}

async function payloads() {
  await group('payloads', async () => {
    const a = await open('pay');
    const b = await open('pay-sub');
    const t = fresh('cam');
    await b.must({ op: 'subscribe', topic: t });
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const b64 = bytes.toString('base64');
    const p = await a.must({ op: 'publish', topic: t, b64 });
    const m = await b.next((x) => x.type === 'message' && x.topic === t, T, 'the b64 publication');
    check('b64 payload: delivered as b64, no data, bytes 0..255 intact',
      m.b64 === b64 && !('data' in m) && Buffer.from(m.b64, 'base64').equals(bytes) && m.offset === p.offset,
      show(m));
    const json = { text: 'héllo wörld 😀 ✓', n: [1, -2.5, null, true, false], o: { a: { b: [] } }, e: '' };
    await a.must({ op: 'publish', topic: t, data: json });
    const m2 = await b.next((x) => x.type === 'message' && x.topic === t, T, 'the JSON publication');
    check('data payload: any JSON, delivered equal, no b64',
      deepEqual(m2.data, json) && !('b64' in m2) && m2.from === a.id, show(m2));
    for (const d of [0, 'str', [], null]) {
      const r = await a.req({ op: 'publish', topic: t, data: d });
      const mm = r.ok ? await b.next((x) => x.type === 'message' && x.topic === t, T, 'scalar') : null;
      check(`data ${show(d)} is a payload`, r.ok === true && mm && deepEqual(mm.data, d) && 'data' in mm,
        `${show(r)} ${show(mm)}`);
    }
    const e = await a.must({ op: 'publish', topic: t, b64: '' });
    const me = await b.next((x) => x.type === 'message' && x.topic === t, T, 'empty b64');
    check('empty b64 payload', e.ok && me.b64 === '', show(me));
    await a.close();
    await b.close();
  });
}

async function malformed() {
  await group('malformed envelopes', async () => {
    const a = await open('bad');
    const t = fresh('ok');
    // [name, what to send, expected code, does the reply carry id?]
    const cases = [
      ['not JSON', 'not json', 'bad_request'],
      ['truncated JSON', '{"id":1,"op":"ping"', 'bad_request'],
      ['JSON array', '[{"id":1,"op":"ping"}]', 'bad_request'],
      ['JSON number', '42', 'bad_request'],
      ['JSON string', '"ping"', 'bad_request'],
      ['JSON null', 'null', 'bad_request'],
      ['empty text frame', '', 'bad_request'],
      ['missing op', { id: 101 }, 'bad_request', 101],
      ['unknown op', { id: 102, op: 'dance' }, 'unknown_op', 102],
      ['unknown op, string id', { id: 'x', op: 'Subscribe', topic: t }, 'unknown_op', 'x'],
      ['op not a string', { id: 103, op: 5 }, 'bad_request', 103],
      ['subscribe without topic', { id: 104, op: 'subscribe' }, 'bad_request', 104],
      ['topic a number', { id: 105, op: 'subscribe', topic: 5 }, 'bad_request', 105],
      ['topic null', { id: 106, op: 'publish', topic: null, data: 1 }, 'bad_request', 106],
      ['presence not a bool', { id: 107, op: 'subscribe', topic: t, presence: 'yes' }, 'bad_request', 107],
      ['history negative', { id: 108, op: 'subscribe', topic: t, history: -1 }, 'bad_request', 108],
      ['history a string', { id: 109, op: 'subscribe', topic: t, history: '3' }, 'bad_request', 109],
      ['since a number', { id: 110, op: 'subscribe', topic: t, since: 5 }, 'bad_request', 110],
      ['since without epoch', { id: 111, op: 'subscribe', topic: t, since: { offset: 1 } }, 'bad_request', 111],
      ['since without offset', { id: 112, op: 'subscribe', topic: t, since: { epoch: 'e' } }, 'bad_request', 112],
      ['since offset a string', { id: 113, op: 'subscribe', topic: t, since: { offset: '1', epoch: 'e' } },
        'bad_request', 113],
      ['since offset not an integer', { id: 114, op: 'subscribe', topic: t, since: { offset: 1.5, epoch: 'e' } },
        'bad_request', 114],
      ['since epoch a number', { id: 115, op: 'subscribe', topic: t, since: { offset: 1, epoch: 7 } },
        'bad_request', 115],
      ['unsubscribe without topic', { id: 116, op: 'unsubscribe' }, 'bad_request', 116],
      ['publish with data and b64', { id: 117, op: 'publish', topic: t, data: 1, b64: 'AA==' }, 'bad_request', 117],
      ['publish with neither data nor b64', { id: 118, op: 'publish', topic: t }, 'bad_request', 118],
      ['b64 not base64', { id: 119, op: 'publish', topic: t, b64: 'not base64!' }, 'bad_request', 119],
      ['b64 without padding', { id: 120, op: 'publish', topic: t, b64: 'AAE' }, 'bad_request', 120],
      ['b64 a number', { id: 121, op: 'publish', topic: t, b64: 5 }, 'bad_request', 121],
      ['skip_self not a bool', { id: 122, op: 'publish', topic: t, data: 1, skip_self: 1 }, 'bad_request', 122],
      ['history limit 0', { id: 123, op: 'history', topic: t, limit: 0 }, 'bad_request', 123],
      ['history limit 1001', { id: 124, op: 'history', topic: t, limit: 1001 }, 'bad_request', 124],
      ['history limit a string', { id: 125, op: 'history', topic: t, limit: '5' }, 'bad_request', 125],
      ['history since a string', { id: 126, op: 'history', topic: t, since: '5' }, 'bad_request', 126],
      ['presence without topic', { id: 127, op: 'presence' }, 'bad_request', 127],
      ['topic empty', { id: 130, op: 'subscribe', topic: '' }, 'bad_topic', 130],
      ['topic with a space', { id: 131, op: 'publish', topic: 'bad topic!', data: 1 }, 'bad_topic', 131],
      ['topic of 129 bytes', { id: 132, op: 'subscribe', topic: 'a'.repeat(129) }, 'bad_topic', 132],
      ['topic with é', { id: 133, op: 'publish', topic: 'caf\u00e9', data: 1 }, 'bad_topic', 133],
      ['topic with #', { id: 134, op: 'presence', topic: 'a#b' }, 'bad_topic', 134],
      ['topic with *', { id: 135, op: 'history', topic: 'a*' }, 'bad_topic', 135],
      ['topic with a NUL', { id: 136, op: 'unsubscribe', topic: 'a\u0000b' }, ['bad_topic', 'bad_request']],
    ];
    for (const [name, msg, code, id] of cases) {
      a.send(msg);
      const r = await a.nextReply(T, `the reply to ${name}`);
      const codes = Array.isArray(code) ? code : [code];
      check(`${name}: ${codes.join(' or ')}${id !== undefined ? ' with the id' : ''}`,
        codes.some((c) => isError(r, c)) && (id === undefined || r.id === id), show(r));
      await a.sync(); // the connection stays usable (and the invalid-in-a-row count restarts)
    }
    ok('the connection stayed open through every malformed envelope');
    a.send(Buffer.from([1, 2, 3]));
    const rb = await a.nextReply(T, 'the reply to a binary frame');
    check('binary frame: bad_request reply without id', isError(rb, 'bad_request') && !('id' in rb), show(rb));
    await a.sync();
    // Unknown fields are ignored.
    const r1 = await a.req({ id: 140, op: 'ping', extra: { x: 1 }, v: 2 });
    check('unknown fields are ignored (ping)', r1.ok === true && r1.id === 140, show(r1));
    const r2 = await a.req({ id: 141, op: 'publish', topic: t, data: 1, priority: 'high' });
    check('unknown fields are ignored (publish)', r2.ok === true, show(r2));
    // Every allowed character, and the longest name.
    for (const name of ['aZ09_-:./@=', 'a'.repeat(128), 'chat:lobby', 'ticker/AAPL', 'A', 'Case']) {
      const r = await a.req({ op: 'publish', topic: name, data: 1 });
      check(`topic ${show(name, 20)} (${name.length} bytes) is valid`, r.ok === true, show(r));
    }
    const upper = fresh('CASE');
    const c1 = await a.must({ op: 'publish', topic: upper, data: 1 });
    const c2 = await a.must({ op: 'publish', topic: upper.toLowerCase(), data: 1 });
    check('topic names are case-sensitive', c1.offset === 1 && c2.offset === 1, `${show(c1)} ${show(c2)}`);
    const rq = await a.req({ id: 142, op: 'presence', topic: fresh('nobody') });
    check('presence of a topic nobody is in: empty list', rq.ok === true && deepEqual(rq.presence, []), show(rq));
    await a.close();
  });
}

async function abuse() {
  await group('20 invalid requests in a row', async () => {
    const a = await open('abuse');
    const other = await open('bystander');
    const bad = (i) => (i % 3 === 0 ? 'not json' : i % 3 === 1 ? { op: 'dance' } : { op: 'subscribe' });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 19; i++) a.send(bad(i));
      for (let i = 0; i < 19; i++) await a.nextReply();
      await a.sync();
    }
    ok('19 invalid requests in a row, then a valid one, twice: still open');
    for (let i = 0; i < 25; i++) a.send({ op: 'publish', topic: 'bad topic', data: i });
    for (let i = 0; i < 25; i++) {
      const r = await a.nextReply();
      if (!isError(r, 'bad_topic')) throw new Error(`bad_topic reply expected, got ${show(r)}`);
    }
    await a.sync();
    ok('25 bad_topic errors in a row do not count (only bad_request / unknown_op)');
    for (let i = 0; i < 20; i++) a.send(bad(i));
    const info = await Promise.race([a.closed, sleep(T).then(() => null)]);
    check('the 20th invalid request in a row: close 4000', info && info.code === 4000,
      info ? `closed with ${info.code}` : `still open after ${T} ms`);
    await other.sync();
    ok('other connections are unaffected');
    await other.close();
  });
}

async function sizes() {
  await group('size limits (--max-publication 1024, --max-message 16384)', async () => {
    const a = await open('big');
    const b = await open('big-sub');
    const t = fresh('big');
    await b.must({ op: 'subscribe', topic: t });
    // "x" * n encodes as n + 2 bytes of JSON.
    const r1 = await a.req({ op: 'publish', topic: t, data: 'x'.repeat(1022) });
    check('data of 1024 encoded bytes (the limit): accepted', r1.ok === true, show(r1));
    const r2 = await a.req({ op: 'publish', topic: t, data: 'x'.repeat(1023) });
    check('data of 1025 encoded bytes: message_too_big', isError(r2, 'message_too_big'), show(r2));
    const r3 = await a.req({ op: 'publish', topic: t, b64: Buffer.alloc(1024, 7).toString('base64') });
    check('b64 of 1024 decoded bytes: accepted', r3.ok === true, show(r3));
    const r4 = await a.req({ op: 'publish', topic: t, b64: Buffer.alloc(1025, 7).toString('base64') });
    check('b64 of 1025 decoded bytes: message_too_big', isError(r4, 'message_too_big'), show(r4));
    const r5 = await a.req({ op: 'publish', topic: t, data: { list: Array(400).fill('abc') } });
    check('an object payload over the limit: message_too_big', isError(r5, 'message_too_big'), show(r5));
    // A whole WebSocket message of exactly --max-message bytes is allowed.
    const pad = 16384 - JSON.stringify({ id: 9, op: 'publish', topic: t, data: '' }).length;
    const exact = JSON.stringify({ id: 9, op: 'publish', topic: t, data: 'y'.repeat(pad) });
    a.send(exact);
    const r6 = await a.nextReply();
    check(`a ${exact.length}-byte request (= --max-message): message_too_big reply, still open`,
      exact.length === 16384 && isError(r6, 'message_too_big') && r6.id === 9, show(r6));
    await a.sync();
    ok('the connection stays after message_too_big');
    await waitFor(() => b.msgs(t).length === 2, T, 'the two accepted publications');
    const okOffsets = offsets(b.msgs(t));
    check('only the accepted publications were delivered (offsets 1, 2)', deepEqual(okOffsets, [1, 2]),
      show(okOffsets));
    await group('presence info over 1 KiB', async () => {
      const c = await open('info');
      // {"s":"…"} encodes as 8 + n bytes.
      const big = await c.req({ op: 'subscribe', topic: t, presence: true, info: { s: 'i'.repeat(1017) } });
      check('presence info of 1025 encoded bytes: message_too_big', isError(big, 'message_too_big'), show(big));
      const fine = await c.req({ op: 'subscribe', topic: t, presence: true, info: { s: 'i'.repeat(1016) } });
      check('presence info of 1024 encoded bytes: accepted (the failed subscribe changed nothing)',
        fine.ok === true, show(fine));
      await c.close();
    });
    // One byte over --max-message: close 1009; others are unaffected.
    const over = JSON.stringify({ id: 10, op: 'publish', topic: t, data: 'z'.repeat(pad + 1) });
    a.send(over);
    const closed = await Promise.race([a.closed, sleep(T).then(() => null)]);
    check(`a ${over.length}-byte message (over --max-message): close 1009`, closed && closed.code === 1009,
      closed ? `closed with ${closed.code}` : `still open after ${T} ms`);
    const c = await open('after-1009');
    await c.must({ op: 'publish', topic: t, data: 'after' });
    const m = await b.next((x) => x.type === 'message' && x.topic === t && x.data === 'after', T, 'a later publication');
    check('after the 1009 close other clients are served and subscribed ones still receive',
      m.offset === 3, show(m));
    await b.close();
    await c.close();
  });
}

async function maxSubscriptions() {
  await group('--max-subscriptions 2', async () => {
    const a = await open('subs');
    const [t1, t2, t3] = [fresh('s'), fresh('s'), fresh('s')];
    const bad = await a.req({ op: 'subscribe', topic: 'bad topic' });
    check('a failed subscribe (bad_topic) does not count', isError(bad, 'bad_topic'), show(bad));
    await a.must({ op: 'subscribe', topic: t1 });
    await a.must({ op: 'subscribe', topic: t2 });
    const r = await a.req({ op: 'subscribe', topic: t3 });
    check('a third subscription: too_many_subscriptions', isError(r, 'too_many_subscriptions'), show(r));
    await a.must({ op: 'publish', topic: t3, data: 1 });
    await a.sync();
    check('... and it did not subscribe', a.msgs(t3).length === 0, show(a.msgs(t3)));
    await a.must({ op: 'unsubscribe', topic: t1 });
    const r2 = await a.req({ op: 'subscribe', topic: t3 });
    check('after an unsubscribe there is room again', r2.ok === true && r2.offset === 1, show(r2));
    await a.close();
  });
}

// 4 publisher connections x 500 publications to one topic; 3 subscribers see
// all 2000, in offset order with no gap, each publisher's in its order.
async function ordering() {
  await group('ordering under concurrent publishers', async () => {
    const t = fresh('order');
    const P = 4;
    const N = 500;
    const subs = await Promise.all([0, 1, 2].map((i) => open(`osub${i}`)));
    for (const s of subs) await s.must({ op: 'subscribe', topic: t });
    const pubs = await Promise.all(Array.from({ length: P }, (_, i) => open(`opub${i}`)));
    const t0 = Date.now();
    pubs.forEach((p, k) => {
      for (let i = 0; i < N; i++) p.send({ id: i, op: 'publish', topic: t, data: { p: k, i } });
    });
    await waitFor(() => pubs.every((p) => p.log.filter((m) => m.type === 'reply').length >= N), 30_000,
      `${P * N} publish replies`);
    const acks = new Map(); // offset -> [publisher, i]
    let ackProblems = [];
    pubs.forEach((p, k) => {
      const rs = p.log.filter((m) => m.type === 'reply');
      let last = 0;
      rs.forEach((r, i) => {
        if (r.ok !== true || r.id !== i || !(r.offset > last)) ackProblems.push(`pub${k} reply #${i}: ${show(r)}`);
        last = r.offset;
        acks.set(r.offset, [k, i]);
      });
    });
    check(`${P} x ${N} publish replies: ok, in request order, offsets increasing`, ackProblems.length === 0,
      ackProblems.slice(0, 3).join('; '));
    const all = [...acks.keys()].sort((x, y) => x - y);
    check(`${P * N} distinct offsets 1..${P * N}`,
      all.length === P * N && all[0] === 1 && all[all.length - 1] === P * N, `${all.length} offsets, ${all[0]}..${all[all.length - 1]}`);
    await waitFor(() => subs.every((s) => s.msgs(t).length >= P * N), 30_000,
      `every subscriber to get ${P * N} messages (got ${subs.map((s) => s.msgs(t).length)})`).catch((e) => {
      notOk('every subscriber got everything', e.message);
    });
    console.log(`# ${P * N} publications x ${subs.length} subscribers in ${Date.now() - t0} ms`);
    subs.forEach((s, j) => {
      const ms = s.msgs(t);
      const g = gapOrDisorder(ms, 1);
      check(`subscriber ${j}: ${ms.length} messages, offsets 1..${P * N} strictly in order, no gap`,
        ms.length === P * N && !g, g || `${ms.length} messages`);
      const wrong = ms.filter((m) => {
        const a = acks.get(m.offset);
        return !a || m.data.p !== a[0] || m.data.i !== a[1] || m.from !== pubs[a[0]].id || m.topic !== t;
      });
      check(`subscriber ${j}: each message is the publication its offset was acknowledged for`,
        wrong.length === 0, `e.g. ${show(wrong.slice(0, 2))}`);
      const perPub = Array.from({ length: P }, () => -1);
      const back = ms.filter((m) => {
        const bad = m.data.i <= perPub[m.data.p];
        perPub[m.data.p] = m.data.i;
        return bad;
      });
      check(`subscriber ${j}: each publisher's publications in the order it sent them`, back.length === 0,
        show(back.slice(0, 2)));
    });
    for (const c of [...subs, ...pubs]) await c.close();
  });
}

async function resume() {
  await group('resume after a dropped connection', async () => {
    const t = fresh('resume');
    const pub = await open('rpub');
    const s1 = await open('rsub1');
    const r1 = await s1.must({ op: 'subscribe', topic: t });
    for (let i = 0; i < 5; i++) await pub.must({ op: 'publish', topic: t, data: { n: i } });
    await waitFor(() => s1.msgs(t).length === 5, T, '5 live messages');
    const last = s1.msgs(t)[4].offset;
    const epoch = r1.epoch;
    await s1.terminate(); // the network drops
    const missed = [];
    for (let i = 5; i < 35; i++) missed.push(await pub.must({ op: 'publish', topic: t, data: { n: i } }));
    const s2 = await open('rsub2');
    const r2 = await s2.req({ op: 'subscribe', topic: t, since: { offset: last, epoch } });
    check('resume: recovered true, the current position',
      r2.ok === true && r2.recovered === true && r2.offset === last + 30 && r2.epoch === epoch && !('reason' in r2),
      show(r2));
    await waitFor(() => s2.msgs(t).length >= 30, T, 'the 30 missed publications');
    const got = s2.msgs(t).slice();
    const idxReply = s2.log.indexOf(r2);
    check('the missed publications come right after the reply',
      s2.log.indexOf(got[0]) > idxReply, 'a message arrived before the subscribe reply');
    check('exactly the 30 missed ones, in order, same data',
      got.length === 30 && !gapOrDisorder(got, last + 1) && got.every((m, i) => m.data.n === i + 5),
      `${got.length}: ${show(offsets(got))}`);
    for (let i = 35; i < 40; i++) await pub.must({ op: 'publish', topic: t, data: { n: i } });
    await waitFor(() => s2.msgs(t).length >= 35, T, '5 live publications after the resume');
    await s2.sync();
    const g = gapOrDisorder(s2.msgs(t), last + 1);
    check('then live ones, no gap, no duplicate', s2.msgs(t).length === 35 && !g, g || show(offsets(s2.msgs(t))));

    // Publications keep coming while the client resubscribes: still nothing
    // missing, nothing twice.
    const pos = s2.msgs(t)[34].offset;
    await s2.terminate();
    const burst = 150;
    const pubReplies = () => pub.log.filter((m) => m.type === 'reply' && m.id >= 500000 && m.id < 500000 + burst).length;
    const s3 = await open('rsub3');
    const pacing = (async () => {
      for (let i = 0; i < burst; i += 5) {
        for (let j = i; j < i + 5; j++) pub.send({ id: 500000 + j, op: 'publish', topic: t, data: { b: j } });
        await sleep(1);
      }
    })();
    await waitFor(() => pubReplies() >= 20, T, '20 of the burst acknowledged');
    const r3 = await s3.req({ op: 'subscribe', topic: t, since: { offset: pos, epoch } });
    console.log(`# resume during a burst: answered at offset ${r3.offset} of ${pos + burst}`);
    await pacing;
    check('resume during a burst of publications: recovered', r3.ok === true && r3.recovered === true, show(r3));
    await waitFor(() => pubReplies() >= burst, T, 'the whole burst acknowledged');
    const end = pos + burst;
    await waitFor(() => s3.msgs(t).length >= burst, T, `${burst} messages after resuming during the burst`);
    await s3.sync();
    const g3 = gapOrDisorder(s3.msgs(t), pos + 1);
    check(`resume during a burst: offsets ${pos + 1}..${end} exactly once, in order`,
      s3.msgs(t).length === burst && !g3 && s3.msgs(t)[burst - 1].offset === end,
      g3 || `${s3.msgs(t).length} messages`);

    // Nothing missed: recovered, nothing replayed.
    const s4 = await open('rsub4');
    const r4 = await s4.req({ op: 'subscribe', topic: t, since: { offset: end, epoch } });
    await s4.sync();
    check('since = the current position: recovered, nothing replayed',
      r4.recovered === true && r4.offset === end && s4.msgs(t).length === 0, `${show(r4)} ${s4.msgs(t).length}`);
    // A position in the future of the same epoch.
    const s5 = await open('rsub5');
    const r5 = await s5.req({ op: 'subscribe', topic: t, since: { offset: end + 5, epoch } });
    check('since beyond the current offset: recovered false, offset_ahead',
      r5.ok === true && r5.recovered === false && r5.reason === 'offset_ahead' && r5.offset === end, show(r5));
    // Another epoch.
    const s6 = await open('rsub6');
    const r6 = await s6.req({ op: 'subscribe', topic: t, since: { offset: 3, epoch: `${epoch}x` } });
    check('since with another epoch: recovered false, epoch_changed',
      r6.ok === true && r6.recovered === false && r6.reason === 'epoch_changed' && r6.epoch === epoch, show(r6));
    // A topic that never existed: its epoch is new.
    const r7 = await s6.req({ op: 'subscribe', topic: fresh('never'), since: { offset: 3, epoch } });
    check('since on a topic that never existed: epoch_changed, offset 0',
      r7.ok === true && r7.recovered === false && r7.reason === 'epoch_changed' && r7.offset === 0, show(r7));
    await s4.sync();
    await s5.sync();
    await s6.sync();
    check('recovered false: nothing of the past is sent',
      s5.msgs(t).length === 0 && s6.msgs(t).length === 0, `${s5.msgs(t).length} ${s6.msgs(t).length}`);
    await pub.must({ op: 'publish', topic: t, data: 'live' });
    for (const [s, name] of [[s4, 'recovered'], [s5, 'offset_ahead'], [s6, 'epoch_changed']]) {
      const m = await s.next((x) => x.type === 'message' && x.topic === t, T, 'a live publication');
      check(`${name}: the subscription is active (live publication ${end + 1})`, m.offset === end + 1, show(m));
    }
    for (const c of [pub, s4, s5, s6]) await c.close();
  });
}

async function history() {
  await group('history', async () => {
    const t = fresh('hist');
    const a = await open('hpub');
    const live = await open('hlive');
    await live.must({ op: 'subscribe', topic: t });
    let epoch;
    for (let i = 1; i <= 10; i++) epoch = (await a.must({ op: 'publish', topic: t, data: { n: i } })).epoch;
    await waitFor(() => live.msgs(t).length === 10, T, '10 live messages');
    const h = await a.req({ op: 'history', topic: t });
    check('history: the 10 publications oldest first, complete, current position',
      h.ok === true && h.offset === 10 && h.epoch === epoch && h.complete === true &&
        deepEqual(offsets(h.publications || []), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), show(h));
    check('history publications are exactly the delivered message events',
      deepEqual(h.publications, live.msgs(t)), `${show(h.publications && h.publications[0])} vs ${show(live.msgs(t)[0])}`);
    const h3 = await a.req({ op: 'history', topic: t, limit: 3 });
    check('history limit 3: the latest 3, oldest first, complete (the others are still retained)',
      h3.ok === true && deepEqual(offsets(h3.publications || []), [8, 9, 10]) && h3.complete === true, show(h3));
    const hs = await a.req({ op: 'history', topic: t, since: { offset: 2, epoch }, limit: 3 });
    check('history since 2 limit 3: 3, 4, 5, complete',
      hs.ok === true && deepEqual(offsets(hs.publications || []), [3, 4, 5]) && hs.complete === true, show(hs));
    const hp = await a.req({ op: 'history', topic: t, since: { offset: 5, epoch } });
    check('history since 5: 6..10', hp.ok === true && deepEqual(offsets(hp.publications || []), [6, 7, 8, 9, 10]),
      show(hp));
    const he = await a.req({ op: 'history', topic: t, since: { offset: 10, epoch } });
    check('history since the current offset: empty, complete',
      he.ok === true && deepEqual(he.publications, []) && he.complete === true && he.offset === 10, show(he));
    const hx = await a.req({ op: 'history', topic: t, since: { offset: 2, epoch: `${epoch}x` } });
    check('history since another epoch: epoch_changed error', isError(hx, 'epoch_changed'), show(hx));
    const hl = await a.req({ op: 'history', topic: t, limit: 1000 });
    check('history limit 1000 is allowed', hl.ok === true && hl.publications.length === 10, show(hl));
    const hn = await a.req({ op: 'history', topic: fresh('empty') });
    check('history of a topic without publications: empty, offset 0, complete',
      hn.ok === true && deepEqual(hn.publications, []) && hn.offset === 0 && hn.complete === true, show(hn));

    // subscribe with "history".
    const b = await open('hsub');
    const r = await b.req({ op: 'subscribe', topic: t, history: 3 });
    check('subscribe history 3: reply with the current position', r.ok === true && r.offset === 10, show(r));
    await waitFor(() => b.msgs(t).length >= 3, T, '3 history messages');
    await a.must({ op: 'publish', topic: t, data: { n: 11 } });
    await waitFor(() => b.msgs(t).length >= 4, T, 'the live publication');
    await b.sync();
    check('subscribe history 3: 8, 9, 10 after the reply, then live 11, nothing twice',
      deepEqual(offsets(b.msgs(t)), [8, 9, 10, 11]) && b.log.indexOf(r) < b.log.indexOf(b.msgs(t)[0]),
      show(offsets(b.msgs(t))));
    check('history messages are the delivered ones', deepEqual(b.msgs(t).slice(0, 3), live.msgs(t).slice(7, 10)),
      show(b.msgs(t)[0]));
    const c = await open('hsub0');
    await c.must({ op: 'subscribe', topic: t, history: 0 });
    const d = await open('hsub50');
    await d.must({ op: 'subscribe', topic: t, history: 50 });
    await waitFor(() => d.msgs(t).length >= 11, T, 'all 11 retained');
    await c.sync();
    await d.sync();
    check('subscribe history 0: nothing of the past', c.msgs(t).length === 0, show(c.msgs(t)));
    check('subscribe history 50 with 11 retained: all 11', deepEqual(offsets(d.msgs(t)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
      show(offsets(d.msgs(t))));
    for (const x of [a, live, b, c, d]) await x.close();
  });
}

async function presence() {
  await group('presence', async () => {
    const t = fresh('room');
    const p1 = await open('ana');
    const p2 = await open('bo');
    const p3 = await open('cy');
    const events = (c) => c.log.filter((m) => (m.type === 'join' || m.type === 'leave') && m.topic === t);
    await p1.must({ op: 'subscribe', topic: t, presence: true, info: { name: 'ana' } });
    await p2.must({ op: 'subscribe', topic: t, presence: true, info: { name: 'bo', tags: [1, 2] } });
    const j2 = await p1.next((m) => m.type === 'join' && m.topic === t, T, "bo's join");
    check('a presence subscriber gets the join of another: client, user "", info',
      j2.client === p2.id && j2.user === '' && deepEqual(j2.info, { name: 'bo', tags: [1, 2] }), show(j2));
    await p3.must({ op: 'subscribe', topic: t }); // no presence, no info
    const j3 = await p1.next((m) => m.type === 'join' && m.topic === t, T, "cy's join");
    const j3b = await p2.next((m) => m.type === 'join' && m.topic === t, T, "cy's join (to bo)");
    check('both presence subscribers get the join of a third', j3.client === p3.id && j3b.client === p3.id,
      `${show(j3)} ${show(j3b)}`);
    const q = await p3.req({ op: 'presence', topic: t });
    const byId = Object.fromEntries((q.presence || []).map((e) => [e.client, e]));
    check('presence query: all three, with user and info',
      q.ok === true && q.presence.length === 3 && deepEqual(byId[p1.id], { client: p1.id, user: '', info: { name: 'ana' } }) &&
        deepEqual(byId[p2.id], { client: p2.id, user: '', info: { name: 'bo', tags: [1, 2] } }), show(q));
    check('presence query: info absent for a client that set none',
      byId[p3.id] && byId[p3.id].user === '' && !('info' in byId[p3.id]), show(byId[p3.id]));
    // info is any JSON: scalars too.
    const sc = await open('scalars');
    const t2 = fresh('room');
    for (const info of ['ana', 42, true, [1, 'x']]) {
      const r = await sc.req({ op: 'subscribe', topic: t2, info });
      const pq = r.ok ? await sc.req({ op: 'presence', topic: t2 }) : null;
      check(`presence info ${show(info)} (any JSON): subscribe ok, shown by presence`,
        r.ok === true && pq && pq.ok === true && pq.presence.length === 1 && deepEqual(pq.presence[0].info, info),
        `${show(r)} ${show(pq)}`);
      if (r.ok) await sc.must({ op: 'unsubscribe', topic: t2 });
    }
    await sc.close();
    const outsider = await open('outsider');
    const q2 = await outsider.req({ op: 'presence', topic: t });
    check('presence query from a connection not subscribed', q2.ok === true && q2.presence.length === 3, show(q2));

    await p2.must({ op: 'unsubscribe', topic: t });
    const l2 = await p1.next((m) => m.type === 'leave' && m.topic === t, T, "bo's leave");
    check('unsubscribe: a leave event with client and user', l2.client === p2.id && l2.user === '', show(l2));
    await p3.close();
    const l3 = await p1.next((m) => m.type === 'leave' && m.topic === t, T, "cy's leave");
    check('disconnect (close): a leave event', l3.client === p3.id, show(l3));
    const p4 = await open('dee');
    await p4.must({ op: 'subscribe', topic: t, presence: true });
    const j4 = await p1.next((m) => m.type === 'join' && m.topic === t, T, "dee's join");
    await p4.terminate();
    const l4 = await p1.next((m) => m.type === 'leave' && m.topic === t, T, "dee's leave");
    check('a dropped TCP connection: join then leave', j4.client === p4.id && l4.client === p4.id, `${show(j4)} ${show(l4)}`);
    await p1.sync();
    await p2.sync();
    const e1 = events(p1).map((m) => `${m.type} ${m.client}`);
    check('ana saw exactly: join bo, join cy, leave bo, leave cy, join dee, leave dee (never her own)',
      deepEqual(e1, [`join ${p2.id}`, `join ${p3.id}`, `leave ${p2.id}`, `leave ${p3.id}`, `join ${p4.id}`, `leave ${p4.id}`]),
      show(e1));
    const e2 = events(p2).map((m) => `${m.type} ${m.client}`);
    check('bo saw only join cy (not ana, who was there before; not his own; nothing after leaving)',
      deepEqual(e2, [`join ${p3.id}`]), show(e2));
    check('cy (presence false) got no join/leave events', events(p3).length === 0, show(events(p3)));
    const q3 = await outsider.req({ op: 'presence', topic: t });
    check('presence query after leaves: only ana', q3.ok === true && deepEqual((q3.presence || []).map((e) => e.client), [p1.id]),
      show(q3));
    const qb = await outsider.req({ op: 'presence', topic: 'bad topic' });
    check('presence query with a bad topic: bad_topic', isError(qb, 'bad_topic'), show(qb));
    for (const c of [p1, p2, outsider]) await c.close();
  });
}

// ---------------------------------------------------------------- small (--history-size 5)

async function small() {
  await group('--history-size 5', async () => {
    const t = fresh('small');
    const a = await open('spub');
    const s = await open('ssub');
    const r0 = await s.must({ op: 'subscribe', topic: t });
    const epoch = r0.epoch;
    for (let i = 1; i <= 10; i++) await a.must({ op: 'publish', topic: t, data: i });
    const h = await a.req({ op: 'history', topic: t });
    check('history: the 5 retained (6..10), complete false',
      h.ok === true && deepEqual(offsets(h.publications || []), [6, 7, 8, 9, 10]) && h.complete === false, show(h));
    const hs5 = await a.req({ op: 'history', topic: t, since: { offset: 5, epoch } });
    check('history since 5: 6..10, complete true',
      hs5.ok === true && deepEqual(offsets(hs5.publications || []), [6, 7, 8, 9, 10]) && hs5.complete === true, show(hs5));
    const hs2 = await a.req({ op: 'history', topic: t, since: { offset: 2, epoch } });
    check('history since 2: 6..10, complete false (3..5 are gone)',
      hs2.ok === true && deepEqual(offsets(hs2.publications || []), [6, 7, 8, 9, 10]) && hs2.complete === false, show(hs2));
    const hs0 = await a.req({ op: 'history', topic: t, since: { offset: 0, epoch }, limit: 2 });
    check('history since 0 limit 2: 6, 7, complete false',
      hs0.ok === true && deepEqual(offsets(hs0.publications || []), [6, 7]) && hs0.complete === false, show(hs0));
    const b = await open('ssub50');
    await b.must({ op: 'subscribe', topic: t, history: 50 });
    await waitFor(() => b.msgs(t).length >= 5, T, '5 history messages');
    await b.sync();
    check('subscribe history 50: capped by the history size (6..10)',
      deepEqual(offsets(b.msgs(t)), [6, 7, 8, 9, 10]), show(offsets(b.msgs(t))));

    // Exactly 5 missed: still recoverable.
    await waitFor(() => s.msgs(t).length === 10, T, '10 live messages');
    await s.terminate();
    for (let i = 11; i <= 15; i++) await a.must({ op: 'publish', topic: t, data: i });
    const s2 = await open('ssub2');
    const r2 = await s2.req({ op: 'subscribe', topic: t, since: { offset: 10, epoch } });
    await waitFor(() => s2.msgs(t).length >= 5, T, 'the 5 missed');
    check('5 missed with history 5: recovered, 11..15',
      r2.recovered === true && deepEqual(offsets(s2.msgs(t)), [11, 12, 13, 14, 15]), `${show(r2)} ${show(offsets(s2.msgs(t)))}`);
    // 6 missed: too old.
    await s2.terminate();
    for (let i = 16; i <= 21; i++) await a.must({ op: 'publish', topic: t, data: i });
    const s3 = await open('ssub3');
    const r3 = await s3.req({ op: 'subscribe', topic: t, since: { offset: 15, epoch } });
    check('6 missed with history 5: recovered false, too_old, current position',
      r3.ok === true && r3.recovered === false && r3.reason === 'too_old' && r3.offset === 21 && r3.epoch === epoch,
      show(r3));
    await s3.sync();
    check('too_old: nothing of the past is sent', s3.msgs(t).length === 0, show(offsets(s3.msgs(t))));
    await a.must({ op: 'publish', topic: t, data: 22 });
    const m = await s3.next((x) => x.type === 'message' && x.topic === t, T, 'a live publication');
    check('too_old: live publications follow', m.offset === 22, show(m));
    for (const c of [a, b, s3]) await c.close();
  });
}

// ---------------------------------------------------------------- ttl (--history-ttl 1)

async function ttl() {
  await group('--history-ttl 1', async () => {
    const a = await open('tpub');
    check('welcome: history_ttl 1', a.welcome.limits && a.welcome.limits.history_ttl === 1, show(a.welcome));
    const t = fresh('ttl');
    const s = await open('tsub');
    const r0 = await s.must({ op: 'subscribe', topic: t });
    for (let i = 1; i <= 3; i++) await a.must({ op: 'publish', topic: t, data: i });
    const gone = fresh('gone'); // no subscriber: the topic ends with its history
    const g1 = await a.must({ op: 'publish', topic: gone, data: 1 });
    const h0 = await a.req({ op: 'history', topic: t });
    check('before the ttl: 3 retained', h0.ok && h0.publications.length === 3, show(h0));
    const t0 = Date.now();
    let h;
    let hg;
    for (;;) {
      h = await a.req({ op: 'history', topic: t });
      hg = await a.req({ op: 'history', topic: gone });
      const empty = (x) => !x.publications || x.publications.length === 0;
      if ((empty(h) && empty(hg)) || Date.now() - t0 > 5000) break;
      await sleep(100);
    }
    check('after the ttl: nothing retained, same position and epoch, complete false',
      h.ok === true && deepEqual(h.publications, []) && h.offset === 3 && h.epoch === r0.epoch && h.complete === false,
      `${show(h)} after ${Date.now() - t0} ms`);
    const s2 = await open('tsub2');
    const r2 = await s2.req({ op: 'subscribe', topic: t, since: { offset: 1, epoch: r0.epoch } });
    check('resume from before the expired ones: too_old', r2.recovered === false && r2.reason === 'too_old', show(r2));
    // The hub may drop topics that ended on a periodic sweep (duplex serve:
    // every second): give it that long before the topic is used again.
    await sleep(1500);
    const g2 = await a.must({ op: 'publish', topic: gone, data: 2 });
    check('a topic with no subscriber and no retained history starts again: offset 1, new epoch',
      g2.offset === 1 && g2.epoch !== g1.epoch, `before ${show(g1)}, now ${show(g2)}`);
    const r3 = await s2.req({ op: 'subscribe', topic: gone, since: { offset: 1, epoch: g1.epoch } });
    check('resume on that topic from the old epoch: epoch_changed',
      r3.recovered === false && r3.reason === 'epoch_changed', show(r3));
    for (const c of [a, s, s2]) await c.close();
  });
}

// ---------------------------------------------------------------- threads (--threads 2)

async function threads() {
  await group('--threads 2', async () => {
    const t = fresh('mt');
    const conns = await Promise.all(Array.from({ length: 40 }, (_, i) => open(`mt${i}`)));
    const subs = conns.slice(0, 30);
    const pubs = conns.slice(30);
    const watchers = subs.slice(0, 10);
    // The 10 presence subscribers first, then the 20 others.
    await Promise.all(watchers.map((s, i) => s.must({ op: 'subscribe', topic: t, presence: true, info: { i } })));
    await Promise.all(subs.slice(10).map((s, i) => s.must({ op: 'subscribe', topic: t, info: { i: i + 10 } })));
    ok('40 connections, 30 subscribed');
    const q = await pubs[0].req({ op: 'presence', topic: t });
    check('presence query lists all 30 subscribers, whichever loop they are on',
      q.ok === true && deepEqual(new Set(q.presence.map((e) => e.client)), new Set(subs.map((s) => s.id))),
      show(q && q.presence && q.presence.length));
    // Joins of subscribers 10..29 reach the 10 watchers.
    const joinsOf = (c) => new Set(c.log.filter((m) => m.type === 'join' && m.topic === t).map((m) => m.client));
    const later = subs.slice(10);
    await waitFor(() => watchers.every((w) => later.every((s) => joinsOf(w).has(s.id))), T,
      'the joins of later subscribers').catch(() => {});
    const missing = watchers.map((w) => later.filter((s) => !joinsOf(w).has(s.id)).length);
    check('every presence subscriber got the join of each of the 20 later subscribers (across loops)',
      missing.every((n) => n === 0), `missing joins per watcher: ${missing}`);
    const N = 50;
    pubs.forEach((p, k) => {
      for (let i = 0; i < N; i++) p.send({ id: i, op: 'publish', topic: t, data: { p: k, i } });
    });
    const total = pubs.length * N;
    await waitFor(() => pubs.every((p) => p.log.filter((m) => m.type === 'reply' && m.ok === true).length >= N + (p === pubs[0] ? 1 : 0)),
      30_000, 'the publish replies');
    await waitFor(() => subs.every((s) => s.msgs(t).length >= total), 30_000,
      `${total} messages at every subscriber`).catch((e) => notOk('every subscriber got every publication', e.message));
    const bad = subs.map((s, j) => [j, gapOrDisorder(s.msgs(t), 1), s.msgs(t).length]).filter(([, g, n]) => g || n !== total);
    check(`${pubs.length} publishers x ${N}: all 30 subscribers got 1..${total} in order, no gap`, bad.length === 0,
      show(bad.slice(0, 3)));
    const ref = JSON.stringify(subs[0].msgs(t));
    check('every subscriber got the same messages', subs.every((s) => JSON.stringify(s.msgs(t)) === ref),
      'subscribers disagree');
    // Resume across loops: 8 subscribers drop, 20 publications, 8 new
    // connections (on either loop) resume.
    const dropped = subs.slice(20, 28);
    const epoch = (await pubs[1].must({ op: 'history', topic: t, limit: 1 })).epoch;
    await Promise.all(dropped.map((s) => s.terminate()));
    for (let i = 0; i < 20; i++) await pubs[i % pubs.length].must({ op: 'publish', topic: t, data: { late: i } });
    const again = await Promise.all(dropped.map((_, i) => open(`mt-again${i}`)));
    const rs = await Promise.all(again.map((c) => c.req({ op: 'subscribe', topic: t, since: { offset: total, epoch } })));
    check('8 resumptions on new connections: all recovered', rs.every((r) => r.recovered === true), show(rs[0]));
    await waitFor(() => again.every((c) => c.msgs(t).length >= 20), T, 'the 20 missed at each').catch(() => {});
    await Promise.all(again.map((c) => c.sync()));
    const badR = again.filter((c) => c.msgs(t).length !== 20 || gapOrDisorder(c.msgs(t), total + 1));
    check('... each got exactly the 20 missed, in order', badR.length === 0,
      show(badR.map((c) => offsets(c.msgs(t)).slice(0, 5))));
    // Leaves from both loops reach every watcher.
    await waitFor(() => watchers.every((w) => dropped.every((d) => w.log.some((m) => m.type === 'leave' && m.client === d.id))),
      T, 'the leaves of the 8 dropped').catch(() => {});
    const noLeave = watchers.filter((w) => !dropped.every((d) => w.log.some((m) => m.type === 'leave' && m.client === d.id)));
    check('the leaves of the dropped subscribers reach every presence subscriber', noLeave.length === 0,
      `${noLeave.length} watchers missed some`);
    // Resume while publications keep coming from connections on both loops:
    // still every offset exactly once, in order.
    const cur = total + 20;
    const burst = 100;
    const bpubs = pubs.slice(0, 4);
    const acked = () => bpubs.reduce((n, p) =>
      n + p.log.filter((m) => m.type === 'reply' && m.id >= 700000 && m.id < 700000 + burst).length, 0);
    const late = await Promise.all(Array.from({ length: 8 }, (_, i) => open(`mt-late${i}`)));
    // Paced (5 per publisher every 2 ms) so that the resumptions land in
    // the middle of it.
    const pacing = (async () => {
      for (let i = 0; i < burst; i += 5) {
        bpubs.forEach((p, k) => {
          for (let j = i; j < i + 5; j++) p.send({ id: 700000 + j, op: 'publish', topic: t, data: { burst: k, i: j } });
        });
        await sleep(2);
      }
    })();
    await waitFor(() => acked() >= 40, T, '40 of the burst acknowledged');
    const ackedBefore = acked();
    const lr = await Promise.all(late.map((c) => c.req({ op: 'subscribe', topic: t, since: { offset: cur, epoch } })));
    console.log(`# burst: ${ackedBefore} of ${bpubs.length * burst} acknowledged when the resumptions were sent, ` +
      `${acked()} when they were answered (replies at offsets ${lr.map((r) => r.offset)})`);
    check('8 resumptions during a burst from both loops: all recovered', lr.every((r) => r.recovered === true),
      show(lr.find((r) => r.recovered !== true)));
    await pacing;
    await waitFor(() => acked() >= bpubs.length * burst, 30_000, 'the whole burst acknowledged');
    const end = cur + bpubs.length * burst;
    const everyone = [...late, ...again, ...subs.slice(0, 20)];
    await waitFor(() => everyone.every((c) => c.msgs(t).length && c.msgs(t)[c.msgs(t).length - 1].offset >= end), 30_000,
      `offset ${end} at every subscriber`).catch(() => {});
    const badL = late.filter((c) => gapOrDisorder(c.msgs(t), cur + 1) || c.msgs(t).length !== end - cur);
    check(`... each got ${cur + 1}..${end} exactly once, in order`, badL.length === 0,
      show(badL.map((c) => [c.msgs(t).length, gapOrDisorder(c.msgs(t), cur + 1)])));
    const badS = [...again, ...subs.slice(0, 20)].filter((c) => gapOrDisorder(c.msgs(t)) || c.msgs(t)[c.msgs(t).length - 1].offset !== end);
    check('... and the live subscribers on both loops got the burst in order, no gap', badS.length === 0,
      show(badS.map((c) => gapOrDisorder(c.msgs(t)))));

    // During another paced burst: 8 plain subscribes (live from the reply's
    // offset on: the first message is offset + 1, none before the reply) and
    // 8 unsubscribes (nothing after the unsubscribe reply).
    const joiners = await Promise.all(Array.from({ length: 8 }, (_, i) => open(`mt-join${i}`)));
    const leavers = [...late];
    const start = end;
    const acked2 = () => bpubs.reduce((n, p) =>
      n + p.log.filter((m) => m.type === 'reply' && m.id >= 800000 && m.id < 800000 + burst).length, 0);
    const pacing2 = (async () => {
      for (let i = 0; i < burst; i += 5) {
        bpubs.forEach((p, k) => {
          for (let j = i; j < i + 5; j++) p.send({ id: 800000 + j, op: 'publish', topic: t, data: { again: k, i: j } });
        });
        await sleep(2);
      }
    })();
    await waitFor(() => acked2() >= 40, T, '40 of the second burst acknowledged');
    const [jr, ur] = await Promise.all([
      Promise.all(joiners.map((c) => c.req({ op: 'subscribe', topic: t }))),
      Promise.all(leavers.map((c) => c.req({ op: 'unsubscribe', topic: t }))),
    ]);
    await pacing2;
    await waitFor(() => acked2() >= bpubs.length * burst, 30_000, 'the second burst acknowledged');
    const end2 = start + bpubs.length * burst;
    console.log(`# second burst: subscribes answered at offsets ${jr.map((r) => r.offset)}`);
    await waitFor(() => joiners.every((c) => c.msgs(t).length && c.msgs(t)[c.msgs(t).length - 1].offset >= end2), 30_000,
      `offset ${end2} at every new subscriber`).catch(() => {});
    await Promise.all([...joiners, ...leavers].map((c) => c.sync()));
    const badJ = joiners.map((c, i) => {
      const ms = c.msgs(t);
      const g = gapOrDisorder(ms, jr[i].offset + 1);
      const before = ms.length && c.log.indexOf(ms[0]) < c.log.indexOf(jr[i]);
      return g || before || ms[ms.length - 1].offset !== end2 ? `#${i}: reply ${jr[i].offset}, ${g || (before ? 'a message before the reply' : `last ${ms[ms.length - 1].offset}`)}` : null;
    }).filter(Boolean);
    check('subscribe during a burst from both loops: live from the reply offset + 1 on, no gap, nothing before the reply',
      jr.every((r) => r.ok === true) && badJ.length === 0, badJ.slice(0, 3).join('; '));
    const badU = leavers.map((c, i) => {
      const ms = c.msgs(t);
      const after = ms.filter((m) => c.log.indexOf(m) > c.log.indexOf(ur[i]));
      const g = gapOrDisorder(ms, cur + 1);
      return ur[i].ok !== true || after.length || g ? `#${i}: ${show(ur[i], 80)} ${after.length} after the reply ${g || ''}` : null;
    }).filter(Boolean);
    check('unsubscribe during a burst from both loops: no message after the reply, none missing before it',
      badU.length === 0, badU.slice(0, 3).join('; '));
    for (const c of [...conns, ...again, ...late, ...joiners]) if (!c.closeInfo) await c.close();
  });
}

// ---------------------------------------------------------------- sigterm

async function sigterm() {
  const t = fresh('bye');
  const cs = await Promise.all([0, 1, 2].map((i) => open(`bye${i}`)));
  await cs[0].must({ op: 'subscribe', topic: t, presence: true });
  await cs[1].must({ op: 'subscribe', topic: t });
  writeFileSync(process.env.DX_READY, 'ready\n');
  const infos = await Promise.all(cs.map((c) => Promise.race([c.closed, sleep(15_000).then(() => null)])));
  infos.forEach((info, i) => check(`client ${i} closed by the server with 1001`, info && info.code === 1001,
    info ? `close ${info.code}` : 'not closed within 15 s'));
}

const all = {
  main: [welcome, subprotocol, ids, noId, subscribeState, skipSelf, payloads, malformed, abuse, sizes,
    maxSubscriptions, ordering, resume, history, presence],
  small: [small],
  ttl: [ttl],
  threads: [threads],
  sigterm: [sigterm],
};
for (const s of sections) {
  if (!all[s]) {
    notOk(`section ${s}`, 'unknown section');
    continue;
  }
  setTag(sections.length > 1 ? s : '');
  for (const f of all[s]) await f();
}
finish();

// Interop: Node's `ws` client with permessage-deflate against `duplex echo
// --deflate`, over a matrix of client offers (window bits, no context
// takeover, compression levels).
//   node deflate_node_client.mjs PORT [TAG]
// Checks that the offer is accepted, that what the server answers keeps to
// RFC 7692 (no parameter the client did not allow), that messages of every
// kind round-trip (long-distance repeats beyond small windows, large
// compressible and incompressible ones, many small similar ones, fragmented
// compressed ones, uncompressed ones in between), and that the server's
// replies really are compressed on the wire. Prints "ok - ..." /
// "not ok - ..."; exits 1 if any failed.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

const port = Number(process.argv[2]);
const tag = process.argv[3] ? `[${process.argv[3]}] ` : '';
if (!port) {
  console.error('usage: node deflate_node_client.mjs PORT [TAG]');
  process.exit(2);
}
let passed = 0;
let failed = 0;
const ok = (name) => {
  passed++;
  console.log(`ok - ${tag}${name}`);
};
const notOk = (name, why) => {
  failed++;
  console.log(`not ok - ${tag}${name}: ${why}`);
};
const check = (name, cond, why) => (cond ? ok(name) : notOk(name, why));

const watchdog = setTimeout(() => {
  notOk('watchdog', 'did not finish within 100 s');
  process.exit(1);
}, 100_000);

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

// Parse "permessage-deflate; a; b=1" into { a: true, b: '1' } (first extension).
function params(header) {
  const out = {};
  if (!header) return null;
  const [name, ...ps] = header.split(',')[0].split(';').map((s) => s.trim());
  if (name !== 'permessage-deflate') return null;
  for (const p of ps) {
    const [k, v] = p.split('=').map((s) => s.trim());
    out[k] = v === undefined ? true : v.replace(/^"|"$/g, '');
  }
  return out;
}

function open(url, pmd) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: pmd, maxPayload: 64 << 20 });
      let response = null;
      ws.once('upgrade', (res) => {
        response = res.headers['sec-websocket-extensions'] || '';
      });
      ws.once('open', () => resolve({ ws, response }));
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) => reject(new Error(`unexpected HTTP ${res.statusCode}`)));
    }),
    10_000,
    `open ${url}`,
  );
}

function messages(ws) {
  const queue = [];
  const waiters = [];
  let closedWith = null;
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    if (waiters.length) waiters.shift().resolve(m);
    else queue.push(m);
  });
  const fail = (err) => {
    while (waiters.length) waiters.shift().reject(err);
  };
  ws.on('close', (code, reason) => {
    closedWith = code;
    fail(new Error(`connection closed (code ${code} ${reason})`));
  });
  ws.on('error', (err) => fail(err));
  return (ms = 10_000) =>
    withTimeout(
      new Promise((resolve, reject) => {
        if (queue.length) resolve(queue.shift());
        else if (closedWith !== null) reject(new Error(`connection closed (code ${closedWith})`));
        else waiters.push({ resolve, reject });
      }),
      ms,
      'a message',
    );
}

// Text whose repeats are `dist` bytes apart: a compressor with a larger
// window than the receiver's inflater produces "distance too far back".
function farRepeats(dist, total) {
  const block = randomBytes(Math.ceil(dist / 2)).toString('hex').slice(0, dist);
  return block.repeat(Math.ceil(total / dist)).slice(0, total);
}

const OFFERS = [
  ['default offer', {}],
  ['threshold 0 (every message compressed)', { threshold: 0 }],
  ['server_no_context_takeover + client_no_context_takeover',
    { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true }],
  ['server_max_window_bits=10', { threshold: 0, serverMaxWindowBits: 10 }],
  ['client_max_window_bits=10', { threshold: 0, clientMaxWindowBits: 10 }],
  ['both windows 9, server_no_context_takeover',
    { threshold: 0, serverMaxWindowBits: 9, clientMaxWindowBits: 9, serverNoContextTakeover: true }],
  ['zlib level 9 memLevel 9', { threshold: 0, zlibDeflateOptions: { level: 9, memLevel: 9 } }],
];

async function run(label, pmd) {
  const t = (name) => `${label}: ${name}`;
  let ws;
  let response;
  try {
    ({ ws, response } = await open(`ws://127.0.0.1:${port}/deflate`, pmd));
  } catch (e) {
    notOk(t('connect'), e.message);
    return;
  }
  const p = params(response);
  check(t(`permessage-deflate accepted ("${response}")`), p !== null, `Sec-WebSocket-Extensions: ${response}`);
  if (!p) {
    ws.terminate();
    return;
  }
  // RFC 7692 7.1.2.2: client_max_window_bits only if the client offered it,
  // and no larger than offered; server_max_window_bits no larger than offered.
  if (pmd.clientMaxWindowBits !== undefined || p.client_max_window_bits !== undefined) {
    const offered = pmd.clientMaxWindowBits === undefined ? 15 : pmd.clientMaxWindowBits;
    const got = p.client_max_window_bits === undefined ? offered : Number(p.client_max_window_bits);
    check(t('client_max_window_bits within the offer'), got >= 8 && got <= offered,
      `offered ${offered}, answered ${p.client_max_window_bits}`);
  }
  if (pmd.serverMaxWindowBits !== undefined) {
    const got = p.server_max_window_bits === undefined ? 15 : Number(p.server_max_window_bits);
    check(t('server_max_window_bits within the offer'), got <= pmd.serverMaxWindowBits,
      `offered ${pmd.serverMaxWindowBits}, answered ${p.server_max_window_bits}`);
  }
  if (pmd.serverNoContextTakeover)
    check(t('server_no_context_takeover echoed'), p.server_no_context_takeover === true, response);

  const next = messages(ws);
  const sock = ws._socket;
  // After the connection drops, report that once and skip the rest.
  let dead = null;
  ws.on('close', (code, reason) => {
    dead = `connection closed (code ${code} ${reason})`;
  });
  const alive = (name) => {
    if (dead === null) return true;
    notOk(t(`${name} (and the rest of this offer's checks, skipped)`), dead);
    return false;
  };
  const echo = async (name, data, opts = {}, ms = 15_000) => {
    if (dead !== null) return false;
    try {
      ws.send(data, opts);
      const m = await next(ms);
      const same = Buffer.isBuffer(data) ? m.isBinary && data.equals(m.data) : !m.isBinary && m.data.toString() === data;
      check(t(name), same, `got ${m.isBinary ? 'binary' : 'text'} of ${m.data.length} bytes, sent ${data.length}`);
      return same;
    } catch (e) {
      notOk(t(name), e.message);
      return false;
    }
  };

  // Repeats farther apart than a 2^9..2^12 window, and than 2^15 across messages.
  await echo('text with repeats 600 bytes apart', farRepeats(600, 100_000));
  await echo('text with repeats 5000 bytes apart', farRepeats(5000, 300_000));
  await echo('text with repeats 20000 bytes apart', farRepeats(20000, 400_000));
  const same = farRepeats(3000, 30_000);
  await echo('the same 30 KB message again (context takeover)', same);
  await echo('... and again', same);

  if (!alive('far repeats')) return;
  // Large compressible text: the echo must arrive compressed.
  const line = 'The quick brown fox jumps over the lazy dog — 😀 ✓ ';
  const big = line.repeat(Math.ceil((4 << 20) / Buffer.byteLength(line)));
  const before = sock.bytesRead;
  if (await echo('4 MiB compressible text', big, {}, 30_000)) {
    const wire = sock.bytesRead - before;
    check(t('the server compressed its 4 MiB echo'), wire < (1 << 20),
      `${wire} bytes read for ${Buffer.byteLength(big)} bytes of text`);
  }
  await echo('4 MiB random binary (incompressible)', randomBytes(4 << 20), {}, 30_000);

  // Small, similar messages: the kind context takeover is for.
  if (!alive('large messages')) return;
  try {
    const n = 200;
    const want = Array.from({ length: n }, (_, i) =>
      JSON.stringify({ type: 'update', id: i, user: 'someone', text: `message number ${i} ✓`, ok: true }));
    for (const m of want) ws.send(m);
    const bad = [];
    for (let i = 0; i < n; i++) {
      const m = await next();
      if (m.data.toString() !== want[i]) bad.push(`#${i}: ${m.data.toString().slice(0, 40)}`);
    }
    check(t('200 small similar messages in order'), bad.length === 0, bad.slice(0, 3).join('; '));
  } catch (e) {
    notOk(t('200 small similar messages'), e.message);
  }

  for (const n of [0, 1, 63, 64, 65, 1000]) await echo(`text of ${n} bytes`, 'a'.repeat(n));
  await echo('empty binary', Buffer.alloc(0));

  // A message sent uncompressed (RSV1 clear) on a compressing connection.
  await echo('an uncompressed message in between', farRepeats(1000, 50_000), { compress: false });

  // A fragmented compressed message (RSV1 on the first frame only).
  if (!alive('small messages')) return;
  try {
    const parts = [farRepeats(7000, 70_000), farRepeats(300, 30_000), 'end ✓'];
    ws.send(parts[0], { fin: false });
    ws.send(parts[1], { fin: false });
    ws.send(parts[2], { fin: true });
    const m = await next();
    check(t('fragmented compressed message (3 frames)'), m.data.toString() === parts.join(''),
      `got ${m.data.length} bytes`);
  } catch (e) {
    notOk(t('fragmented compressed message'), e.message);
  }

  if (!alive('fragmented')) return;
  try {
    const closed = withTimeout(new Promise((resolve) => ws.once('close', (code) => resolve(code))), 10_000, 'close');
    ws.close(4001, 'deflate bye');
    const code = await closed;
    check(t('close 4001 echoed'), code === 4001, `code ${code}`);
  } catch (e) {
    notOk(t('close'), e.message);
  }
}

async function main() {
  for (const [label, pmd] of OFFERS) await run(label, pmd);
  // No offer at all: no extension, plain messages.
  try {
    const { ws, response } = await open(`ws://127.0.0.1:${port}/`, false);
    check('no offer: no extension in the response', !response, `Sec-WebSocket-Extensions: ${response}`);
    const next = messages(ws);
    ws.send('plain');
    check('no offer: echo works', (await next()).data.toString() === 'plain', 'wrong echo');
    ws.close(1000);
  } catch (e) {
    notOk('no offer', e.message);
  }
  clearTimeout(watchdog);
  console.log(`# node ws deflate client: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  notOk('unexpected exception', e.stack || String(e));
  process.exit(1);
});

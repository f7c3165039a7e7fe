// Interop: the Node `ws` client against `duplex echo`.
//   node node_echo_client.mjs PORT [TAG]
// With DX_EXPECT_DEFLATE=1 (server run with --deflate) the offer must be
// accepted.
// Runs the matrix twice: without permessage-deflate and with ws's default
// offer (which the server may accept or decline). Prints "ok - ..." or
// "not ok - ..." per check; exits 1 if any failed.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

const port = Number(process.argv[2]);
const tag = process.argv[3] ? `[${process.argv[3]}] ` : '';
// The server runs with --deflate: an offer must be accepted.
const expectDeflate = process.env.DX_EXPECT_DEFLATE === '1';
if (!port) {
  console.error('usage: node node_echo_client.mjs PORT');
  process.exit(2);
}
const base = `ws://127.0.0.1:${port}`;
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

// The whole run must not hang.
const watchdog = setTimeout(() => {
  notOk('watchdog', 'the client did not finish within 90 s');
  process.exit(1);
}, 90_000);

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

function open(url, options) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) =>
        reject(new Error(`unexpected HTTP ${res.statusCode} to the upgrade`)),
      );
    }),
    10_000,
    `open ${url}`,
  );
}

// A queue of received messages so that each check can await the next one.
function messages(ws) {
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    if (waiters.length) waiters.shift().resolve(m);
    else queue.push(m);
  });
  const fail = (err) => {
    while (waiters.length) waiters.shift().reject(err);
  };
  ws.on('close', (code) => fail(new Error(`connection closed (code ${code})`)));
  ws.on('error', (err) => fail(err));
  return (ms = 10_000) =>
    withTimeout(
      new Promise((resolve, reject) => {
        if (queue.length) resolve(queue.shift());
        else waiters.push({ resolve, reject });
      }),
      ms,
      'a message',
    );
}

async function matrix(label, options) {
  const t = (name) => `${label}: ${name}`;
  let ws;
  try {
    ws = await open(`${base}/echo`, options);
    ok(t('connect') + ` (extensions: "${ws.extensions || ''}")`);
    if (expectDeflate) {
      const offered = options.perMessageDeflate !== false;
      const got = /permessage-deflate/.test(ws.extensions || '');
      check(t(offered ? 'permessage-deflate negotiated' : 'no extension when none offered'), got === offered,
        `extensions "${ws.extensions}"`);
    }
  } catch (e) {
    notOk(t('connect'), e.message);
    return;
  }
  const next = messages(ws);

  // Text with non-ASCII characters, including one outside the BMP.
  try {
    const text = 'héllo wörld 😀 ✓';
    ws.send(text);
    const m = await next();
    check(t('text non-ASCII'), !m.isBinary && m.data.toString('utf8') === text,
      `got ${m.isBinary ? 'binary' : 'text'} ${JSON.stringify(m.data.toString('utf8'))}`);
  } catch (e) {
    notOk(t('text non-ASCII'), e.message);
  }

  // Binary with every byte value.
  try {
    const bin = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) bin[i] = i;
    ws.send(bin);
    const m = await next();
    check(t('binary 0..255'), m.isBinary && Buffer.compare(m.data, bin) === 0,
      `got ${m.isBinary ? 'binary' : 'text'} of ${m.data.length} bytes, differs`);
  } catch (e) {
    notOk(t('binary 0..255'), e.message);
  }

  // Empty messages of both kinds.
  try {
    ws.send('');
    ws.send(Buffer.alloc(0));
    const a = await next();
    const b = await next();
    check(t('empty text and binary'),
      !a.isBinary && a.data.length === 0 && b.isBinary && b.data.length === 0,
      `got ${a.isBinary ? 'binary' : 'text'}(${a.data.length}), ${b.isBinary ? 'binary' : 'text'}(${b.data.length})`);
  } catch (e) {
    notOk(t('empty text and binary'), e.message);
  }

  // 4 MiB binary, echoed intact.
  try {
    const big = randomBytes(4 << 20);
    ws.send(big);
    const m = await next(30_000);
    check(t('4 MiB binary'), m.isBinary && m.data.length === big.length && big.equals(m.data),
      `got ${m.data.length} bytes (${m.isBinary ? 'binary' : 'text'}), content ${big.equals(m.data) ? 'same' : 'differs'}`);
  } catch (e) {
    notOk(t('4 MiB binary'), e.message);
  }

  // 4 MiB of compressible text (many deflate blocks when compressed).
  try {
    const line = 'The quick brown fox jumps over the lazy dog — 😀 ✓ ';
    const big = line.repeat(Math.ceil((4 << 20) / Buffer.byteLength(line)));
    ws.send(big);
    const m = await next(30_000);
    const got = m.data.toString('utf8');
    check(t('4 MiB compressible text'), !m.isBinary && got === big, `got ${m.data.length} bytes`);
  } catch (e) {
    notOk(t('4 MiB compressible text'), e.message);
  }

  // 100 messages sent back to back, echoed in order.
  try {
    const n = 100;
    for (let i = 0; i < n; i++) {
      if (i % 2) ws.send(`msg ${i} ✓`);
      else ws.send(Buffer.from(`bin ${i}`));
    }
    const bad = [];
    for (let i = 0; i < n; i++) {
      const m = await next();
      const want = i % 2 ? `msg ${i} ✓` : `bin ${i}`;
      if (m.data.toString('utf8') !== want || m.isBinary !== !(i % 2))
        bad.push(`#${i}: ${JSON.stringify(m.data.toString('utf8'))}`);
    }
    check(t('100 pipelined in order'), bad.length === 0, `out of order or wrong: ${bad.slice(0, 5).join(', ')}`);
  } catch (e) {
    notOk(t('100 pipelined in order'), e.message);
  }

  // Ping: a pong with the same payload.
  try {
    const payload = Buffer.from('ping-✓-123');
    const pong = withTimeout(new Promise((resolve) => ws.once('pong', resolve)), 10_000, 'pong');
    ws.ping(payload);
    const data = await pong;
    check(t('ping -> pong with same payload'), Buffer.compare(data, payload) === 0,
      `pong payload ${JSON.stringify(data.toString())}`);
  } catch (e) {
    notOk(t('ping -> pong with same payload'), e.message);
  }

  // The connection still works after all that.
  try {
    ws.send('still here');
    const m = await next();
    check(t('echo after ping'), m.data.toString() === 'still here', `got ${JSON.stringify(m.data.toString())}`);
  } catch (e) {
    notOk(t('echo after ping'), e.message);
  }

  // Close with an application code and a non-ASCII reason: the server echoes
  // the code (RFC 6455 5.5.1), so 'close' sees 4001.
  try {
    const closed = withTimeout(
      new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason }))),
      10_000,
      "the 'close' event",
    );
    ws.close(4001, 'bye ✓');
    const { code, reason } = await closed;
    check(t('close 4001 seen by client'), code === 4001, `close code ${code}`);
    const r = reason.toString('utf8');
    check(t('close reason echoed'), r === 'bye ✓', `close reason ${JSON.stringify(r)}`);
  } catch (e) {
    notOk(t('close 4001'), e.message);
  }
}

async function queryPath(label, options) {
  // No subprotocol, a deeper path and a query string.
  const name = `${label}: connect to a path with a query string`;
  try {
    const ws = await open(`${base}/some/path?x=1&y=h%C3%A9&z=a%20b`, options);
    check(`${name} (no subprotocol)`, ws.protocol === '', `protocol ${JSON.stringify(ws.protocol)}`);
    const next = messages(ws);
    ws.send('query ok');
    const m = await next();
    check(`${label}: echo on a path with a query string`, m.data.toString() === 'query ok',
      `got ${JSON.stringify(m.data.toString())}`);
    const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000);
    const code = await withTimeout(closed, 10_000, 'close');
    check(`${label}: normal close 1000`, code === 1000, `close code ${code}`);
  } catch (e) {
    notOk(name, e.message);
  }
}

async function main() {
  await matrix('no-deflate', { perMessageDeflate: false });
  await queryPath('no-deflate', { perMessageDeflate: false });
  await matrix('deflate-offered', {});
  await queryPath('deflate-offered', {});
  // Several clients at once, interleaving.
  try {
    const clients = await Promise.all(
      Array.from({ length: 10 }, () => open(`${base}/multi`, { perMessageDeflate: false })),
    );
    const nexts = clients.map(messages);
    for (let r = 0; r < 10; r++) clients.forEach((ws, i) => ws.send(`c${i} r${r}`));
    const bad = [];
    for (let i = 0; i < clients.length; i++) {
      for (let r = 0; r < 10; r++) {
        const m = await nexts[i]();
        if (m.data.toString() !== `c${i} r${r}`) bad.push(`client ${i} got ${m.data.toString()}`);
      }
    }
    check('10 concurrent clients each get their own echoes in order', bad.length === 0, bad.slice(0, 3).join('; '));
    await Promise.all(
      clients.map((ws) => new Promise((resolve) => {
        ws.once('close', resolve);
        ws.close(1000);
      })),
    );
  } catch (e) {
    notOk('10 concurrent clients', e.message);
  }
  clearTimeout(watchdog);
  console.log(`# node ws client: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  notOk('unexpected exception', e.stack || String(e));
  process.exit(1);
});

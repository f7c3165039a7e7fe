// Interop: Node's `ws` client (over Node's TLS) against `duplex echo` serving
// wss:// with a certificate from the test CA (tests/tls_certs.sh).
//   node tls_node_client.mjs TLS_PORT WS_PORT CERT_DIR
// TLS_PORT serves wss, WS_PORT plain ws (the same server, --tls-port).
// Prints "ok - ..." / "not ok - ..." per check; exits 1 if any failed.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import WebSocket from 'ws';

const [tlsPort, wsPort] = [Number(process.argv[2]), Number(process.argv[3])];
const certDir = process.argv[4];
if (!tlsPort || !wsPort || !certDir) {
  console.error('usage: node tls_node_client.mjs TLS_PORT WS_PORT CERT_DIR');
  process.exit(2);
}
const ca = readFileSync(`${certDir}/ca.pem`);
let passed = 0;
let failed = 0;
const ok = (name) => {
  passed++;
  console.log(`ok - ${name}`);
};
const notOk = (name, why) => {
  failed++;
  console.log(`not ok - ${name}: ${why}`);
};
const check = (name, cond, why) => (cond ? ok(name) : notOk(name, why));

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

function open(url, options = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
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

function closeWith(ws, code, reason) {
  const closed = withTimeout(
    new Promise((resolve) => ws.once('close', (c, r) => resolve({ code: c, reason: r.toString() }))),
    10_000,
    "the 'close' event",
  );
  ws.close(code, reason);
  return closed;
}

// The basic matrix over one wss connection.
async function matrix(label, url, options) {
  const t = (name) => `${label}: ${name}`;
  let ws;
  try {
    ws = await open(url, options);
    const sock = ws._socket;
    ok(t(`connect (${sock.getProtocol()}, ${sock.getCipher().name})`));
    check(t('server certificate verified by Node'), sock.authorized === true,
      `authorized ${sock.authorized}, ${sock.authorizationError}`);
    const peer = sock.getPeerCertificate();
    check(t('the server presented the test certificate (CN=localhost)'), peer.subject && peer.subject.CN === 'localhost',
      `subject ${JSON.stringify(peer.subject)}`);
  } catch (e) {
    notOk(t('connect'), e.message);
    return;
  }
  const next = messages(ws);
  try {
    const text = 'héllo wörld over TLS 😀 ✓';
    ws.send(text);
    const m = await next();
    check(t('text non-ASCII'), !m.isBinary && m.data.toString('utf8') === text,
      `got ${m.isBinary ? 'binary' : 'text'} ${JSON.stringify(m.data.toString('utf8'))}`);
  } catch (e) {
    notOk(t('text non-ASCII'), e.message);
  }
  try {
    const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    ws.send(bin);
    const m = await next();
    check(t('binary 0..255'), m.isBinary && bin.equals(m.data), `got ${m.data.length} bytes`);
  } catch (e) {
    notOk(t('binary 0..255'), e.message);
  }
  try {
    // Many TLS records each way; the server's writes span many SSL_write calls.
    const big = randomBytes(4 << 20);
    ws.send(big);
    const m = await next(30_000);
    check(t('4 MiB binary'), m.isBinary && big.equals(m.data),
      `got ${m.data.length} bytes, content ${big.equals(m.data) ? 'same' : 'differs'}`);
  } catch (e) {
    notOk(t('4 MiB binary'), e.message);
  }
  try {
    const n = 200;
    for (let i = 0; i < n; i++) ws.send(`p${i}`);
    const bad = [];
    for (let i = 0; i < n; i++) {
      const m = await next();
      if (m.data.toString() !== `p${i}`) bad.push(`#${i}: ${m.data.toString()}`);
    }
    check(t('200 small messages pipelined, in order'), bad.length === 0, bad.slice(0, 5).join(', '));
  } catch (e) {
    notOk(t('200 pipelined'), e.message);
  }
  try {
    const pong = withTimeout(new Promise((resolve) => ws.once('pong', resolve)), 10_000, 'pong');
    ws.ping('tls-ping');
    check(t('ping -> pong'), (await pong).toString() === 'tls-ping', 'wrong pong payload');
  } catch (e) {
    notOk(t('ping -> pong'), e.message);
  }
  try {
    const { code, reason } = await closeWith(ws, 4001, 'bye ✓');
    check(t('close 4001 echoed'), code === 4001 && reason === 'bye ✓', `code ${code} reason ${JSON.stringify(reason)}`);
  } catch (e) {
    notOk(t('close 4001'), e.message);
  }
}

// A TLS connection made by hand, to look at what the server negotiates.
function tlsConnect(options) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, ca, servername: 'localhost', ...options }, () =>
        resolve(s),
      );
      s.once('error', reject);
    }),
    10_000,
    'TLS handshake',
  );
}

async function alpnAndVersions() {
  try {
    const s = await tlsConnect({ ALPNProtocols: ['h2', 'http/1.1'] });
    check('ALPN: offered h2 and http/1.1, server picks http/1.1', s.alpnProtocol === 'http/1.1',
      `alpnProtocol ${JSON.stringify(s.alpnProtocol)}`);
    s.destroy();
  } catch (e) {
    notOk('ALPN h2,http/1.1', e.message);
  }
  try {
    const s = await tlsConnect({ ALPNProtocols: ['h2'] });
    check('ALPN: offered only h2, handshake succeeds without ALPN', s.alpnProtocol === false,
      `alpnProtocol ${JSON.stringify(s.alpnProtocol)}`);
    s.destroy();
  } catch (e) {
    notOk('ALPN h2 only: handshake should succeed without ALPN', e.message);
  }
  for (const [v, opt] of [
    ['TLSv1.2', { maxVersion: 'TLSv1.2' }],
    ['TLSv1.3', { minVersion: 'TLSv1.3' }],
  ]) {
    try {
      const ws = await open(`wss://localhost:${tlsPort}/v`, { ca, ...opt });
      const next = messages(ws);
      ws.send(`over ${v}`);
      const m = await next();
      check(`${v}: negotiated and echoes`, ws._socket.getProtocol() === v && m.data.toString() === `over ${v}`,
        `protocol ${ws._socket.getProtocol()}, got ${m.data.toString()}`);
      await closeWith(ws, 1000);
    } catch (e) {
      notOk(`${v}: connect and echo`, e.message);
    }
  }
  try {
    await tlsConnect({ maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
    notOk('TLS 1.1 refused', 'the handshake succeeded');
  } catch (e) {
    ok(`TLS 1.1 refused (${e.code || e.message})`);
  }
}

async function verification() {
  // Node itself must refuse the server when it does not trust the test CA:
  // the chain really is verified (a sanity check of the certificates).
  try {
    const ws = await open(`wss://localhost:${tlsPort}/`);
    notOk('Node refuses the server without the test CA', 'connected');
    ws.terminate();
  } catch (e) {
    check('Node refuses the server without the test CA', /issuer|self.signed|verify/i.test(`${e.code} ${e.message}`),
      `${e.code} ${e.message}`);
  }
}

// ws:// and wss:// on the two ports of one server at the same time.
async function bothPorts() {
  try {
    const [a, b] = await Promise.all([
      open(`ws://127.0.0.1:${wsPort}/plain`),
      open(`wss://localhost:${tlsPort}/secure`, { ca }),
    ]);
    check('ws:// and wss:// connected to one server at once',
      !a._socket.encrypted && b._socket.encrypted === true, 'unexpected socket types');
    const na = messages(a);
    const nb = messages(b);
    for (let i = 0; i < 50; i++) {
      a.send(`plain ${i}`);
      b.send(`secure ${i}`);
    }
    const big = randomBytes(1 << 20);
    a.send(big);
    b.send(big);
    const bad = [];
    for (let i = 0; i < 50; i++) {
      const [x, y] = await Promise.all([na(), nb()]);
      if (x.data.toString() !== `plain ${i}`) bad.push(`ws #${i}: ${x.data.toString()}`);
      if (y.data.toString() !== `secure ${i}`) bad.push(`wss #${i}: ${y.data.toString()}`);
    }
    const [x, y] = await Promise.all([na(30_000), nb(30_000)]);
    if (!big.equals(x.data)) bad.push('ws 1 MiB differs');
    if (!big.equals(y.data)) bad.push('wss 1 MiB differs');
    check('interleaved ws and wss traffic: each gets its own echoes in order', bad.length === 0,
      bad.slice(0, 5).join('; '));
    const [ca1, cb1] = await Promise.all([closeWith(a, 1000), closeWith(b, 1000)]);
    check('both close with 1000', ca1.code === 1000 && cb1.code === 1000, `${ca1.code}, ${cb1.code}`);
  } catch (e) {
    notOk('ws and wss at once', e.message);
  }
  try {
    const clients = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        i % 2 ? open(`ws://127.0.0.1:${wsPort}/m`) : open(`wss://localhost:${tlsPort}/m`, { ca }),
      ),
    );
    const nexts = clients.map(messages);
    for (let r = 0; r < 10; r++) clients.forEach((ws, i) => ws.send(`c${i} r${r}`));
    const bad = [];
    for (let i = 0; i < clients.length; i++) {
      for (let r = 0; r < 10; r++) {
        const m = await nexts[i]();
        if (m.data.toString() !== `c${i} r${r}`) bad.push(`client ${i}: ${m.data.toString()}`);
      }
    }
    check('10 concurrent clients, half ws half wss, each in order', bad.length === 0, bad.slice(0, 3).join('; '));
    await Promise.all(clients.map((ws) => closeWith(ws, 1000)));
  } catch (e) {
    notOk('10 concurrent ws/wss clients', e.message);
  }
}

async function main() {
  await matrix('wss://localhost', `wss://localhost:${tlsPort}/echo`, { ca });
  await matrix('wss://127.0.0.1 (IP SAN)', `wss://127.0.0.1:${tlsPort}/echo?x=1`, { ca });
  await alpnAndVersions();
  await verification();
  await bothPorts();
  clearTimeout(watchdog);
  console.log(`# node ws over TLS: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  notOk('unexpected exception', e.stack || String(e));
  process.exit(1);
});

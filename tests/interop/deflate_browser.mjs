// Interop: headless Chromium's WebSocket (which offers "permessage-deflate;
// client_max_window_bits") against `duplex echo --deflate`.
//   node deflate_browser.mjs PORT [TAG]
// Chromium reaches the server through a byte-counting TCP proxy in this
// process, so the test can tell that the server's echoes really travel
// compressed. Checks ws.extensions, then round-trips large compressible and
// incompressible messages, long-distance repeats, small similar messages and
// sizes around the compression threshold. Prints "ok - ..." / "not ok - ...";
// exits 1 if any failed.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const port = Number(process.argv[2]);
const tag = process.argv[3] ? `[${process.argv[3]}] ` : '';
if (!port) {
  console.error('usage: node deflate_browser.mjs PORT [TAG]');
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

// The proxy: counts bytes from the server to the browser.
let down = 0;
const sockets = new Set();
const proxy = net.createServer((client) => {
  const upstream = net.connect(port, '127.0.0.1');
  sockets.add(client);
  sockets.add(upstream);
  upstream.on('data', (d) => {
    down += d.length;
  });
  client.pipe(upstream);
  upstream.pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end);
  upstream.on('error', end);
  client.on('close', end);
  upstream.on('close', end);
});

// In the page: a WebSocket with a message queue, and deterministic data.
function installHarness() {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed >>> 16;
  };
  const hex = (n) => {
    let s = '';
    while (s.length < n) s += (rand() & 0xffff).toString(16).padStart(4, '0');
    return s.slice(0, n);
  };
  const data = {
    compressible: () => {
      const line = 'The quick brown fox jumps over the lazy dog — 😀 ✓ ';
      return line.repeat(Math.ceil((4 << 20) / new TextEncoder().encode(line).length));
    },
    random: () => {
      const b = new Uint8Array(4 << 20);
      for (let i = 0; i < b.length; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
      return b.buffer;
    },
    far: (dist, total) => {
      const block = hex(dist);
      return block.repeat(Math.ceil(total / dist)).slice(0, total);
    },
  };
  const same = (a, b) => {
    if (typeof a === 'string') return a === b;
    if (!(b instanceof ArrayBuffer) || a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a);
    const y = new Uint8Array(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  };
  window.dx = {
    async open(url) {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      this.queue = [];
      this.waiters = [];
      this.closed = null;
      ws.onmessage = (e) => (this.waiters.length ? this.waiters.shift()(e.data) : this.queue.push(e.data));
      ws.onclose = (e) => {
        this.closed = { code: e.code, reason: e.reason, wasClean: e.wasClean };
        while (this.waiters.length) this.waiters.shift()(null);
      };
      const opened = await new Promise((resolve) => {
        ws.onopen = () => resolve(true);
        ws.onerror = () => resolve(false);
        setTimeout(() => resolve(false), 10000);
      });
      return { opened, extensions: ws.extensions };
    },
    next(ms = 20000) {
      return new Promise((resolve) => {
        if (this.queue.length) return resolve(this.queue.shift());
        if (this.closed) return resolve(null);
        const w = (d) => resolve(d);
        this.waiters.push(w);
        setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            resolve(undefined);
          }
        }, ms);
      });
    },
    // Send the messages, await as many echoes; returns a failure text or ''.
    async echo(kind, ...args) {
      let msgs;
      if (kind === 'sizes') msgs = args[0].map((n) => 'a'.repeat(n));
      else if (kind === 'similar') msgs = Array.from({ length: 200 }, (_, i) =>
        JSON.stringify({ type: 'update', id: i, user: 'someone', text: `message number ${i} ✓` }));
      else if (kind === 'twice') {
        const m = data.far(3000, 30000);
        msgs = [m, m, m];
      } else msgs = [data[kind](...args)];
      for (const m of msgs) this.ws.send(m);
      for (let i = 0; i < msgs.length; i++) {
        const got = await this.next();
        if (got === null) return `connection closed: ${JSON.stringify(this.closed)}`;
        if (got === undefined) return `no echo of message ${i} within 20 s`;
        if (!same(msgs[i], got)) return `message ${i} differs (sent ${msgs[i].length || msgs[i].byteLength}, got ${got.length || got.byteLength})`;
      }
      return '';
    },
    async close(code, reason) {
      this.ws.close(code, reason);
      for (let i = 0; i < 100 && !this.closed; i++) await new Promise((r) => setTimeout(r, 100));
      return this.closed;
    },
  };
}

async function main() {
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const pport = proxy.address().port;
  const tmp = mkdtempSync(join(process.env.DX_TMP || tmpdir(), 'chromium-deflate-'));
  let browser;
  try {
    process.env.TMPDIR = tmp;
    browser = await chromium.launch({
      executablePath: process.env.DX_CHROMIUM || '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 60_000,
    });
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`# page console: ${m.text()}`));
    const res = await page.goto(`http://127.0.0.1:${pport}/healthz`, { timeout: 15_000 });
    check('page loads through the counting proxy', res.status() === 200, `status ${res.status()}`);
    await page.evaluate(installHarness);
    const o = await page.evaluate((url) => window.dx.open(url), `ws://127.0.0.1:${pport}/deflate`);
    console.log(`# ws.extensions: ${JSON.stringify(o.extensions)}`);
    if (!o.opened) {
      notOk('open', 'the WebSocket did not open');
      return;
    }
    check('ws.extensions contains permessage-deflate', /permessage-deflate/.test(o.extensions),
      `extensions ${JSON.stringify(o.extensions)}`);
    const step = async (name, kind, ...args) => {
      const before = down;
      const why = await page.evaluate(([k, a]) => window.dx.echo(k, ...a), [kind, args]);
      check(name, why === '', why);
      return down - before;
    };
    const wire = await step('4 MiB compressible text', 'compressible');
    check('the server compressed its 4 MiB echo (bytes on the wire)', wire < 1 << 20, `${wire} bytes`);
    const wire2 = await step('4 MiB random binary (incompressible)', 'random');
    check('incompressible echo costs about its size on the wire', wire2 >= 4 << 20 && wire2 < (4 << 20) + (1 << 16),
      `${wire2} bytes`);
    await step('text with repeats 5000 bytes apart', 'far', 5000, 300000);
    await step('text with repeats 20000 bytes apart', 'far', 20000, 400000);
    await step('the same 30 KB message three times', 'twice');
    await step('200 small similar messages in order', 'similar');
    await step('sizes 0, 1, 63, 64, 65, 1000 around the threshold', 'sizes', [0, 1, 63, 64, 65, 1000]);
    const c = await page.evaluate(() => window.dx.close(4003, 'done'));
    check('close 4003 echoed, clean', c && c.code === 4003 && c.wasClean, JSON.stringify(c));
  } catch (e) {
    notOk('browser run', e.stack || String(e));
  } finally {
    if (browser) await browser.close().catch(() => {});
    for (const s of sockets) s.destroy();
    proxy.close();
    rmSync(tmp, { recursive: true, force: true });
  }
  clearTimeout(watchdog);
  console.log(`# chromium deflate: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();

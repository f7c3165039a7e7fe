// Interop: headless Chromium's WebSocket against `duplex echo`.
//   node browser_echo.mjs PORT [TAG]
// The page is loaded from http://127.0.0.1:PORT/healthz (served by duplex
// itself) so that it has an http origin. Prints "ok - ..." / "not ok - ..."
// per check; exits 1 if any failed. With DX_EXPECT_DEFLATE=1 (server run with
// --deflate) permessage-deflate must be negotiated.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const port = Number(process.argv[2]);
const tag = process.argv[3] ? `[${process.argv[3]}] ` : '';
if (!port) {
  console.error('usage: node browser_echo.mjs PORT');
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

// Runs inside the page. Returns a plain object describing what happened.
async function inPage(url) {
  const out = { steps: [] };
  const step = (name, good, why) => out.steps.push({ name, good: !!good, why: why || '' });
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const queue = [];
  const waiters = [];
  let closeEvent = null;
  const closed = new Promise((resolve) => {
    ws.onclose = (e) => {
      closeEvent = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      while (waiters.length) waiters.shift().reject(new Error(`closed with ${e.code}`));
      resolve();
    };
  });
  ws.onmessage = (e) => {
    if (waiters.length) waiters.shift().resolve(e.data);
    else queue.push(e.data);
  };
  const next = (ms = 10000) =>
    new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      const w = { resolve, reject };
      waiters.push(w);
      setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) {
          waiters.splice(i, 1);
          reject(new Error(`no message within ${ms} ms`));
        }
      }, ms);
    });
  const opened = await new Promise((resolve) => {
    ws.onopen = () => resolve(true);
    ws.onerror = () => resolve(false);
    setTimeout(() => resolve(false), 10000);
  });
  step('open', opened, `readyState ${ws.readyState}`);
  if (!opened) return out;
  out.extensions = ws.extensions;
  out.protocol = ws.protocol;

  const sameBytes = (a, b) => {
    if (a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a);
    const y = new Uint8Array(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  };
  const attempt = async (name, fn) => {
    try {
      await fn();
    } catch (e) {
      step(name, false, String(e && e.message));
    }
  };

  await attempt('text non-ASCII', async () => {
    const s = 'héllo wörld 😀 ✓';
    ws.send(s);
    const got = await next();
    step('text non-ASCII', got === s, `got ${JSON.stringify(got)}`);
  });
  await attempt('binary ArrayBuffer 0..255', async () => {
    const b = new Uint8Array(256).map((_, i) => i).buffer;
    ws.send(b);
    const got = await next();
    step('binary ArrayBuffer 0..255', got instanceof ArrayBuffer && sameBytes(got, b),
      `got ${typeof got} ${got && got.byteLength}`);
  });
  await attempt('4 MiB binary', async () => {
    const big = new Uint8Array(4 << 20);
    for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
    ws.send(big);
    const got = await next(30000);
    step('4 MiB binary', got instanceof ArrayBuffer && sameBytes(got, big.buffer),
      `got ${got && got.byteLength} bytes`);
  });
  await attempt('4 MiB compressible text', async () => {
    const line = 'The quick brown fox jumps over the lazy dog — 😀 ✓ ';
    const s = line.repeat(Math.ceil((4 << 20) / new TextEncoder().encode(line).length));
    ws.send(s);
    const got = await next(30000);
    step('4 MiB compressible text', got === s, `got ${typeof got} of length ${got && got.length}`);
  });
  await attempt('100 pipelined in order', async () => {
    for (let i = 0; i < 100; i++) ws.send(`m${i} ✓`);
    const bad = [];
    for (let i = 0; i < 100; i++) {
      const got = await next();
      if (got !== `m${i} ✓`) bad.push(`#${i}: ${JSON.stringify(got)}`);
    }
    step('100 pipelined in order', bad.length === 0, bad.slice(0, 5).join(', '));
  });
  await attempt('Blob binary', async () => {
    ws.send(new Blob([new Uint8Array([1, 2, 3, 250])]));
    const got = await next();
    step('Blob binary', got instanceof ArrayBuffer && sameBytes(got, new Uint8Array([1, 2, 3, 250]).buffer),
      `got ${typeof got}`);
  });
  ws.close(4003, 'done');
  await Promise.race([closed, new Promise((r) => setTimeout(r, 10000))]);
  out.close = closeEvent;
  return out;
}

async function main() {
  const tmp = mkdtempSync(join(process.env.DX_TMP || tmpdir(), 'chromium-'));
  let browser;
  try {
    // launch() gives Chromium a fresh temporary profile (under TMPDIR).
    process.env.TMPDIR = tmp;
    browser = await chromium.launch({
      executablePath: process.env.DX_CHROMIUM || '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 60_000,
    });
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`# page console: ${m.text()}`));
    const res = await page.goto(`http://127.0.0.1:${port}/healthz`, { timeout: 15_000 });
    const body = await res.text();
    check('page loads /healthz from duplex', res.status() === 200 && body.trim() === 'ok',
      `status ${res.status()}, body ${JSON.stringify(body)}`);

    const r = await page.evaluate(inPage, `ws://127.0.0.1:${port}/echo`);
    console.log(`# negotiated extensions: ${JSON.stringify(r.extensions)}, protocol: ${JSON.stringify(r.protocol)}`);
    for (const s of r.steps) check(s.name, s.good, s.why);
    if (process.env.DX_EXPECT_DEFLATE === '1')
      check('permessage-deflate negotiated', /permessage-deflate/.test(r.extensions || ''),
        `extensions ${JSON.stringify(r.extensions)}`);
    if (r.steps.length && r.steps[0].good) {
      check('close event seen', r.close !== null, 'no close event within 10 s');
      if (r.close) {
        check('CloseEvent.code is 4003 (server echoed it)', r.close.code === 4003, `code ${r.close.code}`);
        check('CloseEvent.wasClean', r.close.wasClean === true, `wasClean ${r.close.wasClean}`);
        check('CloseEvent.reason echoed', r.close.reason === 'done', `reason ${JSON.stringify(r.close.reason)}`);
      }
    }

    // A second page connecting to a path with a query string.
    const q = await page.evaluate(async (url) => {
      const ws = new WebSocket(url);
      return await new Promise((resolve) => {
        ws.onopen = () => ws.send('q ✓');
        ws.onmessage = (e) => {
          ws.close(1000);
          ws.onclose = (c) => resolve({ data: e.data, code: c.code, clean: c.wasClean });
        };
        ws.onerror = () => resolve({ error: true });
        setTimeout(() => resolve({ timeout: true }), 10000);
      });
    }, `ws://127.0.0.1:${port}/x/y?a=1&b=%C3%A9`);
    check('path with query string echoes and closes 1000', q.data === 'q ✓' && q.code === 1000 && q.clean,
      JSON.stringify(q));
  } catch (e) {
    notOk('browser run', e.stack || String(e));
  } finally {
    if (browser) await browser.close().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  }
  clearTimeout(watchdog);
  console.log(`# chromium: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();

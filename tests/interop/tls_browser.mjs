// Interop: headless Chromium loads a page over https from `duplex echo
// --static DIR --tls-cert ...` and opens `new WebSocket('wss://localhost:PORT/')`
// back to the same server.
//   node tls_browser.mjs TLS_PORT PAGE SPKI_SHA256_BASE64
// PAGE is the file under the static directory (it must contain
// "duplex tls page"). Chromium does not know the test CA: instead of
// --ignore-certificate-errors it is told to accept exactly the test server's
// public key (--ignore-certificate-errors-spki-list), so a wrong certificate
// would still fail. Prints "ok - ..." / "not ok - ..."; exits 1 if any failed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const port = Number(process.argv[2]);
const pageName = process.argv[3];
const spki = process.argv[4];
const tag = process.argv[5] ? `[${process.argv[5]}] ` : '';
if (!port || !pageName || !spki) {
  console.error('usage: node tls_browser.mjs TLS_PORT PAGE SPKI_SHA256_BASE64 [TAG]');
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

// Runs in the page.
async function inPage(url) {
  const out = { steps: [], secure: window.isSecureContext, origin: location.origin };
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
  step('wss open', opened, `readyState ${ws.readyState}`);
  if (!opened) return out;
  out.extensions = ws.extensions;
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
    const s = 'héllo over wss 😀 ✓';
    ws.send(s);
    const got = await next();
    step('text non-ASCII', got === s, `got ${JSON.stringify(got)}`);
  });
  await attempt('binary 0..255', async () => {
    const b = new Uint8Array(256).map((_, i) => i).buffer;
    ws.send(b);
    const got = await next();
    step('binary 0..255', got instanceof ArrayBuffer && sameBytes(got, b), `got ${got && got.byteLength}`);
  });
  await attempt('4 MiB binary', async () => {
    const big = new Uint8Array(4 << 20);
    for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
    ws.send(big);
    const got = await next(30000);
    step('4 MiB binary', got instanceof ArrayBuffer && sameBytes(got, big.buffer), `got ${got && got.byteLength}`);
  });
  await attempt('100 pipelined', async () => {
    for (let i = 0; i < 100; i++) ws.send(`m${i}`);
    const bad = [];
    for (let i = 0; i < 100; i++) {
      const got = await next();
      if (got !== `m${i}`) bad.push(`#${i}: ${got}`);
    }
    step('100 pipelined in order', bad.length === 0, bad.slice(0, 5).join(', '));
  });
  ws.close(4003, 'done');
  await Promise.race([closed, new Promise((r) => setTimeout(r, 10000))]);
  out.close = closeEvent;
  return out;
}

async function main() {
  const tmp = mkdtempSync(join(process.env.DX_TMP || tmpdir(), 'chromium-tls-'));
  let browser;
  try {
    process.env.TMPDIR = tmp;
    browser = await chromium.launch({
      executablePath: process.env.DX_CHROMIUM || '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--ignore-certificate-errors-spki-list=${spki}`],
      timeout: 60_000,
    });
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`# page console: ${m.text()}`));
    const res = await page.goto(`https://localhost:${port}/${pageName}`, { timeout: 15_000 });
    const body = await res.text();
    check('page loads over https from duplex --static', res.status() === 200 && body.includes('duplex tls page'),
      `status ${res.status()}, body ${JSON.stringify(body.slice(0, 100))}`);
    const sec = await res.securityDetails();
    if (sec) console.log(`# page TLS: ${sec.protocol}, subject ${sec.subjectName}, issuer ${sec.issuer}`);
    check('the page was served with the test certificate', sec && sec.subjectName === 'localhost',
      `security details ${JSON.stringify(sec)}`);

    const r = await page.evaluate(inPage, `wss://localhost:${port}/`);
    console.log(`# negotiated extensions: ${JSON.stringify(r.extensions)}`);
    check('the page is a secure context (https origin)', r.secure === true && r.origin === `https://localhost:${port}`,
      `isSecureContext ${r.secure}, origin ${r.origin}`);
    for (const s of r.steps) check(s.name, s.good, s.why);
    if (process.env.DX_EXPECT_DEFLATE === '1')
      check('permessage-deflate negotiated over wss', /permessage-deflate/.test(r.extensions || ''),
        `extensions ${JSON.stringify(r.extensions)}`);
    if (r.steps.length && r.steps[0].good) {
      check('close 4003 echoed, clean', r.close && r.close.code === 4003 && r.close.wasClean && r.close.reason === 'done',
        JSON.stringify(r.close));
    }
  } catch (e) {
    notOk('browser run', e.stack || String(e));
  } finally {
    if (browser) await browser.close().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  }
  clearTimeout(watchdog);
  console.log(`# chromium over TLS: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();

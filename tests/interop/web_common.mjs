// Shared helpers for the duplex.js tests (duplexjs.test.mjs) and the
// Chromium tests of the demo pages (web_*.mjs): start and restart
// `duplex serve`, a TCP proxy that can cut or freeze connections, the HTTP
// API, bounded waits.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SOURCE_DIR = process.env.DX_SOURCE_DIR ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DUPLEX = process.env.DUPLEX ||
  path.join(process.env.DX_BUILD_DIR || path.join(SOURCE_DIR, 'build'), 'duplex');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value; throw after `ms`. */
export async function waitFor(fn, ms = 5000, what = 'condition') {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > ms) {
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await sleep(10);
  }
}

/** Reject if `p` does not settle within `ms`. */
export function within(p, ms, what = 'promise') {
  let t;
  return Promise.race([p, new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}

const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer)/;

/**
 * A `duplex serve` process: start(args) waits for "listening on
 * ws://127.0.0.1:PORT"; stop() sends SIGTERM and checks the exit status and
 * the log for sanitizer reports; restart() starts it again on the same port.
 */
export class Serve {
  constructor(args = [], env = {}) {
    this.args = args;
    this.env = env;
    this.port = 0;
    this.log = '';
    this.proc = null;
  }

  async start() {
    const args = ['serve', '--host', '127.0.0.1', '--port', String(this.port), ...this.args];
    const proc = spawn(DUPLEX, args, { env: { ...process.env, ...this.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    let buf = '';
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const port = await within(new Promise((resolve, reject) => {
      proc.stderr.on('data', (d) => {
        buf += d;
        this.log += d;
        const m = /listening on ws:\/\/127\.0\.0\.1:(\d+)/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      proc.on('exit', (code) => reject(new Error(`duplex serve exited (${code}) before listening:\n${buf}`)));
      proc.on('error', reject);
    }), 15000, `duplex serve ${args.join(' ')} to listen`);
    this.port = port;
    return this;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }
  get http() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** SIGTERM (or `signal`); resolves with the exit; throws on a crash or a sanitizer report. */
  async stop(signal = 'SIGTERM') {
    if (!this.proc) return null;
    const proc = this.proc;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    const ex = await within(this.exited, 15000, 'duplex serve to exit');
    if (SANITIZER.test(this.log)) throw new Error(`sanitizer report in the server log:\n${this.log.slice(-4000)}`);
    if (signal === 'SIGTERM' && ex.code !== 0) throw new Error(`duplex serve exited with ${ex.code}/${ex.signal}:\n${this.log.slice(-2000)}`);
    return ex;
  }

  async restart() {
    await this.stop();
    return this.start();
  }
}

/** POST/GET the hub's HTTP API. */
export async function api(base, key, call, body) {
  const res = await fetch(`${base}/api/${call}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`/api/${call} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok || !json.ok) throw new Error(`/api/${call} answered ${res.status}: ${text.slice(0, 200)}`);
  return json;
}

/**
 * A TCP proxy in front of a port. mode 'pass' forwards; 'refuse' drops new
 * connections at once. kill() cuts every open connection (both ends see
 * the TCP connection go); freeze() turns every open connection into a
 * black hole (nothing is forwarded, nothing is closed), like a network that
 * died without telling anyone.
 */
export class TcpProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.mode = 'pass';
    this.pairs = new Set();
    this.sockets = new Set(); // every open socket, for close()
    this.accepted = 0;
  }

  start() {
    this.server = net.createServer((c) => this._accept(c));
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => {
      this.port = this.server.address().port;
      resolve(this);
    }));
  }

  _accept(client) {
    this.accepted++;
    if (this.mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pair = { client, upstream, frozen: false };
    this.pairs.add(pair);
    const end = () => {
      if (!this.pairs.delete(pair)) return;
      if (pair.frozen) return; // a dead network says nothing
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d) => pair.frozen || upstream.write(d));
    upstream.on('data', (d) => pair.frozen || client.write(d));
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        this.sockets.delete(s);
        end();
      });
    }
  }

  get open() {
    return [...this.pairs].filter((p) => !p.frozen).length;
  }

  kill() {
    for (const p of this.pairs) {
      p.client.resetAndDestroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
  }

  freeze() {
    for (const p of this.pairs) p.frozen = true;
  }

  async close() {
    for (const s of this.sockets) s.destroy(); // frozen ones too
    this.sockets.clear();
    this.pairs.clear();
    await new Promise((r) => this.server.close(r));
  }
}

// ---- Chromium (playwright-core with Debian's /usr/bin/chromium) -------------

export const LAPTOP = { viewport: { width: 1280, height: 800 } };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: process.env.DX_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows'],
    timeout: 30000,
  });
}

/**
 * Checks reported as "ok - NAME" / "not ok - NAME: WHY" lines (counted by
 * tests/lib.sh run_helper), plus a watch on every page: any console error or
 * uncaught exception is a failure, except a failed WebSocket connection while
 * the test itself keeps the server away (allowNetworkErrors).
 */
export class Checks {
  constructor() {
    this.failed = 0;
    this.problems = [];
    this.allowNetworkErrors = false;
    this.expectedNetworkErrors = 0;
  }
  ok(name) {
    console.log(`ok - ${name}`);
  }
  bad(name, why) {
    this.failed++;
    console.log(`not ok - ${name}: ${String(why).replace(/\s+/g, ' ').slice(0, 600)}`);
  }
  /** Run one check; a thrown error fails it (and the run goes on). */
  async step(name, fn) {
    const t0 = Date.now();
    try {
      await fn();
      this.ok(`${name} (${Date.now() - t0} ms)`);
      return true;
    } catch (e) {
      this.bad(name, e && e.message || e);
      return false;
    }
  }
  watch(page, label) {
    page.setDefaultTimeout(10000);
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const text = m.text();
      if (this.allowNetworkErrors && /WebSocket connection to .* failed|ERR_CONNECTION_(REFUSED|RESET|CLOSED)|ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_SOCKET_NOT_CONNECTED|ERR_EMPTY_RESPONSE|ERR_INTERNET_DISCONNECTED/.test(text)) {
        this.expectedNetworkErrors++;
        return;
      }
      this.problems.push(`${label}: console error: ${text}`);
    });
    page.on('pageerror', (e) => this.problems.push(`${label}: uncaught exception: ${e.message}`));
    return page;
  }
  async page(browser, device, label) {
    const ctx = await browser.newContext(device);
    const page = await ctx.newPage();
    return this.watch(page, label);
  }
  /** The last check: nothing went wrong in any page. */
  pagesClean() {
    if (this.problems.length) this.bad('no console errors or uncaught exceptions in the pages', this.problems.slice(0, 5).join(' | '));
    else this.ok(`no console errors or uncaught exceptions in the pages (${this.expectedNetworkErrors} expected connection failures during outages)`);
  }
}

/** Wait until a page's client is open (the top bar's state). */
export function waitOpen(page, ms = 10000) {
  return page.waitForFunction(() => document.body.dataset.connection === 'open', null, { timeout: ms });
}

// ---- the chat page (web/chat.html) ------------------------------------------

/** Every message line of a chat page: [{epoch, lines: [[offset, text], ...]}]. */
export const chatLines = (page) => page.evaluate(() => [...document.querySelectorAll('#log .epoch')].map((s) => ({
  epoch: s.dataset.epoch,
  lines: [...s.querySelectorAll('.msg')].map((m) => [Number(m.dataset.offset), m.querySelector('.bubble').textContent]),
})));
export const chatTexts = async (page) => (await chatLines(page)).flatMap((s) => s.lines.map((l) => l[1]));

/** Wait until a chat page shows each wanted text once, every section in strictly increasing offsets. */
export async function expectChatOnce(page, label, wanted, ms = 10000) {
  try {
    await waitFor(async () => {
      const t = await chatTexts(page);
      return wanted.every((w) => t.includes(w));
    }, ms, `${label} to show ${JSON.stringify(wanted)}`);
  } catch (e) {
    throw new Error(`${e.message} (has ${JSON.stringify(await chatTexts(page))})`);
  }
  const secs = await chatLines(page);
  for (const s of secs) {
    for (let i = 1; i < s.lines.length; i++) {
      if (s.lines[i][0] <= s.lines[i - 1][0]) throw new Error(`${label}: offsets out of order or doubled: ${JSON.stringify(s.lines)}`);
    }
  }
  const all = secs.flatMap((s) => s.lines.map((l) => l[1]));
  for (const w of wanted) {
    const n = all.filter((t) => t === w).length;
    if (n !== 1) throw new Error(`${label}: "${w}" shown ${n} times`);
  }
}

/** Type a message into a chat page and send it. */
export async function chatSend(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
}

// ---- the fallback transports (duplex.js without WebSocket or EventSource) ---

// What a page's browser "lacks" on each transport: removed before any script runs.
const REMOVE = {
  websocket: [],
  sse: ['WebSocket'],
  poll: ['WebSocket', 'EventSource'],
};
const TRANSPORT_LABEL = { websocket: 'WebSocket', sse: 'SSE', poll: 'long-polling' };

/**
 * Open `url` in a new context of `browser` whose pages lack what `kind`
 * ('websocket' | 'sse' | 'poll') needs them to lack; `page.requests` counts
 * the WebSockets, SSE streams, polls and POST /http/request it made.
 */
export async function openChatOn(browser, checks, kind, url, device) {
  const ctx = await browser.newContext(device);
  await ctx.addInitScript((names) => {
    for (const n of names) delete window[n];
  }, REMOVE[kind]);
  const page = checks.watch(await ctx.newPage(), `${new URL(url).searchParams.get('name')} (${kind})`);
  page.requests = { ws: 0, sse: 0, poll: 0, post: 0 };
  page.on('websocket', () => page.requests.ws++);
  page.on('request', (r) => {
    const p = new URL(r.url()).pathname;
    if (p === '/sse') page.requests.sse++;
    else if (p === '/poll') page.requests.poll++;
    else if (p === '/http/request') page.requests.post++;
  });
  await page.goto(url);
  return page;
}

/** The page is open on `kind`: the client says so, and so does the top bar. */
export async function expectTransport(page, kind) {
  await waitOpen(page, 20000);
  const s = await page.evaluate(() => ({
    transport: window.demo.client.transport,
    attr: document.querySelector('#status').dataset.transport,
    text: document.querySelector('#status').textContent,
    ws: typeof window.WebSocket,
    es: typeof window.EventSource,
  }));
  if (s.transport !== kind || s.attr !== kind || s.text !== `Live · ${TRANSPORT_LABEL[kind]}`) {
    throw new Error(`expected ${kind}, page says ${JSON.stringify(s)}`);
  }
  if (REMOVE[kind].includes('WebSocket') && s.ws !== 'undefined') throw new Error('window.WebSocket was not removed');
  if (REMOVE[kind].includes('EventSource') && s.es !== 'undefined') throw new Error('window.EventSource was not removed');
}

// Shared bits of the demo pages: one duplex.js client per page with its
// connection state shown in the top bar and a reconnecting banner, plus
// small DOM helpers. Each page exposes what it has as window.demo (handy in
// the console, and for tests/interop/web_*.mjs).
import { connect } from './duplex.js';

export const $ = (sel, root = document) => root.querySelector(sel);

/** el('div', {class: 'x', onclick}, 'text', child) */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'style' && typeof v === 'object') Object.assign(e.style, v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) e.append(c);
  return e;
}

export const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

export function timeOf(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** A color per name or id (same input, same color on every page). */
export function colorFor(s) {
  let h = 0;
  for (const ch of String(s)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360} 65% 52%)`;
}

const ADJ = ['brave', 'calm', 'eager', 'fancy', 'jolly', 'lucky', 'mellow', 'nimble', 'quick', 'witty'];
const ANIMAL = ['otter', 'panda', 'fox', 'lynx', 'koala', 'heron', 'yak', 'gecko', 'orca', 'wren'];

/** The visitor's nickname (kept in localStorage; ?name= overrides). */
export function nickname() {
  const q = new URLSearchParams(location.search).get('name');
  if (q) return q.slice(0, 24);
  let n = localStorage.getItem('duplex-name');
  if (!n) {
    const r = (a) => a[Math.floor(Math.random() * a.length)];
    n = `${r(ADJ)}-${r(ANIMAL)}`;
    localStorage.setItem('duplex-name', n);
  }
  return n;
}
export function setNickname(n) {
  localStorage.setItem('duplex-name', n);
}

let toastTimer;
export function toast(text, ms = 2500) {
  let t = $('#toast');
  if (!t) document.body.append((t = el('div', { id: 'toast', class: 'toast', role: 'status' })));
  t.textContent = text;
  t.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove('show'), ms);
}

const REASONS = {
  closed: 'the connection closed',
  heartbeat_timeout: 'the server stopped answering',
  connect_timeout: 'the server did not answer',
  error: 'the connection failed',
  fatal: 'the server refused this client',
  gave_up: 'too many failed attempts',
  client: 'closed',
};

const TRANSPORTS = { websocket: 'WebSocket', sse: 'SSE', poll: 'long-polling' };

/**
 * Connect to the hub of this page's origin and show the connection state
 * and the transport in use (WebSocket, or the SSE / long-polling fallback)
 * in #status (top bar) and #banner. Returns the client.
 */
export function startClient(options = {}) {
  const client = connect(undefined, options);
  const status = $('#status');
  const banner = $('#banner') || document.body.insertBefore(bannerElement(), $('.top')?.nextSibling || null);
  const msg = $('.banner-text', banner);
  const retry = $('button', banner);
  retry.addEventListener('click', () => client.reconnect());
  let countdown;
  let retryAt = 0;
  const describe = (e) => {
    const why = REASONS[e.reason] || e.reason || '';
    return e.code && e.code !== 1006 ? `${why} (${e.code})` : why;
  };
  const render = (e) => {
    clearInterval(countdown);
    const s = e.state;
    const t = e.transport || client.transport;
    status.dataset.state = s;
    status.dataset.transport = document.body.dataset.transport = t;
    document.body.dataset.connection = s;
    if (s === 'open') {
      status.textContent = `Live · ${TRANSPORTS[t] || t}`;
      banner.hidden = true;
    } else if (s === 'connecting') {
      status.textContent = 'Connecting…';
    } else if (s === 'reconnecting') {
      status.textContent = 'Reconnecting…';
      banner.hidden = false;
      banner.dataset.kind = 'reconnecting';
      retryAt = performance.now() + (e.delay || 0);
      const tick = () => {
        const left = Math.max(0, retryAt - performance.now());
        const off = typeof navigator !== 'undefined' && navigator.onLine === false ? ' You are offline.' : '';
        msg.textContent = `Connection lost: ${describe(e)}.${off} Reconnecting ${left > 400 ? `in ${(left / 1000).toFixed(0)} s` : 'now'}` +
          ' — nothing is lost: missed messages are replayed, and what you send is queued.';
      };
      tick();
      countdown = setInterval(tick, 500);
      retry.hidden = false;
    } else if (s === 'closed') {
      status.textContent = 'Disconnected';
      banner.hidden = false;
      banner.dataset.kind = 'closed';
      msg.textContent = `Disconnected: ${describe(e)}. Reload the page to connect again.`;
      retry.hidden = true;
    }
  };
  render({ state: client.state });
  client.on('state', render);
  client.on('broadcast', (data) => toast(`📣 ${typeof data === 'string' ? data : JSON.stringify(data)}`, 5000));
  setInterval(() => {
    if (client.rtt != null) status.title = `round trip ${client.rtt.toFixed(1)} ms · client ${client.id || '—'}`;
  }, 2000);
  window.demo = { ...(window.demo || {}), client };
  return client;
}

function bannerElement() {
  return el('div', { id: 'banner', class: 'banner', role: 'status', hidden: true },
    el('span', { class: 'banner-text' }), el('button', { type: 'button' }, 'Retry now'));
}

/** The top bar every page has. */
export function topBar(title) {
  const bar = el('header', { class: 'top' },
    el('a', { class: 'brand', href: './' }, el('span', { class: 'logo' }, '⇄'), el('span', { class: 'name' }, 'duplex')),
    el('h1', {}, title),
    el('span', { class: 'spacer' }),
    el('span', { id: 'status', class: 'status', 'data-state': 'connecting', 'aria-live': 'polite' }, 'Connecting…'));
  document.body.prepend(bar);
  return bar;
}

/** "100 messages for 5 minutes" from the welcome's limits. */
export function historyWindow(limits, per = 'topic') {
  if (!limits) return 'its recent messages';
  const ttl = limits.history_ttl;
  const span = !ttl ? 'with no time limit' : ttl % 60 === 0 ? `for ${ttl / 60} minute${ttl === 60 ? '' : 's'}` : `for ${ttl} s`;
  return `the last ${limits.history_size} messages per ${per} ${span}`;
}

/** Add properties (getters included) to window.demo. */
export function expose(props) {
  window.demo = window.demo || {};
  Object.defineProperties(window.demo, Object.getOwnPropertyDescriptors(props));
}

// duplex.js — the client for `duplex serve` (protocol duplex.v1, docs/PROTOCOL.md).
// A dependency-free ES module for browsers and Node 20+ (pass the `ws`
// package's WebSocket, or rely on a global WebSocket). Guide: docs/CLIENT.md.
//
//   import { connect } from '/duplex.js';
//   const client = connect();                      // same origin, /ws
//   client.subscribe('chat:lobby', { history: 20, onMessage: (m) => show(m.data) });
//   await client.publish('chat:lobby', { text: 'hello' });   // settles on the ack
//
// Staying connected: reconnects with exponential backoff and full jitter,
// resubscribes every topic from the last position seen (missed messages
// arrive once and in order; `onReset` when the hub cannot recover them),
// pings to notice dead connections, and queues publishes made while
// disconnected (bounded) to send them after the reconnect. Where WebSocket
// cannot be opened it falls back to SSE, then long-polling (each with POST
// /http/request for requests) and tries WebSocket again now and then.

export const PROTOCOL = 'duplex.v1';
export const VERSION = '1.0.0';

const DEFAULTS = {
  reconnect: { base: 500, cap: 10000, attempts: Infinity },
  heartbeat: { interval: 10000, timeout: 5000 },
  connectTimeout: 10000,
  requestTimeout: 10000,
  queue: 100,
  stableAfter: 5000, // a connection open this long resets the backoff
  transports: ['websocket', 'sse', 'poll'],
  fallbackAfter: 2, // WebSocket upgrades failed in a row before trying the next transport
  retryWebSocket: 60000, // on a fallback transport, try WebSocket again this often (ms)
  pollTimeout: 25, // seconds a long-poll waits
};

// Close codes after which reconnecting cannot help (docs/PROTOCOL.md, "Close codes").
const FATAL = new Set([1002, 1003, 1007, 1009, 1010]);
const UNAUTHORIZED = 4001;

/**
 * The default rule: protocol errors, too-big messages and 4000-4099 are
 * fatal. (4001, unauthorized, is retried when the `token` option is a
 * function: a fresh token may pass.)
 */
export function isFatalCloseCode(code) {
  return FATAL.has(code) || (code >= 4000 && code <= 4099);
}

/**
 * Full-jitter exponential backoff: a delay drawn uniformly from
 * [0, min(cap, base * 2^attempt)), attempt counting from 0.
 */
export function backoffDelay(attempt, base, cap, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 52));
  return Math.floor(random() * ceiling);
}

/** Errors from requests: `code` is a protocol error code or one of this client's. */
export class DuplexError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = 'DuplexError';
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

/** base64 <-> bytes for binary publications (`b64`). */
export function toBase64(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes.buffer || bytes, bytes.byteOffset || 0,
    bytes.byteLength);
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(s);
}
export function fromBase64(b64) {
  const s = atob(b64);
  const u8 = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u8[i] = s.charCodeAt(i);
  return u8;
}

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

// Listener errors must not break the client's bookkeeping; rethrow them
// outside, where the page (or Node) reports them as uncaught.
function callSafely(fn, args) {
  try {
    fn(...args);
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

class Emitter {
  /** Add a listener; returns a function that removes it. */
  on(type, fn) {
    if (!this._listeners) this._listeners = new Map();
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }
  off(type, fn) {
    this._listeners?.get(type)?.delete(fn);
  }
  once(type, fn) {
    const off = this.on(type, (...a) => {
      off();
      fn(...a);
    });
    return off;
  }
  _emit(type, ...args) {
    const set = this._listeners?.get(type);
    if (set) for (const fn of [...set]) callSafely(fn, args);
  }
}

function resolveUrl(url) {
  const loc = typeof location !== 'undefined' ? location : null;
  if (url == null || url === '') {
    if (!loc) throw new DuplexError('bad_url', 'connect(): a URL is needed outside a browser');
    url = '/ws';
  }
  const u = new URL(String(url), loc ? loc.href : undefined);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:')
    throw new DuplexError('bad_url', `connect(): ${u.protocol} is not ws:, wss:, http: or https:`);
  return u.href;
}

// A token travels as a second subprotocol, "duplex.token.JWT" (kept out of
// URLs and access logs); one with characters a subprotocol cannot carry goes
// in the `token` query parameter instead.
const TCHAR = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
function withToken(url, token) {
  if (token == null || token === '') return { url, protocols: PROTOCOL };
  const t = String(token);
  if (TCHAR.test(t)) return { url, protocols: [PROTOCOL, `duplex.token.${t}`] };
  const u = new URL(url);
  u.searchParams.set('token', t);
  return { url: u.href, protocols: PROTOCOL };
}

// The `exp` claim of a JWT (seconds), or 0.
function tokenExpiry(token) {
  try {
    const part = String(token).split('.')[1];
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp : 0;
  } catch {
    return 0;
  }
}

function merge(defaults, value) {
  if (value === false) return false;
  return { ...defaults, ...(value || {}) };
}

/**
 * Connect to a hub. `url` defaults to the page's own origin + /ws.
 * Returns a Client at once; it connects (and reconnects) by itself.
 */
export function connect(url, options) {
  if (url && typeof url === 'object' && !(url instanceof URL)) return new Client(undefined, url);
  return new Client(url, options);
}

export class Client extends Emitter {
  constructor(url, options = {}) {
    super();
    this.url = resolveUrl(url);
    const o = options;
    this.options = {
      token: o.token,
      reconnect: merge(DEFAULTS.reconnect, o.reconnect),
      heartbeat: merge(DEFAULTS.heartbeat, o.heartbeat),
      connectTimeout: o.connectTimeout ?? DEFAULTS.connectTimeout,
      requestTimeout: o.requestTimeout ?? DEFAULTS.requestTimeout,
      queue: o.queue ?? DEFAULTS.queue,
      stableAfter: o.stableAfter ?? DEFAULTS.stableAfter,
      fatalCodes: typeof o.fatalCodes === 'function' ? o.fatalCodes
        : Array.isArray(o.fatalCodes) ? (c) => o.fatalCodes.includes(c) : isFatalCloseCode,
    };
    this.options.transports = o.transports || DEFAULTS.transports;
    this.options.fallbackAfter = o.fallbackAfter ?? DEFAULTS.fallbackAfter;
    this.options.retryWebSocket = o.retryWebSocket ?? DEFAULTS.retryWebSocket;
    this.options.pollTimeout = o.pollTimeout ?? DEFAULTS.pollTimeout;
    this.options.httpUrl = o.httpUrl;
    this._WebSocket = o.WebSocket || globalThis.WebSocket;
    this._EventSource = o.EventSource || globalThis.EventSource;
    this._fetch = o.fetch || (typeof fetch === 'function' ? fetch.bind(globalThis) : null);
    const can = { websocket: typeof this._WebSocket === 'function', sse: typeof this._EventSource === 'function' &&
      !!this._fetch, poll: !!this._fetch };
    this._transports = this.options.transports.filter((t) => can[t]);
    if (!this._transports.length)
      throw new DuplexError('no_websocket',
        'connect(): no WebSocket here; in Node < 22 pass { WebSocket } from the "ws" package');
    /** The transport in use (or being tried): 'websocket' | 'sse' | 'poll'. */
    this.transport = this._transports[0];
    this._tIdx = 0;
    this._fails = 0; // connection attempts on this transport that failed before opening, in a row
    /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
    this.state = 'connecting';
    /** This connection's client id (from the welcome), null until open. */
    this.id = null;
    /** The user id the hub knows this client as ("" when anonymous). */
    this.user = null;
    /** The server's limits from the welcome. */
    this.limits = null;
    /** Round-trip time of the last heartbeat ping, in ms (null before one). */
    this.rtt = null;
    this._ws = null;
    this._subs = new Map();
    this._pending = new Map();
    this._outbox = []; // requests waiting for a connection, in call order
    this._queued = 0; // publishes among them
    this._nextId = 1;
    this._attempt = 0;
    this._gen = 0;
    this._timers = {};
    this._everOpen = false;
    this._bindEnvironment();
    this._dial();
  }

  /** True while the state is 'open'. */
  get connected() {
    return this.state === 'open';
  }

  /** Resolves when the client is (or next becomes) open; rejects if it closes for good. */
  whenOpen() {
    if (this.state === 'open') return Promise.resolve(this);
    if (this.state === 'closed') return Promise.reject(new DuplexError('closed', 'the client is closed'));
    return new Promise((resolve, reject) => {
      const off = this.on('state', (e) => {
        if (e.state === 'open') {
          off();
          resolve(this);
        } else if (e.state === 'closed') {
          off();
          reject(new DuplexError('closed', `the client closed (${e.reason})`, { event: e }));
        }
      });
    });
  }

  /**
   * Subscribe to a topic. Options: onMessage(msg), onJoin(ev), onLeave(ev),
   * onReset(ev) (missed messages could not be recovered: reload), onError(err),
   * since {offset, epoch}, history N, presence (default: true when onJoin or
   * onLeave is given), info (presence info). Returns a Subscription.
   */
  subscribe(topic, opts = {}) {
    if (this.state === 'closed') throw new DuplexError('closed', 'the client is closed');
    if (this._subs.has(topic)) throw new DuplexError('already_subscribed', `already subscribed to ${topic}`);
    const sub = new Subscription(this, topic, opts);
    this._subs.set(topic, sub);
    if (this._ready()) this._sendSubscribe(sub);
    return sub;
  }

  /** The Subscription of a topic, or undefined. */
  subscription(topic) {
    return this._subs.get(topic);
  }

  /** Stop receiving a topic. Resolves when the hub confirmed (or at once when disconnected). */
  unsubscribe(topic) {
    const sub = typeof topic === 'string' ? this._subs.get(topic) : topic;
    if (!sub || !sub.active) return Promise.resolve();
    sub.active = false;
    if (this._subs.get(sub.topic) === sub) this._subs.delete(sub.topic);
    const onServer = sub._live || sub._inflight;
    sub._live = false;
    if (!onServer || !this._ready()) return Promise.resolve();
    return this._request('unsubscribe', { topic: sub.topic }).catch((e) => {
      if (e.code !== 'not_subscribed' && e.code !== 'connection_lost') throw e;
    });
  }

  /**
   * Publish `data` (any JSON value; a Uint8Array/ArrayBuffer goes as b64).
   * Resolves with {offset, epoch} when the hub acked it. While disconnected
   * it waits in a bounded queue (options.queue) and is sent once after the
   * reconnect. Options: skipSelf (do not deliver it to this connection).
   */
  publish(topic, data, opts = {}) {
    const fields = { topic };
    if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) fields.b64 = toBase64(data);
    else fields.data = data === undefined ? null : data;
    if (opts.skipSelf) fields.skip_self = true;
    return this._request('publish', fields, { publish: true });
  }

  /** Who is subscribed to a topic: [{client, user, info}]. */
  presence(topic) {
    return this._request('presence', { topic }, { retry: true }).then((r) => r.presence);
  }

  /**
   * Retained publications of a topic, oldest first: {publications, offset,
   * epoch, complete}. Options: since {offset, epoch}, limit (1-1000).
   */
  history(topic, opts = {}) {
    const fields = { topic };
    if (opts.since) fields.since = { offset: opts.since.offset, epoch: opts.since.epoch };
    if (opts.limit != null) fields.limit = opts.limit;
    return this._request('history', fields, { retry: true }).then((r) => {
      for (const p of r.publications) decorate(p, r.epoch);
      return r;
    });
  }

  /**
   * Present a new token for the same user before the current one expires
   * (`refresh`); without an argument the `token` function is asked. Resolves
   * with {exp}. With a `token` function this happens by itself 30 s before
   * the token's `exp` (or at 80% of a shorter lifetime).
   */
  async refresh(token) {
    const t = token ?? (typeof this.options.token === 'function' ? await this.options.token() : this.options.token);
    const r = await this._request('refresh', { token: String(t) });
    this._token = t;
    // SSE and polling send the token with every request: the next ones carry the new one.
    if (this._ws instanceof HttpSocket) this._ws.setToken(t);
    this._scheduleRefresh();
    return r;
  }

  _scheduleRefresh() {
    this._clear('refresh');
    if (typeof this.options.token !== 'function') return;
    const exp = tokenExpiry(this._token);
    if (!exp) return;
    const left = exp * 1000 - Date.now();
    const at = Math.max(1000, Math.min(left - 30000, left * 0.8));
    this._timer('refresh', Math.min(at, 2 ** 31 - 1), () => {
      if (this.state !== 'open') return;
      // A refused refresh changes nothing: the hub closes with 4001 at exp and
      // the reconnect asks the token function again.
      this.refresh().catch((e) => this._emit('error', e instanceof DuplexError ? e
        : new DuplexError('token_error', String(e && e.message || e))));
    });
  }

  /** While reconnecting: try now instead of waiting out the backoff (a "retry now" button). */
  reconnect() {
    if (this.state !== 'reconnecting' || this._timers.retry === undefined) return;
    this._clear('retry');
    this._dial();
  }

  /** Send any request of the protocol; resolves with the reply's fields. */
  request(op, fields = {}) {
    return this._request(op, fields);
  }

  /** Close for good (no reconnect). Resolves once the socket is closed. */
  close(code = 1000, reason = '') {
    if (this.state === 'closed') return Promise.resolve();
    const ws = this._ws;
    this._teardown(new DuplexError('closed', 'the client was closed'));
    this._unbindEnvironment();
    this._setState('closed', { reason: 'client', code });
    if (!ws || ws.readyState >= 2) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        if (typeof ws.terminate === 'function') ws.terminate();
        resolve();
      }, 2000);
      ws.onclose = () => {
        clearTimeout(t);
        resolve();
      };
      try {
        ws.close(code, reason);
      } catch {
        ws.close();
      }
    });
  }

  // ---- connection lifecycle -------------------------------------------------

  _ready() {
    return this.state === 'open' && this._ws && this._ws.readyState === 1;
  }

  _setState(state, info = {}) {
    const previous = this.state;
    this.state = state;
    this._emit('state', { state, previous, transport: this.transport, ...info });
  }

  _dial() {
    const gen = ++this._gen;
    const token = this.options.token;
    if (typeof token === 'function') {
      Promise.resolve()
        .then(() => token())
        .then(
          (t) => gen === this._gen && this.state !== 'closed' && this._open(t),
          (e) => gen === this._gen && this.state !== 'closed' &&
            this._retry({ reason: 'token_error', message: String(e && e.message || e) }),
        );
    } else {
      this._open(token);
    }
  }

  _open(token) {
    this._token = token;
    this._sockOpened = false;
    this.transport = this._transports[this._tIdx];
    let ws;
    try {
      if (this.transport !== 'websocket') ws = new HttpSocket(this, this.transport, token, this._httpSession);
      else {
        const { url, protocols } = withToken(this.url, token);
        ws = new this._WebSocket(url, protocols);
        ws.onopen = () => {
          if (ws === this._ws) this._sockOpened = true;
        };
      }
    } catch (e) {
      this._retry({ reason: 'error', message: String(e && e.message || e) });
      return;
    }
    this._ws = ws;
    ws.onmessage = (ev) => this._onFrame(ws, ev.data);
    ws.onclose = (ev) => this._onClose(ws, ev);
    ws.onerror = () => {}; // a close event follows
    this._timer('connect', this.options.connectTimeout, () =>
      this._drop(ws, { reason: 'connect_timeout', message: `no welcome within ${this.options.connectTimeout} ms` }));
  }

  _onFrame(ws, data) {
    if (ws !== this._ws) return;
    let m;
    try {
      m = JSON.parse(typeof data === 'string' ? data : String(data));
    } catch {
      this._emit('error', new DuplexError('bad_frame', 'the server sent a frame that is not JSON'));
      return;
    }
    if (!m || typeof m !== 'object') return;
    switch (m.type) {
      case 'message': {
        const sub = this._subs.get(m.topic);
        if (sub) sub._deliver(m);
        break;
      }
      case 'reply':
        this._onReply(m);
        break;
      case 'resumed': {
        // (fallback transports) a topic resubscribed by the transport itself
        const sub = this._subs.get(m.topic);
        if (sub && sub._live) sub._onReply({ ...m, type: 'reply' }, true);
        break;
      }
      case 'join':
      case 'leave': {
        const sub = this._subs.get(m.topic);
        if (sub) sub._presenceEvent(m);
        break;
      }
      case 'gap': {
        // (a hub on Redis, after an outage) publications were lost: go on from here
        const sub = this._subs.get(m.topic);
        if (sub) sub._gap(m);
        break;
      }
      case 'broadcast':
        this._emit('broadcast', m.data !== undefined ? m.data : fromBase64(m.b64), m);
        break;
      case 'welcome':
        this._onWelcome(ws, m);
        break;
      default:
        this._emit('event', m);
    }
  }

  _onWelcome(ws, m) {
    this._clear('connect');
    this._sockOpened = true;
    if (this.transport !== 'sse') this._fails = 0; // an SSE stream counts once it streams
    if (this.transport === 'websocket') this._wsWorked = true;
    else this._scheduleUpgrade(true);
    this.id = m.client;
    this.user = m.user ?? '';
    this.limits = m.limits || null;
    this._scheduleRefresh();
    this._openedAt = now();
    const reconnected = this._everOpen;
    this._everOpen = true;
    const previous = this.state;
    this.state = 'open'; // requests below go out at once
    for (const sub of this._subs.values()) this._sendSubscribe(sub);
    const out = this._outbox;
    this._outbox = [];
    this._queued = 0;
    for (const r of out) this._send(r);
    this._startHeartbeat();
    this.state = previous; // so the event says where it came from
    this._setState('open', { reason: reconnected ? 'reconnected' : 'connected', client: m.client });
    this._emit('welcome', m);
  }

  _onClose(ws, ev) {
    if (ws !== this._ws) return;
    const code = ev && typeof ev.code === 'number' ? ev.code : 1006;
    const text = ev && ev.reason ? String(ev.reason) : '';
    this._lost({ reason: 'closed', code, message: text || `connection closed (${code})` });
  }

  // Give up on a socket that is alive to the browser but not to us.
  _drop(ws, info) {
    if (ws !== this._ws) return;
    ws.onmessage = ws.onclose = null;
    ws.onerror = () => {}; // the ws package reports the abort as an error
    try {
      if (typeof ws.terminate === 'function') ws.terminate();
      else ws.close();
    } catch {
      /* already closing */
    }
    this._lost({ code: null, ...info });
  }

  _lost(info) {
    this._clear('upgrade');
    this._fallback(this._ws);
    const stable = this._openedAt != null && now() - this._openedAt >= this.options.stableAfter;
    this._openedAt = null;
    this._ws = null;
    this.id = null;
    this._stopHeartbeat();
    this._clear('refresh');
    this._clear('connect');
    for (const sub of this._subs.values()) sub._live = sub._inflight = false;
    // Requests on the wire: reads go again after the reconnect; publishes
    // and other requests fail, as their outcome is unknown.
    const again = [];
    for (const r of this._pending.values()) {
      clearTimeout(r.timer);
      if (r.sub || r.ping) continue;
      if (r.retry) {
        this._wait(r);
        again.push(r);
      } else r.reject(new DuplexError('connection_lost', 'the connection was lost before the reply; the request may or may not have taken effect'));
    }
    this._pending.clear();
    this._outbox = again.concat(this._outbox);
    if (stable) this._attempt = 0;
    const retryAuth = info.code === UNAUTHORIZED && typeof this.options.token === 'function';
    if (info.code != null && !retryAuth && this.options.fatalCodes(info.code)) {
      this._teardown(new DuplexError('closed', `the server closed the connection with ${info.code}`, { closeCode: info.code }));
      this._unbindEnvironment();
      this._setState('closed', { ...info, reason: 'fatal' });
      return;
    }
    this._retry(info);
  }

  // Count attempts that never opened; after fallbackAfter WebSocket ones (or
  // one SSE stream that never streamed) the next transport is tried; a
  // fallback transport that cannot reach the hub either goes back to the first.
  _fallback(ws) {
    const t = this.transport;
    const opened = t === 'sse' && ws instanceof HttpSocket
      ? ws.streamed || (this._sockOpened && !ws._topics.length) : this._sockOpened;
    if (opened) {
      this._fails = 0;
      if (t === 'sse' && ws.streamed) this._sseWorked = true;
      return;
    }
    // Once WebSocket (or an SSE stream) worked here, or while the browser is
    // offline, a failure to reach the hub means the hub or the network is
    // down, not that the transport cannot pass.
    const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
    if (t === 'websocket' && (this._wsWorked || offline)) return;
    if (t === 'sse' && !this._sockOpened && (this._sseWorked || offline)) return;
    this._fails++;
    if (t === 'websocket' && this._fails < this.options.fallbackAfter) return;
    this._fails = 0;
    const next = this._tIdx + 1 < this._transports.length;
    this._tIdx = t !== 'poll' && next ? this._tIdx + 1 : 0;
    if (this._transports[this._tIdx] !== t) this._emit('transport', { transport: this._transports[this._tIdx], previous: t });
  }

  // On a fallback transport: probe WebSocket now and then; when it opens,
  // move back to it (once no request waits for a reply).
  // The first probe comes soon (the hub may just have come back), then every retryWebSocket ms.
  _scheduleUpgrade(first) {
    const every = this.options.retryWebSocket;
    const wsAt = this._transports.indexOf('websocket');
    if (!(every > 0) || wsAt < 0 || this._tIdx === wsAt) return;
    this._timer('upgrade', first ? Math.min(every, 1000) : every, () => {
      if (this.state !== 'open' || this.transport === 'websocket') return;
      let probe;
      const { url, protocols } = withToken(this.url, this._token);
      try {
        probe = new this._WebSocket(url, protocols);
      } catch {
        return this._scheduleUpgrade();
      }
      const done = (ok) => {
        probe.onopen = probe.onclose = probe.onmessage = null;
        probe.onerror = () => {};
        try {
          probe.close();
        } catch {
          /* closing */
        }
        if (!ok || this.state !== 'open' || this.transport === 'websocket') return this._scheduleUpgrade();
        this._switchBack(wsAt);
      };
      probe.onopen = () => done(true);
      probe.onclose = () => done(false);
      probe.onerror = () => {};
    });
  }
  _switchBack(wsAt) {
    const busy = [...this._pending.values()].some((r) => !r.sub && !r.ping);
    if (busy) return this._timer('upgrade', 1000, () => this.state === 'open' && this._switchBack(wsAt));
    const ws = this._ws;
    const from = this.transport;
    this._tIdx = wsAt;
    this._fails = 0;
    this._attempt = 0;
    this._emit('transport', { transport: 'websocket', previous: from });
    this.transport = 'websocket'; // so the drop below counts as no failure
    this._drop(ws, { reason: 'upgrade', message: `WebSocket works again (was on ${from})` });
  }

  _retry(info) {
    const rc = this.options.reconnect;
    if (!rc || this._attempt >= rc.attempts) {
      this._teardown(new DuplexError('closed', 'gave up reconnecting'));
      this._unbindEnvironment();
      this._setState('closed', { ...info, reason: rc ? 'gave_up' : info.reason, cause: info.reason });
      return;
    }
    const delay = backoffDelay(this._attempt, rc.base, rc.cap);
    this._attempt++;
    this._setState('reconnecting', { ...info, attempt: this._attempt, delay });
    this._timer('retry', delay, () => this._dial());
  }

  // Fail everything that waits, stop timers, forget the socket.
  _teardown(err) {
    this._gen++;
    for (const k of Object.keys(this._timers)) this._clear(k);
    this._stopHeartbeat();
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // closing while connecting is an error to the ws package
    }
    for (const r of this._pending.values()) {
      clearTimeout(r.timer);
      if (!r.sub && !r.ping) r.reject(err);
    }
    this._pending.clear();
    for (const r of this._outbox) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    this._outbox = [];
    this._queued = 0;
    for (const sub of this._subs.values()) sub._closed(err);
  }

  _timer(name, ms, fn) {
    this._clear(name);
    this._timers[name] = setTimeout(() => {
      delete this._timers[name];
      fn();
    }, ms);
  }
  _clear(name) {
    if (this._timers[name] !== undefined) {
      clearTimeout(this._timers[name]);
      delete this._timers[name];
    }
  }

  // ---- requests -------------------------------------------------------------

  _request(op, fields, flags = {}) {
    if (this.state === 'closed') return Promise.reject(new DuplexError('closed', 'the client is closed'));
    return new Promise((resolve, reject) => {
      const r = { op, fields, resolve, reject, retry: !!flags.retry, publish: !!flags.publish };
      if (this._ready()) return this._send(r);
      if (r.publish) {
        if (this.options.queue <= 0)
          return reject(new DuplexError('not_connected', 'not connected (publish queue disabled)'));
        if (this._queued >= this.options.queue)
          return reject(new DuplexError('queue_full', `${this._queued} publishes already wait for the connection`));
        this._queued++;
      } else {
        this._wait(r);
      }
      this._outbox.push(r);
    });
  }

  // Requests other than publishes wait for the connection for at most requestTimeout.
  _wait(r) {
    r.timer = setTimeout(() => {
      const i = this._outbox.indexOf(r);
      if (i >= 0) this._outbox.splice(i, 1);
      r.reject(new DuplexError('timeout', `not connected within ${this.options.requestTimeout} ms`));
    }, this.options.requestTimeout);
  }

  _send(r) {
    clearTimeout(r.timer);
    const id = this._nextId++;
    this._pending.set(id, r);
    if (!r.sub && !r.ping) {
      r.timer = setTimeout(() => {
        if (this._pending.get(id) !== r) return;
        this._pending.delete(id);
        r.reject(new DuplexError('timeout', `no reply to ${r.op} within ${this.options.requestTimeout} ms`));
      }, this.options.requestTimeout);
    }
    this._ws.send(JSON.stringify({ id, op: r.op, ...r.fields }));
  }

  _onReply(m) {
    if (m.id == null) {
      // A request without id failed (or a frame the hub could not read).
      const e = m.error || {};
      this._emit('error', new DuplexError(e.code || 'error', e.message, { reply: m }));
      return;
    }
    const r = this._pending.get(m.id);
    if (!r) return;
    this._pending.delete(m.id);
    clearTimeout(r.timer);
    if (r.sub) return r.sub._onReply(m, r.sentSince);
    if (r.ping) return r.ping(m);
    if (m.ok) {
      const { type, id, ok, ...rest } = m;
      r.resolve(rest);
    } else {
      const e = m.error || {};
      r.reject(new DuplexError(e.code || 'error', e.message, { reply: m }));
    }
  }

  _sendSubscribe(sub) {
    const fields = sub._fields();
    sub._inflight = true;
    this._send({ op: 'subscribe', fields, sub, sentSince: !!fields.since });
  }

  // ---- heartbeat --------------------------------------------------------------

  _startHeartbeat() {
    const hb = this.options.heartbeat;
    if (!hb || !(hb.interval > 0)) return;
    this._timer('beat', hb.interval, () => this._ping());
  }
  _stopHeartbeat() {
    this._clear('beat');
    this._clear('pong');
  }
  // Send a ping; the connection is dead unless its reply comes within timeout.
  _ping() {
    const hb = this.options.heartbeat;
    const ws = this._ws;
    if (!hb || !this._ready() || this._timers.pong !== undefined) return;
    const t0 = now();
    this._send({
      op: 'ping', fields: {}, ping: () => {
        if (ws !== this._ws) return;
        this.rtt = now() - t0;
        this._clear('pong');
        this._startHeartbeat();
      },
    });
    this._timer('pong', hb.timeout, () =>
      this._drop(ws, { reason: 'heartbeat_timeout', message: `no answer to a ping within ${hb.timeout} ms` }));
  }

  // ---- browser environment: online/offline, visibility ------------------------

  _bindEnvironment() {
    const w = typeof window !== 'undefined' && window.addEventListener ? window : null;
    if (!w) return;
    this._env = {
      online: () => {
        this._emit('online');
        if (this.state === 'reconnecting') {
          this._attempt = 0; // the network is back: try now
          this.reconnect();
        } else if (this.state === 'open') {
          this._checkNow();
        }
      },
      offline: () => {
        this._emit('offline');
        if (this.state === 'open') this._checkNow();
      },
      visibility: () => {
        if (typeof document === 'undefined' || document.visibilityState !== 'visible') return;
        if (this.state === 'open') this._checkNow();
      },
    };
    w.addEventListener('online', this._env.online);
    w.addEventListener('offline', this._env.offline);
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', this._env.visibility);
  }
  _unbindEnvironment() {
    if (!this._env) return;
    window.removeEventListener('online', this._env.online);
    window.removeEventListener('offline', this._env.offline);
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this._env.visibility);
    this._env = null;
  }
  // Ping now (the network changed); the usual timeout decides.
  _checkNow() {
    if (this._timers.pong !== undefined) return;
    this._clear('beat');
    this._ping();
  }
}

function decorate(m, epoch) {
  m.epoch = epoch;
  if (m.b64 !== undefined && m.bytes === undefined) {
    Object.defineProperty(m, 'bytes', { get: () => fromBase64(m.b64), enumerable: false });
  }
  return m;
}

export class Subscription extends Emitter {
  constructor(client, topic, opts) {
    super();
    this.client = client;
    this.topic = topic;
    this.active = true;
    /** Last position handled: {offset, epoch} (null before the first reply). */
    this.position = opts.since ? { offset: opts.since.offset, epoch: opts.since.epoch } : null;
    this._opts = opts;
    this._presence = opts.presence ?? !!(opts.onJoin || opts.onLeave);
    this._live = false; // subscribed on the current connection
    this._inflight = false;
    this._first = true;
    for (const [ev, key] of [['message', 'onMessage'], ['join', 'onJoin'], ['leave', 'onLeave'],
      ['reset', 'onReset'], ['error', 'onError'], ['subscribed', 'onSubscribed']]) {
      if (typeof opts[key] === 'function') this.on(ev, opts[key]);
    }
    /** Resolves with the first subscribe reply; rejects if the hub refuses. */
    this.ready = new Promise((resolve, reject) => {
      this._settle = { resolve, reject };
    });
    this.ready.catch(() => {}); // also reported by the 'error' event
  }

  get subscribed() {
    return this._live;
  }

  _fields() {
    const f = { topic: this.topic };
    if (this.position && this.position.epoch) f.since = { offset: this.position.offset, epoch: this.position.epoch };
    else if (this._opts.history > 0) f.history = this._opts.history;
    if (this._presence) f.presence = true;
    if (this._opts.info !== undefined) f.info = this._opts.info;
    return f;
  }

  _onReply(m, sentSince) {
    this._inflight = false;
    if (!this.active) return;
    if (!m.ok) {
      const e = m.error || {};
      const err = new DuplexError(e.code || 'error', e.message, { reply: m, topic: this.topic });
      this.active = false;
      if (this.client._subs.get(this.topic) === this) this.client._subs.delete(this.topic);
      if (this._first) this._settle.reject(err);
      this._emit('error', err);
      return;
    }
    this._live = true;
    const info = { topic: this.topic, offset: m.offset, epoch: m.epoch, resumed: sentSince };
    if (sentSince) {
      info.recovered = !!m.recovered;
      if (m.recovered) {
        this.position.epoch = m.epoch;
      } else {
        const previous = this.position;
        this.position = { offset: m.offset, epoch: m.epoch };
        info.reason = m.reason;
        this._emit('reset', { topic: this.topic, reason: m.reason, previous, offset: m.offset, epoch: m.epoch });
      }
    } else {
      // The replayed history (if asked for) follows with offsets up to m.offset.
      const h = Math.min(this._opts.history > 0 ? this._opts.history : 0, m.offset);
      this.position = { offset: m.offset - h, epoch: m.epoch };
    }
    if (this._first) {
      this._first = false;
      this._settle.resolve(info);
    }
    this._emit('subscribed', info);
  }

  _deliver(m) {
    if (!this._live || !this.active) return;
    if (m.offset <= this.position.offset) return; // seen already (defensive)
    this.position.offset = m.offset;
    this._emit('message', decorate(m, this.position.epoch));
  }

  _gap(m) {
    if (!this._live || !this.active) return;
    const previous = this.position;
    this.position = { offset: m.offset, epoch: m.epoch };
    this._emit('reset', { topic: this.topic, reason: m.reason, previous, offset: m.offset, epoch: m.epoch, gap: true });
  }

  _presenceEvent(m) {
    if (this._live && this.active) this._emit(m.type, m);
  }

  _closed(err) {
    this._live = this._inflight = false;
    if (this._first && this.active) this._settle.reject(err);
  }

  publish(data, opts) {
    return this.client.publish(this.topic, data, opts);
  }
  presence() {
    return this.client.presence(this.topic);
  }
  history(opts) {
    return this.client.history(this.topic, opts);
  }
  unsubscribe() {
    return this.client.unsubscribe(this);
  }
}

// ---- fallback transports: SSE or long-polling + POST /http/request -----------
//
// A stand-in for a WebSocket (readyState, send, close, onmessage, onclose)
// so the Client above drives it unchanged: subscribes become the stream's
// (or the poll's) topic list with each topic's position, other requests go
// one at a time (in call order) to POST /http/request.

function httpBase(wsUrl, override) {
  if (override) return String(override).replace(/\/+$/, '');
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = u.pathname.replace(/\/[^/]*$/, '');
  u.search = u.hash = '';
  return u.href.replace(/\/+$/, '');
}

class HttpSocket {
  constructor(client, kind, token, session) {
    this.kind = kind; // 'sse' | 'poll'
    this.readyState = 0;
    this.onmessage = this.onclose = this.onerror = null;
    this.streamed = false; // the SSE stream (or a poll) answered at least once
    this._client = client;
    this._base = httpBase(client.url, client.options.httpUrl);
    this._token = token == null || token === '' ? null : String(token);
    this._fetch = client._fetch;
    this._ES = client._EventSource;
    this._pollTimeout = client.options.pollTimeout;
    // {topic, pos: 'OFFSET.EPOCH' | '', pending: request id | null, presence, info, history}
    this._topics = [];
    this._chain = Promise.resolve();
    this._gen = 0;
    this._ac = null;
    this._es = null;
    this._renewing = null;
    // The hub's session makes this client's requests one client (id,
    // presence, rate limits): continue the last one if it is still alive.
    this._sid = session && session.sid ? session.sid : null;
    // A page that goes away leaves its topics at once, as a closed WebSocket
    // does, not --session-idle later (a page kept in the back/forward cache
    // may come back: its session expires if it does not).
    this._onPageHide = (e) => {
      if (!e.persisted) this._leaveAll(true);
    };
    globalThis.addEventListener?.('pagehide', this._onPageHide);
    this._handshake().then((w) => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this._deliver({ ...w, transport: kind });
    }, (e) => this._fail(e.closeCode ?? 1006, e.message));
  }

  // GET /poll without topics: opens (or continues) the session; the answer holds its welcome.
  async _handshake() {
    for (let tries = 0; ; tries++) {
      const q = this._sid ? `?timeout=0&session=${this._sid}` : '?timeout=0';
      let res;
      try {
        res = await this._fetch(`${this._base}/poll${q}`, { headers: this._headers(false) });
      } catch (e) {
        throw Object.assign(new Error(`GET /poll failed: ${e && e.message || e}`), { closeCode: 1006 });
      }
      if (res.status === 410 && this._sid && tries === 0) {
        this._sid = null; // expired: a new session (positions are ours: nothing is lost)
        continue;
      }
      if (res.status === 401) throw Object.assign(new Error((await res.text().catch(() => '')).trim() || 'unauthorized'), { closeCode: UNAUTHORIZED });
      if (!res.ok) throw Object.assign(new Error(`GET /poll: HTTP ${res.status}`), { closeCode: 1006 });
      const body = await res.json();
      const w = (body.events || []).find((e) => e.type === 'welcome');
      const close = (body.events || []).find((e) => e.type === 'close');
      if (close) throw Object.assign(new Error(close.reason || 'closed by the server'), { closeCode: close.code || 1006 });
      if (!w || !body.session) throw Object.assign(new Error('GET /poll: no session in the answer'), { closeCode: 1006 });
      this._sid = body.session;
      this._client._httpSession = { sid: body.session };
      return w;
    }
  }

  // The hub forgot the session (410): start a new one and carry on from the
  // positions held (the stream or poll restarts with them).
  _renew() {
    if (!this._renewing) {
      this._sid = null;
      this._renewing = this._handshake().then((w) => {
        this._renewing = null;
        if (this.readyState !== 1) return;
        this._client.id = w.client;
        this._client._emit('session', { session: w.session, client: w.client });
        this._restart();
      }, (e) => {
        this._renewing = null;
        throw e;
      });
    }
    return this._renewing;
  }

  _session(sep) {
    return this._sid ? `${sep}session=${this._sid}` : '';
  }

  setToken(token) {
    this._token = token == null || token === '' ? null : String(token);
    // A waiting poll or an open stream keeps the token it was sent with (and
    // ends at its exp): start them again with this one.
    if (this._es || this._ac) this._restart();
  }

  _headers(json) {
    const h = {};
    if (json) h['Content-Type'] = 'application/json';
    if (this._token) h.Authorization = `Bearer ${this._token}`;
    return h;
  }

  _deliver(m) {
    if (this.readyState === 3) return;
    this.onmessage?.({ data: JSON.stringify(m) });
  }

  _fail(code, reason) {
    if (this.readyState === 3) return;
    this._stop();
    this.onclose?.({ code, reason: reason || '' });
  }

  _stop() {
    globalThis.removeEventListener?.('pagehide', this._onPageHide);
    this.readyState = 3;
    this._gen++;
    try {
      this._ac?.abort();
    } catch {
      /* gone */
    }
    this._es?.close();
    this._es = this._ac = null;
  }

  close(code = 1000, reason = '') {
    if (this.readyState === 3) return;
    this._leaveAll();
    this._stop();
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }
  terminate() {
    this._stop();
  }

  // An empty topic list: the session leaves every topic now (presence), not
  // at its expiry. keepalive: the request outlives a page being unloaded.
  _leaveAll(keepalive = false) {
    if (!this._sid || this.readyState !== 1) return;
    this._fetch(`${this._base}/poll?topics=&timeout=0${this._session('&')}`, { headers: this._headers(false), keepalive })
      .then((r) => r.body?.cancel?.(), () => {});
  }

  // One request at a time, in order; rejects with {closeCode} when the hub is unreachable.
  _post(body) {
    const run = async () => {
      let res;
      for (let tries = 0; ; tries++) {
        try {
          res = await this._fetch(`${this._base}/http/request${this._session('?')}`, {
            method: 'POST', headers: this._headers(true), body: JSON.stringify(body),
          });
        } catch (e) {
          throw Object.assign(new Error(`POST /http/request failed: ${e && e.message || e}`), { closeCode: 1006 });
        }
        // 410: the session is gone and the request was not done: renew, send again.
        if (res.status !== 410 || tries > 0 || !this._sid) break;
        await res.text().catch(() => '');
        await this._renew();
      }
      const text = await res.text().catch(() => '');
      if (res.status === 401) throw Object.assign(new Error(text.trim() || 'unauthorized'), { closeCode: UNAUTHORIZED });
      if (res.status >= 500 || res.status === 404) throw Object.assign(new Error(`POST /http/request: HTTP ${res.status}`), { closeCode: 1006 });
      try {
        return JSON.parse(text);
      } catch {
        return { type: 'reply', ok: false, error: { code: `http_${res.status}`, message: text.trim() } };
      }
    };
    const p = this._chain.then(run, run);
    this._chain = p.catch(() => {});
    return p;
  }

  send(text) {
    if (this.readyState !== 1) return;
    const m = JSON.parse(text);
    if (m.op === 'subscribe') {
      const pos = m.since && m.since.epoch ? `${m.since.offset}.${m.since.epoch}` : '';
      const opts = { pos, pending: m.id, presence: !!m.presence, info: m.info, history: m.history };
      const old = this._topics.find((t) => t.topic === m.topic);
      if (old) Object.assign(old, opts);
      else this._topics.push({ topic: m.topic, ...opts });
      this._restart();
      return;
    }
    if (m.op === 'unsubscribe') {
      const i = this._topics.findIndex((t) => t.topic === m.topic);
      if (i >= 0) this._topics.splice(i, 1);
      this._restart();
      queueMicrotask(() => this._deliver({ type: 'reply', id: m.id, ok: i >= 0 }));
      return;
    }
    this._post(m).then((r) => {
      if (m.id != null) r.id = m.id;
      this._deliver(r);
    }, (e) => this._fail(e.closeCode ?? 1006, e.message));
  }

  // A subscribe reply (ids 1, 2, ... in the list's order).
  _reply(list, ev) {
    const t = list[ev.id - 1];
    if (!t || !this._topics.includes(t)) return;
    if (t.pending != null) {
      const id = t.pending;
      t.pending = null;
      if (!ev.ok) this._topics.splice(this._topics.indexOf(t), 1);
      this._deliver({ ...ev, id });
    } else if (!ev.ok || ev.recovered === false) {
      // A topic resumed by a new stream (or poll) could not be: the
      // subscription reports the reset (or the refusal) as for a resume.
      if (!ev.ok) this._topics.splice(this._topics.indexOf(t), 1);
      this._deliver({ ...ev, type: 'resumed', id: undefined });
    }
  }

  _positions(list, ids) {
    const parts = String(ids || '').split(',');
    list.forEach((t, i) => {
      if (parts[i] && /^\d+\.[0-9a-f]+$/.test(parts[i])) t.pos = parts[i];
    });
  }

  _query(list) {
    let q = `topics=${encodeURIComponent(list.map((t) => t.topic).join(','))}`;
    if (list.some((t) => t.pos)) q += `&since=${encodeURIComponent(list.map((t) => t.pos).join(','))}`;
    const pres = list.filter((t) => t.presence).map((t) => t.topic);
    if (pres.length) q += `&presence=${encodeURIComponent(pres.join(','))}`;
    const info = {};
    for (const t of list) if (t.info !== undefined) info[t.topic] = t.info;
    if (Object.keys(info).length) q += `&info=${encodeURIComponent(JSON.stringify(info))}`;
    const history = Math.max(0, ...list.filter((t) => !t.pos && t.history > 0).map((t) => t.history));
    if (history) q += `&history=${history}`;
    return q + this._session('&');
  }

  _restart() {
    if (this.readyState !== 1) return;
    const gen = ++this._gen;
    try {
      this._ac?.abort();
    } catch {
      /* gone */
    }
    this._es?.close();
    this._es = this._ac = null;
    if (!this._topics.length) return this._leaveAll();
    if (this.kind === 'sse') this._openStream(gen);
    else this._poll(gen);
  }

  _openStream(gen) {
    const list = this._topics.slice();
    let url = `${this._base}/sse?${this._query(list)}`;
    if (this._token) url += `&token=${encodeURIComponent(this._token)}`;
    const es = new this._ES(url);
    this._es = es;
    const live = () => gen === this._gen && es === this._es;
    es.addEventListener('welcome', () => {
      if (live()) this.streamed = true;
    });
    es.addEventListener('reply', (e) => {
      if (live()) this._reply(list, JSON.parse(e.data));
    });
    for (const type of ['message', 'join', 'leave', 'gap']) {
      es.addEventListener(type, (e) => {
        if (!live()) return;
        if (e.lastEventId) this._positions(list, e.lastEventId);
        this._deliver(JSON.parse(e.data));
      });
    }
    es.addEventListener('close', (e) => {
      if (!live()) return;
      let c = {};
      try {
        c = JSON.parse(e.data);
      } catch {
        /* no detail */
      }
      this._fail(c.code || 1006, c.reason || 'the server closed the stream');
    });
    es.onerror = () => {
      if (!live()) return;
      this._fail(1006, this.streamed ? 'the event stream was lost' : 'the event stream could not be opened');
    };
  }

  async _poll(gen) {
    while (gen === this._gen && this.readyState === 1 && this._topics.length) {
      const list = this._topics.slice();
      const ac = typeof AbortController === 'function' ? new AbortController() : null;
      this._ac = ac;
      let body;
      try {
        const res = await this._fetch(`${this._base}/poll?${this._query(list)}&timeout=${list.some((t) => t.pending != null) ? 0 : this._pollTimeout}`,
          { headers: this._headers(false), signal: ac?.signal });
        if (gen !== this._gen) return;
        if (res.status === 401) return this._fail(UNAUTHORIZED, 'unauthorized');
        if (res.status === 410) {
          await res.text().catch(() => '');
          return this._renew().catch((e) => this._fail(e.closeCode ?? 1006, e.message));
        }
        if (!res.ok) return this._fail(1006, `GET /poll: HTTP ${res.status}`);
        body = await res.json();
      } catch (e) {
        if (gen === this._gen) this._fail(1006, `GET /poll failed: ${e && e.message || e}`);
        return;
      }
      if (gen !== this._gen) return; // restarted for other topics: the next poll asks again
      this.streamed = true;
      for (const ev of body.events || []) {
        if (gen !== this._gen || this.readyState !== 1) return;
        if (ev.type === 'reply') this._reply(list, ev);
        else if (ev.type === 'close') return this._fail(ev.code || 1006, ev.reason || 'closed by the server');
        else this._deliver(ev);
      }
      if (gen !== this._gen) return;
      this._positions(list, body.since);
    }
  }
}

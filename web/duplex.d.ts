// Type declarations for web/duplex.js, the client of `duplex serve`
// (protocol duplex.v1). Guide: docs/CLIENT.md; wire protocol: docs/PROTOCOL.md.

export const PROTOCOL: 'duplex.v1';
export const VERSION: string;

/** A JSON value as it travels in `data`. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A point in a topic's stream: the offset of a publication in its epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

export type State = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** How the client reaches the hub: a WebSocket, or a fallback (SSE + POST, long-polling + POST). */
export type Transport = 'websocket' | 'sse' | 'poll';

export interface StateEvent {
  state: State;
  previous: State;
  /**
   * Why: 'connected' | 'reconnected' (open); 'closed' (the socket closed, see
   * `code`) | 'heartbeat_timeout' | 'connect_timeout' | 'error' |
   * 'token_error' (reconnecting); 'client' (close() was called) | 'fatal' (a
   * close code after which reconnecting cannot help) | 'gave_up' (the
   * attempts ran out) (closed).
   */
  reason: string;
  /** The WebSocket close code, when a close caused this. */
  code?: number | null;
  /** A sentence for people. */
  message?: string;
  /** Reconnecting: the attempt number (1, 2, ...) and its delay in ms. */
  attempt?: number;
  delay?: number;
  /** Open: this connection's client id. */
  client?: string;
  /** Closed with 'gave_up': what ended the last attempt. */
  cause?: string;
  /** The transport in use (open) or being tried (connecting, reconnecting). */
  transport: Transport;
}

export interface Options {
  /**
   * A connection token (JWT), sent as the subprotocol `duplex.token.JWT` (or the
   * `token` query parameter when it cannot be one). A function is called before
   * every connection and for refreshes; with one, close code 4001 is retried
   * with a fresh token and the token is refreshed before its `exp`.
   */
  token?: string | (() => string | Promise<string>);
  /** The WebSocket constructor (Node < 22: `import WebSocket from 'ws'`); default: globalThis.WebSocket. */
  WebSocket?: unknown;
  /** Reconnect with full-jitter exponential backoff, or false for never. Defaults: 500, 10000, Infinity. */
  reconnect?: false | { base?: number; cap?: number; attempts?: number };
  /** Ping every `interval` ms; no reply within `timeout` ms = dead connection. Defaults: 10000, 5000. */
  heartbeat?: false | { interval?: number; timeout?: number };
  /** Until the welcome, in ms (default 10000). */
  connectTimeout?: number;
  /** Until a reply, in ms (default 10000); also how long non-publish requests wait for a connection. */
  requestTimeout?: number;
  /** Publishes kept while disconnected (default 100; 0: reject at once with 'not_connected'). */
  queue?: number;
  /** A connection open this long (ms) resets the backoff (default 5000). */
  stableAfter?: number;
  /** Close codes after which not to reconnect (default: isFatalCloseCode). */
  fatalCodes?: number[] | ((code: number) => boolean);
  /**
   * The transports to use, in order of preference (default ['websocket', 'sse',
   * 'poll']; those this environment lacks are left out: no EventSource, no 'sse').
   */
  transports?: Transport[];
  /** WebSocket attempts that fail before opening, in a row, before the next transport is tried (default 2). */
  fallbackAfter?: number;
  /** On a fallback transport, try WebSocket again after a second, then this often, in ms (default 60000; 0: never). */
  retryWebSocket?: number;
  /** Seconds a long-poll waits for publications (default 25, at most 120). */
  pollTimeout?: number;
  /** The base of /sse, /poll and /http/request (default: the WebSocket URL without its last path segment, http(s)). */
  httpUrl?: string;
  /** The EventSource constructor (default: globalThis.EventSource). */
  EventSource?: unknown;
  /** The fetch function (default: globalThis.fetch). */
  fetch?: unknown;
}

/** A publication as delivered (`message` event) or returned by history(). */
export interface Message<T = Json> {
  type: 'message';
  topic: string;
  offset: number;
  /** The epoch of the subscription (added by the client). */
  epoch: string;
  /** The payload; undefined for a binary publication. */
  data?: T;
  /** A binary publication, base64. */
  b64?: string;
  /** A binary publication, decoded. */
  readonly bytes?: Uint8Array;
  /** The publishing client's id (absent for the HTTP and C APIs). */
  from?: string;
}

export interface PresenceEntry {
  client: string;
  user: string;
  info?: Json;
}

export interface PresenceEvent extends PresenceEntry {
  type: 'join' | 'leave';
  topic: string;
}

/** The hub could not replay what this subscription missed: reload. */
export interface ResetEvent {
  topic: string;
  reason: 'too_old' | 'epoch_changed' | 'offset_ahead' | string;
  /** The position the client had. */
  previous: Position | null;
  /** The topic's position now; live messages continue after it. */
  offset: number;
  epoch: string;
  /** True when a live subscription lost publications (a `gap` event from a
   * hub on Redis after an outage), not a resubscribe. */
  gap?: boolean;
}

/** Every successful (re)subscribe. */
export interface SubscribedEvent {
  topic: string;
  offset: number;
  epoch: string;
  /** Subscribed with `since` (a resume). */
  resumed: boolean;
  /** With `resumed`: whether every missed publication follows. */
  recovered?: boolean;
  reason?: string;
}

export interface SubscribeOptions<T = Json> {
  onMessage?: (msg: Message<T>) => void;
  onJoin?: (ev: PresenceEvent) => void;
  onLeave?: (ev: PresenceEvent) => void;
  onReset?: (ev: ResetEvent) => void;
  onSubscribed?: (ev: SubscribedEvent) => void;
  onError?: (err: DuplexError) => void;
  /** Start after this position (resume across page loads). */
  since?: Position;
  /** Without `since`: first deliver up to this many retained publications. */
  history?: number;
  /** Receive join/leave events (default: true when onJoin or onLeave is given). */
  presence?: boolean;
  /** This client's presence info in the topic (at most 1 KiB as JSON). */
  info?: Json;
}

export interface PublishOptions {
  /** Do not deliver it to this connection's own subscription. */
  skipSelf?: boolean;
}

export interface HistoryOptions {
  since?: Position;
  /** 1 ... 1000 (default 100). */
  limit?: number;
}

export interface HistoryResult<T = Json> {
  publications: Message<T>[];
  offset: number;
  epoch: string;
  /** false when publications between `since` (or the start) and the first returned are gone. */
  complete: boolean;
}

export interface Welcome {
  type: 'welcome';
  version: number;
  client: string;
  user: string;
  /** 'token' | 'required' | 'anonymous' */
  auth?: string;
  limits: { max_publication: number; max_subscriptions: number; history_size: number; history_ttl: number };
  /** On SSE and long-polling: the hub's session id, which makes the many HTTP requests one client. */
  session?: string;
  /** On SSE and long-polling: which fallback transport carries it. */
  transport?: 'sse' | 'poll';
}

interface Emitter<Events> {
  on<K extends keyof Events>(type: K, fn: Events[K]): () => void;
  off<K extends keyof Events>(type: K, fn: Events[K]): void;
  once<K extends keyof Events>(type: K, fn: Events[K]): () => void;
}

export interface ClientEvents {
  state: (ev: StateEvent) => void;
  /** The client moved to another transport (it reconnects on it next). */
  transport: (ev: { transport: Transport; previous: Transport }) => void;
  welcome: (w: Welcome) => void;
  /**
   * On SSE or long-polling, the hub had forgotten the session (it expired):
   * the client started a new one and carries on from its positions (a new
   * client id; nothing lost).
   */
  session: (ev: { session: string; client: string }) => void;
  broadcast: (data: Json | Uint8Array, raw: object) => void;
  /** A request without id failed, or the server sent something unreadable. */
  error: (err: DuplexError) => void;
  /** Browser network events (the client also acts on them). */
  online: () => void;
  offline: () => void;
  /** An event type this version does not know. */
  event: (raw: object) => void;
}

export interface SubscriptionEvents<T = Json> {
  message: (msg: Message<T>) => void;
  join: (ev: PresenceEvent) => void;
  leave: (ev: PresenceEvent) => void;
  reset: (ev: ResetEvent) => void;
  subscribed: (ev: SubscribedEvent) => void;
  error: (err: DuplexError) => void;
}

export declare class Client implements Emitter<ClientEvents> {
  constructor(url?: string | URL, options?: Options);
  readonly url: string;
  readonly state: State;
  /** The transport in use (or being tried). */
  readonly transport: Transport;
  readonly connected: boolean;
  /** This connection's client id (null until open; changes with every connection). */
  readonly id: string | null;
  readonly limits: Welcome['limits'] | null;
  /** The user id the hub knows this connection as ("" when anonymous; null until open). */
  readonly user: string | null;
  /** Round trip of the last heartbeat ping, ms. */
  readonly rtt: number | null;
  on<K extends keyof ClientEvents>(type: K, fn: ClientEvents[K]): () => void;
  off<K extends keyof ClientEvents>(type: K, fn: ClientEvents[K]): void;
  once<K extends keyof ClientEvents>(type: K, fn: ClientEvents[K]): () => void;
  whenOpen(): Promise<Client>;
  subscribe<T = Json>(topic: string, options?: SubscribeOptions<T>): Subscription<T>;
  subscription(topic: string): Subscription | undefined;
  unsubscribe(topic: string | Subscription): Promise<void>;
  publish(topic: string, data: Json | ArrayBuffer | ArrayBufferView, options?: PublishOptions): Promise<Position>;
  presence(topic: string): Promise<PresenceEntry[]>;
  history<T = Json>(topic: string, options?: HistoryOptions): Promise<HistoryResult<T>>;
  /** Any request of the protocol; resolves with the reply's fields. */
  request(op: string, fields?: Record<string, Json>): Promise<Record<string, Json>>;
  /** Present a new token (default: from the token function) before the current one expires. */
  refresh(token?: string): Promise<{ exp: number }>;
  /** While reconnecting: try now. */
  reconnect(): void;
  close(code?: number, reason?: string): Promise<void>;
}

export declare class Subscription<T = Json> implements Emitter<SubscriptionEvents<T>> {
  readonly client: Client;
  readonly topic: string;
  /** false after unsubscribe() or a refused subscribe. */
  readonly active: boolean;
  /** Subscribed on the current connection. */
  readonly subscribed: boolean;
  /** The last position handled (null before the first reply). */
  readonly position: Position | null;
  /** The first subscribe reply; rejects with the error if the hub refused. */
  readonly ready: Promise<SubscribedEvent>;
  on<K extends keyof SubscriptionEvents<T>>(type: K, fn: SubscriptionEvents<T>[K]): () => void;
  off<K extends keyof SubscriptionEvents<T>>(type: K, fn: SubscriptionEvents<T>[K]): void;
  once<K extends keyof SubscriptionEvents<T>>(type: K, fn: SubscriptionEvents<T>[K]): () => void;
  publish(data: T | ArrayBuffer | ArrayBufferView, options?: PublishOptions): Promise<Position>;
  presence(): Promise<PresenceEntry[]>;
  history(options?: HistoryOptions): Promise<HistoryResult<T>>;
  unsubscribe(): Promise<void>;
}

/**
 * Errors of requests. `code`: a protocol error code (bad_topic, forbidden,
 * ...), or 'timeout', 'not_connected', 'queue_full', 'connection_lost'
 * (the outcome is unknown), 'closed', 'already_subscribed'.
 */
export declare class DuplexError extends Error {
  constructor(code: string, message?: string, extra?: object);
  code: string;
  /** The server's reply, for protocol errors. */
  reply?: object;
  /** For 'closed' after a fatal close: the close code (e.g. 4001 unauthorized, 4008 too many connections). */
  closeCode?: number;
}

export function connect(url?: string | URL, options?: Options): Client;
export function connect(options: Options): Client;
export function isFatalCloseCode(code: number): boolean;
export function backoffDelay(attempt: number, base: number, cap: number, random?: () => number): number;
export function toBase64(bytes: ArrayBuffer | ArrayBufferView): string;
export function fromBase64(b64: string): Uint8Array;

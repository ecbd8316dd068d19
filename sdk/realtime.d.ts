// Type declarations for the fazt realtime browser SDK (realtime.min.js, global
// `FaztRealtime`; or `src/index.js` as an ES module). Reference: docs/sdk.md.

/** The connection's state; see docs/sdk.md. */
export type State = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** A close code's reconnect class (docs/protocol.md, "Close codes"). */
export type ClosePolicy = 'now' | 'slow' | 'retry' | 'stop';

/**
 * A token, or a function that gives one (sync or async). A function is called
 * on every connection and again when the server says the token expired.
 */
export type TokenSource = string | null | (() => string | null | Promise<string | null>);

export interface BackoffOptions {
  /** Smallest delay and base of the exponential, ms. Default 500. */
  min?: number;
  /** Largest delay, ms. Default 20000. */
  max?: number;
}

export interface Options {
  /** A JWT (or a function giving one), sent in an `auth` message first thing on every connection. */
  token?: TokenSource;
  /** Reconnect delays (full jitter). Default `{min: 500, max: 20000}`. */
  backoff?: BackoffOptions;
  /** ms to wait for the server's `connected` before retrying. Default 10000. */
  connectTimeout?: number;
  /** ms a call waits for the connection or for its answer. Default 10000. */
  callTimeout?: number;
  /** ms of silence from the server after which the client pings it. Default 35000. */
  pingInterval?: number;
  /** ms to wait for any frame after that ping before reconnecting. Default 10000. */
  pingGrace?: number;
  /** ms to wait for a `pong` when the page becomes visible or online again. Default 5000. */
  checkTimeout?: number;
  /** Connect in the constructor. Default true. */
  autoConnect?: boolean;
  /** The WebSocket class. Default: the global `WebSocket`. */
  WebSocket?: new (url: string) => WebSocketLike;
  /** Fires `online`/`offline`, holds `document` (visibility) and `location`. Default: the global `window`; `null` for none. */
  window?: WindowLike | null;
  /** Timer functions. Default: the global ones. */
  timers?: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(id: unknown): void };
  /** ms clock. Default `Date.now`. */
  now?: () => number;
  /** `Math.random` stand-in for the backoff jitter. */
  random?: () => number;
}

/** The part of the WebSocket API the SDK uses. */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((event: { data: any }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: any) => void) | null;
}

export interface WindowLike {
  addEventListener(type: string, fn: () => void): void;
  removeEventListener(type: string, fn: () => void): void;
  document?: {
    visibilityState: string;
    addEventListener(type: string, fn: () => void): void;
    removeEventListener(type: string, fn: () => void): void;
  };
  location?: { href: string; pathname: string };
}

/** A user's claims from the token: `{id, name?, role?, info?}`. */
export interface User {
  id: string;
  name?: string;
  role?: string | string[];
  info?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A presence member: `{id, name, ...info}`. */
export interface Member {
  id: string;
  name?: string;
  [key: string]: unknown;
}

export interface MessageMeta {
  /** The channel, or null for an app-wide `broadcastAll`. */
  channel: string | null;
  /** Server time of the publish, ms since the epoch. */
  timestamp?: number;
  /** The publishing client's id, for client publishes. */
  from?: string;
  /** History channels: the message's offset in the channel's stream. */
  offset?: number;
  /** True for a message missed while disconnected and recovered on resubscribe. */
  recovered?: boolean;
}

/** An Error from the SDK or the server. */
export interface RealtimeError extends Error {
  /**
   * `timeout`, `closed`, `kicked`, `unsubscribed`, `invalid_url`, `invalid_frame`, `token`,
   * or a server code: `invalid_json`, `invalid_message`, `unknown_type`,
   * `invalid_channel`, `unauthorized`, `forbidden`, `not_subscribed`,
   * `subscription_limit`, `channel_limit`, `rate_limited`, `history_disabled`,
   * `history_unrecoverable`, `history_unavailable`.
   */
  code: string;
  channel?: string;
}

export interface SubscribeHandlers {
  onMessage?(data: any, meta: MessageMeta): void;
  onJoin?(member: Member): void;
  onLeave?(member: Member): void;
  /**
   * Every `subscribed`: the first one, after each reconnect, and when the server
   * says the channel's stream lost messages. `recovered: false` means messages
   * may be missing: reload what the page shows (e.g. with `history()`).
   */
  onSubscribed?(info: Subscribed): void;
}

export interface Subscribed {
  channel: string;
  /** Presence channels only: the members when subscribed, you included. */
  members?: Member[];
  /**
   * True when every message missed since the last one this subscription got
   * is delivered (with `meta.recovered`); false when messages may be missing
   * (also on the first subscribe).
   */
  recovered: boolean;
  /** History channels: the channel's latest offset. Otherwise null. */
  offset: number | null;
  /** History channels: the stream's epoch. Otherwise null. */
  epoch: string | null;
}

/** A position in a history channel's stream. */
export interface StreamPosition {
  offset: number;
  epoch: string;
}

export interface HistoryOptions {
  /** The newest `limit` publications (default and most: the channel's `size`). */
  limit?: number;
  /** Instead of `limit`: the publications after this position. */
  since?: StreamPosition;
}

export interface Publication {
  data: any;
  offset: number;
  /** Server time of the publish, ms since the epoch. */
  timestamp: number;
  /** The publishing client's id, for client publishes. */
  from?: string;
}

export interface History {
  /** Oldest first. */
  publications: Publication[];
  /** The channel's latest offset. */
  offset: number;
  epoch: string;
}

export interface DisconnectInfo {
  code: number;
  reason: string;
  /** Whether the SDK will reconnect by itself. */
  reconnect: boolean;
}

export interface ReconnectInfo {
  /** 1 for the first attempt after a loss. */
  attempt: number;
  /** ms until the attempt (0: at once). */
  delay: number;
  /** The close code that caused it. */
  code: number;
}

export interface EventMap {
  connected: (info: { clientId: string | null; user: User | null }) => void;
  disconnected: (info: DisconnectInfo) => void;
  reconnecting: (info: ReconnectInfo) => void;
  /** `channel` is null for an app-wide `broadcastAll`. */
  message: (channel: string | null, data: any, meta: MessageMeta) => void;
  /** An app-wide `broadcastAll` (also delivered as `message` with a null channel). */
  broadcast: (data: any, meta: MessageMeta) => void;
  error: (error: RealtimeError) => void;
  kicked: (reason: string | undefined) => void;
  authenticated: (user: User | null) => void;
  subscribed: (channel: string, members: Member[] | undefined, info: Subscribed) => void;
  /** The server dropped a subscription (`token_expired`, `reauthenticated`). */
  unsubscribed: (channel: string, reason: string) => void;
  presence: (channel: string | null, event: 'join' | 'leave', member: Member) => void;
  state: (state: State, previous: State) => void;
}

export declare class Subscription implements PromiseLike<Subscribed> {
  readonly channel: string;
  state: 'pending' | 'subscribed' | 'unsubscribed' | 'failed';
  /** Presence channels: the current members, kept up to date by join/leave. Otherwise null. */
  members: Member[] | null;
  /** History channels: the offset of the last message received (null: none known). */
  readonly offset: number | null;
  /** History channels: the epoch of that offset. */
  readonly epoch: string | null;
  /** Resolves on the first `subscribed`; rejects on a server error for the channel, on `callTimeout`, or on close. */
  readonly ready: Promise<Subscribed>;
  then<A = Subscribed, B = never>(
    onFulfilled?: ((value: Subscribed) => A | PromiseLike<A>) | null,
    onRejected?: ((error: RealtimeError) => B | PromiseLike<B>) | null,
  ): Promise<A | B>;
  catch<B = never>(onRejected?: ((error: RealtimeError) => B | PromiseLike<B>) | null): Promise<Subscribed | B>;
  unsubscribe(): Promise<void>;
  /** Same as `rt.history(this.channel, options)`. */
  history(options?: HistoryOptions): Promise<History>;
}

export declare class FaztRealtime {
  /** Full-jitter backoff: a delay in [min, max] ms for attempt `attempt` (0-based). */
  static backoff(attempt: number, options?: BackoffOptions, random?: () => number): number;
  /** The reconnect class of a close code. */
  static closePolicy(code: number): ClosePolicy;

  /** @param url default: the page's host plus `/_ws` (ws or wss by the page's protocol). */
  constructor(url?: string | null, options?: Options);

  readonly url: string;
  readonly state: State;
  readonly clientId: string | null;
  readonly user: User | null;
  readonly token: TokenSource;
  readonly options: Options;

  on<E extends keyof EventMap>(event: E, fn: EventMap[E]): () => void;
  off<E extends keyof EventMap>(event: E, fn: EventMap[E]): void;

  connect(): this;
  subscribe(channel: string, handlers?: SubscribeHandlers): Subscription;
  unsubscribe(channel: string): Promise<void>;
  members(channel: string): Promise<Member[]>;
  /** A history channel's kept publications (you must be subscribed). */
  history(channel: string, options?: HistoryOptions): Promise<History>;
  publish(channel: string, data: unknown): Promise<void>;
  setToken(token: TokenSource): void;
  close(): void;
}

export declare function backoff(attempt: number, options?: BackoffOptions, random?: () => number): number;
export declare function closePolicy(code: number): ClosePolicy;

export declare const CONNECTING: 'connecting';
export declare const CONNECTED: 'connected';
export declare const RECONNECTING: 'reconnecting';
export declare const CLOSED: 'closed';

declare global {
  // The <script src="/_fazt/realtime.min.js"> global.
  // eslint-disable-next-line no-var
  var FaztRealtime: typeof import('./realtime').FaztRealtime;
}

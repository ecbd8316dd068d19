// @ts-check
/**
 * FaztRealtime: one WebSocket to a fazt app's `/_ws`, kept alive for the page.
 *
 * The connection is a small state machine (see `State`). Every wanted
 * subscription lives in `_subs` and is sent again after each (re)connect, so
 * a reconnect is invisible to the page apart from the `disconnected`,
 * `reconnecting` and `connected` events. On a history channel a subscription
 * remembers the position (`offset`, `epoch`) of the last message it got and
 * subscribes again with `since`, so the server sends what was missed (or says
 * it cannot: `onSubscribed({recovered: false})`); messages are deduplicated by
 * offset. The protocol is docs/protocol.md.
 */
import { Emitter } from './emitter.js';
import { backoff, closePolicy, NOW, RETRY, SLOW, STOP } from './policy.js';
import { resolveUrl } from './url.js';

/**
 * @typedef {'connecting' | 'connected' | 'reconnecting' | 'closed'} State
 * - `connecting`: a socket is opening, waiting for the server's `connected`;
 * - `connected`: the server said `connected`; calls are sent at once;
 * - `reconnecting`: the connection was lost, waiting for the next attempt;
 * - `closed`: not connected and not trying (initial state, `close()`, kick,
 *   or a 4000-4099 close code). `connect()` leaves it.
 */
export const CONNECTING = 'connecting';
export const CONNECTED = 'connected';
export const RECONNECTING = 'reconnecting';
export const CLOSED = 'closed';

/**
 * @typedef {object} Options
 * @property {TokenSource} [token] a JWT, sent in an `auth` message first thing on every connection;
 *   or a function returning one (or a Promise of one), called on every connection and when the token expires
 * @property {import('./policy.js').BackoffOptions} [backoff] reconnect delays, default `{min: 500, max: 20000}` ms
 * @property {number} [connectTimeout] ms to wait for the server's `connected` before retrying (10000)
 * @property {number} [callTimeout] ms a call waits for the connection or for its answer (10000)
 * @property {number} [pingInterval] ms of silence from the server after which the client pings it (35000; the server pings every 30000)
 * @property {number} [pingGrace] ms to wait for any frame after that ping before the connection is declared dead (10000)
 * @property {number} [checkTimeout] ms to wait for a `pong` when the page comes back (visible, online) (5000)
 * @property {boolean} [autoConnect] connect in the constructor (true)
 * @property {any} [WebSocket] the WebSocket class (default: the global one)
 * @property {any} [window] the object that fires `online`/`offline` and holds `document` and `location` (default: the global `window`, `null` for none)
 * @property {{setTimeout: Function, clearTimeout: Function}} [timers] default: the globals
 * @property {() => number} [now] ms clock, default `Date.now`
 * @property {() => number} [random] `Math.random` stand-in for the backoff jitter
 */

/**
 * @typedef {object} SubscribeHandlers
 * @property {(data: any, meta: MessageMeta) => void} [onMessage]
 * @property {(member: any) => void} [onJoin]
 * @property {(member: any) => void} [onLeave]
 * @property {(info: Subscribed) => void} [onSubscribed] every `subscribed`: the first, after each reconnect, and when the server says the stream lost messages
 */

/** @typedef {{channel: string | null, timestamp?: number, from?: string, offset?: number, recovered?: boolean}} MessageMeta */
/**
 * @typedef {object} Subscribed
 * @property {string} channel
 * @property {any[]} [members] presence channels: the members, you included
 * @property {boolean} recovered true when every message missed since the last one this subscription got is delivered (with `meta.recovered`); false when some may be lost
 * @property {number | null} offset the channel's latest offset (history channels; else null)
 * @property {string | null} epoch the channel's stream epoch (history channels; else null)
 */
/** @typedef {string | null | (() => string | null | Promise<string | null>)} TokenSource */
/** @typedef {{limit?: number, since?: {offset: number, epoch: string}}} HistoryOptions */
/** @typedef {{publications: {data: any, offset: number, timestamp: number, from?: string}[], offset: number, epoch: string}} History */
/** @typedef {{type: string, channel: string, [field: string]: any}} Request */
/** @typedef {{resolve: (value: any) => void, reject: (e: Error) => void, timer: any, message: Request}} Call */

// Channel names as the server accepts them (docs/protocol.md): checked here so
// a typo fails at once with a clear error instead of after a round trip.
const CHANNEL = /^[A-Za-z0-9_\-=@,.;:]{1,200}$/;
/** @param {unknown} channel */
const validChannel = (channel) => typeof channel === 'string' && CHANNEL.test(channel);
const noop = () => {};

/**
 * An Error with the protocol's `code` (`timeout`, `closed`, `invalid_channel`,
 * or a server error code such as `forbidden`) and the `channel` it concerns.
 * @param {string} code
 * @param {string} text
 * @param {string | null} [channel]
 */
function fail(code, text, channel) {
  const error = /** @type {Error & {code: string, channel?: string}} */ (new Error(text));
  error.code = code;
  if (channel != null) error.channel = channel;
  return error;
}

/**
 * One wanted channel. Thenable: `await rt.subscribe(c)` waits for `ready`.
 */
export class Subscription {
  /**
   * @param {FaztRealtime} rt
   * @param {string} channel
   */
  constructor(rt, channel) {
    this.channel = channel;
    /** @type {'pending' | 'subscribed' | 'unsubscribed' | 'failed'} */
    this.state = 'pending';
    /** Current members of a presence channel (from `subscribed`, kept up to date by join/leave), else null. @type {any[] | null} */
    this.members = null;
    /** History channels: the offset of the last message received (null: none known). @type {number | null} */
    this.offset = null;
    /** History channels: the epoch of that offset. @type {string | null} */
    this.epoch = null;
    /** Recovered messages are those up to this offset. */
    this._recoverTo = 0;
    /** @type {SubscribeHandlers[]} */
    this._handlers = [];
    /** @type {(value: Subscribed) => void} */
    this._resolve = noop;
    /** @type {(error: Error) => void} */
    this._reject = noop;
    /**
     * Resolves with the first `subscribed` answer; rejects on a server error
     * for this channel, on `callTimeout` without an answer, or on `close()`.
     * @type {Promise<Subscribed>}
     */
    this.ready = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    // Handled here so a page that never looks at `ready` gets no
    // "unhandled rejection" noise; `.then`/`await` still see the rejection.
    this.ready.catch(noop);
    this._timer = rt._after(rt.options.callTimeout, () =>
      this._settle(fail('timeout', `subscribe to ${channel} timed out`, channel)),
    );
    this._rt = rt;
  }

  /**
   * @param {((value: Subscribed) => any) | null} [onFulfilled]
   * @param {((error: any) => any) | null} [onRejected]
   */
  then(onFulfilled, onRejected) {
    return this.ready.then(onFulfilled, onRejected);
  }

  /** @param {(error: any) => any} onRejected */
  catch(onRejected) {
    return this.ready.catch(onRejected);
  }

  /** Same as `rt.unsubscribe(this.channel)`. */
  unsubscribe() {
    return this._rt.unsubscribe(this.channel);
  }

  /**
   * Same as `rt.history(this.channel, options)`.
   * @param {HistoryOptions} [options]
   */
  history(options) {
    return this._rt.history(this.channel, options);
  }

  /** The `subscribe` message: with `since` when a position is known (history channels). */
  _request() {
    const since = this.epoch === null ? undefined : { offset: this.offset, epoch: this.epoch };
    return { type: 'subscribe', channel: this.channel, since };
  }

  /**
   * Settle `ready` once: with the `subscribed` answer, or with an error.
   * @param {Error | Subscribed} outcome
   */
  _settle(outcome) {
    this._rt._clear(this._timer);
    if (outcome instanceof Error) this._reject(outcome);
    else this._resolve(outcome);
    this._resolve = this._reject = noop;
  }

  /**
   * @param {'onMessage' | 'onJoin' | 'onLeave' | 'onSubscribed'} name
   * @param {...any} args
   */
  _fire(name, ...args) {
    for (const handlers of this._handlers) {
      const fn = handlers[name];
      if (fn) this._rt._safely(() => /** @type {Function} */ (fn)(...args));
    }
  }
}

export class FaztRealtime extends Emitter {
  /**
   * @param {string | null} [url] default: the page's host plus `/_ws`
   * @param {Options} [options]
   */
  constructor(url, options = {}) {
    super();
    /** @type {Required<Pick<Options, 'backoff' | 'connectTimeout' | 'callTimeout' | 'pingInterval' | 'pingGrace' | 'checkTimeout'>> & Options} */
    this.options = {
      backoff: {},
      connectTimeout: 10000,
      callTimeout: 10000,
      pingInterval: 35000,
      pingGrace: 10000,
      checkTimeout: 5000,
      ...options,
    };
    const g = /** @type {any} */ (globalThis);
    this._window = 'window' in options ? options.window : g.window || null;
    this._WebSocket = options.WebSocket || g.WebSocket;
    if (!this._WebSocket) throw new Error('FaztRealtime: no WebSocket class (pass options.WebSocket)');
    this.url = resolveUrl(url, this._window && this._window.location);
    /** @type {TokenSource} */
    this.token = options.token || null;
    this._refreshing = false;
    /** @type {State} */
    this.state = CLOSED;
    /** The id the server gave this connection (`null` before the first one). @type {string | null} */
    this.clientId = null;
    /** The authenticated user's claims, or null for an anonymous connection. @type {any} */
    this.user = null;
    /** Wanted subscriptions, by channel. @type {Map<string, Subscription>} */
    this._subs = new Map();
    /** Subscriptions the server dropped because the token expired; back on `setToken`. @type {Map<string, Subscription>} */
    this._expired = new Map();
    /** Calls waiting for the connection. @type {Set<{resolve: () => void, reject: (e: Error) => void, timer: any}>} */
    this._waiting = new Set();
    /**
     * Calls waiting for their answer, by `<type> <channel>` (`members`, `history`),
     * oldest first: the server answers a connection's requests in order. One
     * `members` request answers every waiting `members` call of its channel.
     * @type {Map<string, Call[]>}
     */
    this._calls = new Map();
    /** Every client id this instance had: its own messages, recovered, are not shown. @type {Set<string>} */
    this._ids = new Set();
    /** @type {any} */
    this._ws = null;
    this._attempt = 0;
    this._lastSeen = 0;
    /** When the current connection got `connected` (0: not connected). */
    this._connectedAt = 0;
    this._kicked = false;
    this._listening = false;
    /** @type {any} */ this._retryTimer = null;
    /** @type {any} */ this._connectTimer = null;
    /** @type {any} */ this._heartbeatTimer = null;
    /** @type {any} */ this._probeTimer = null;
    this._onVisible = () => {
      const doc = this._window && this._window.document;
      if (!doc || doc.visibilityState !== 'hidden') this._check();
    };
    this._onOnline = () => this._check();
    this._onOffline = () => {
      if (this.state === CONNECTED) this._probe(this.options.checkTimeout);
    };
    if (options.autoConnect !== false) this.connect();
  }

  // -- public API ----------------------------------------------------------------

  /**
   * Open the connection (done by the constructor unless `autoConnect: false`),
   * or reopen it after `close()`, a kick or a 4000-4099 close. No-op when
   * already connected or trying.
   * @returns {this}
   */
  connect() {
    if (this.state === CLOSED) {
      this._kicked = false;
      this._attempt = 0;
      this._listen(true);
      this._open();
    }
    return this;
  }

  /**
   * Subscribe to `channel`, now and after every reconnect, until `unsubscribe`.
   * Subscribing again to a wanted channel returns the same subscription, with
   * the new handlers added. A channel the server refuses (`forbidden`,
   * `unauthorized`, `invalid_channel`, limits) is dropped from the wanted set
   * and its `ready` rejects with that error code.
   * @param {string} channel
   * @param {SubscribeHandlers} [handlers]
   * @returns {Subscription}
   */
  subscribe(channel, handlers) {
    let sub = this._subs.get(channel);
    const expired = this._expired.get(channel);
    if (expired) {
      // Asked for again after the server dropped it: try again (with the
      // current token; the server answers `unauthorized` if it is still stale).
      this._expired.delete(channel);
      this._subs.set(channel, (sub = expired));
      sub.state = 'pending';
      this._send(sub._request());
    } else if (!sub) {
      sub = new Subscription(this, channel);
      if (!validChannel(channel)) {
        sub.state = 'failed';
        sub._settle(fail('invalid_channel', `invalid channel name: ${String(channel).slice(0, 64)}`, channel));
        return sub;
      }
      this._subs.set(channel, sub);
      this._send(sub._request());
    }
    if (handlers) sub._handlers.push(handlers);
    return sub;
  }

  /**
   * Stop wanting `channel`: it is not resubscribed after a reconnect, and its
   * handlers get nothing more. Resolves once the request is sent (at once when
   * not connected: a new connection starts with no subscriptions anyway).
   * @param {string} channel
   * @returns {Promise<void>}
   */
  unsubscribe(channel) {
    const sub = this._subs.get(channel) || this._expired.get(channel);
    this._subs.delete(channel);
    this._expired.delete(channel);
    if (sub) {
      sub.state = 'unsubscribed';
      sub._settle(fail('unsubscribed', `unsubscribed from ${channel} before the server answered`, channel));
      this._send({ type: 'unsubscribe', channel });
    }
    return Promise.resolve();
  }

  /**
   * The members of a presence channel this client is subscribed to. Waits for
   * the connection when disconnected; rejects with `not_subscribed` (server),
   * `timeout` (no answer in `callTimeout`) or `closed` (at once when closed).
   * @param {string} channel
   * @returns {Promise<any[]>}
   */
  members(channel) {
    return this._ask(channel, { type: 'members', channel });
  }

  /**
   * The publications a history channel keeps, oldest first: the newest `limit`
   * (default and most: the channel's `size`), or those after `since`. You must
   * be subscribed. Waits for the connection when disconnected; rejects with
   * `history_disabled`, `history_unrecoverable`, `not_subscribed` (server),
   * `timeout` or `closed`.
   * @param {string} channel
   * @param {HistoryOptions} [options]
   * @returns {Promise<History>}
   */
  history(channel, options = {}) {
    return this._ask(channel, { type: 'history', channel, limit: options.limit, since: options.since });
  }

  /**
   * Send a request answered by channel (`members`, `history`) now or once
   * connected; it is sent again after a reconnect until answered.
   * @param {string} channel
   * @param {Request} message
   * @returns {Promise<any>}
   */
  _ask(channel, message) {
    return new Promise((resolve, reject) => {
      if (!validChannel(channel)) return reject(fail('invalid_channel', 'invalid channel name', channel));
      if (this.state === CLOSED) return reject(fail('closed', 'not connected: call connect() first', channel));
      const key = message.type + ' ' + channel;
      let calls = this._calls.get(key);
      if (!calls) this._calls.set(key, (calls = []));
      /** @type {Call} */
      const call = {
        resolve,
        reject,
        message,
        timer: this._after(this.options.callTimeout, () => {
          this._settle(key, fail('timeout', `${message.type} of ${channel} timed out`, channel), call);
        }),
      };
      calls.push(call);
      if (calls.length === 1 || message.type !== 'members') this._send(message);
    });
  }

  /**
   * Settle waiting calls of `key`: `only` that one, else the oldest (all of them
   * for `members`), with a value or an error.
   * @param {string} key
   * @param {any} outcome
   * @param {Call} [only]
   */
  _settle(key, outcome, only) {
    const calls = this._calls.get(key) || [];
    const done = only ? [only] : key.startsWith('members') ? calls.slice() : calls.slice(0, 1);
    for (const call of done) {
      calls.splice(calls.indexOf(call), 1);
      this._clear(call.timer);
      if (outcome instanceof Error) call.reject(outcome);
      else call.resolve(outcome);
    }
    if (!calls.length) this._calls.delete(key);
  }

  /**
   * Publish `data` (any JSON value) to `channel`, where its rule allows client
   * publishing (`"publish": true`) and this client is subscribed. Resolves when
   * the message is handed to the socket, after waiting for the connection up
   * to `callTimeout` (`timeout`) if needed. The server's refusal
   * (`forbidden`, `not_subscribed`, `rate_limited`) arrives as an `error` event.
   * @param {string} channel
   * @param {any} data
   * @returns {Promise<void>}
   */
  publish(channel, data) {
    if (!validChannel(channel)) return Promise.reject(fail('invalid_channel', 'invalid channel name', channel));
    // Encoded now, so data that JSON cannot carry fails here and not later.
    let text;
    try {
      text = JSON.stringify({ type: 'message', channel, data: data === undefined ? null : data });
    } catch (error) {
      return Promise.reject(fail('invalid_message', `data is not JSON: ${error}`, channel));
    }
    return this._whenConnected().then(() => {
      if (!this._sendText(text)) throw fail('closed', 'connection lost before the message was sent', channel);
    });
  }

  /**
   * Set or replace the token (null to forget it), or the function that gives
   * one. When connected it is sent at once in an `auth` message; it is also
   * sent first on every new connection. Subscriptions the server dropped with
   * reason `token_expired` are wanted again and resubscribed after the new token.
   * @param {TokenSource} token
   */
  setToken(token) {
    this.token = token || null;
    this._withToken((value) => {
      if (value) this._send({ type: 'auth', token: value });
      for (const [channel, sub] of this._expired) {
        this._expired.delete(channel);
        this._subs.set(channel, sub);
        sub.state = 'pending';
        this._send(sub._request());
      }
    });
  }

  /**
   * Close the connection for good (until `connect()`): no reconnect, pending
   * calls reject with `closed`. Subscriptions stay wanted for a later `connect()`.
   */
  close() {
    const error = fail('closed', 'connection closed by the client');
    if (this._ws) this._drop(1000, 'closed by the client', STOP, error);
    else this._shut(error);
  }

  // -- connection lifecycle ----------------------------------------------------------

  /** Open a new socket; the server's `connected` message completes it. */
  _open() {
    this._clearTimers();
    this._setState(CONNECTING);
    if (this.state !== CONNECTING) return; // closed by a 'state' listener
    let ws;
    try {
      ws = new this._WebSocket(this.url);
    } catch (error) {
      // A malformed URL never works: say so instead of retrying forever.
      this.emit('error', fail('invalid_url', `cannot open ${this.url}: ${error}`));
      this._shut(fail('closed', `cannot open ${this.url}`));
      return;
    }
    this._ws = ws;
    this._lastSeen = this._now();
    ws.onmessage = (/** @type {{data: any}} */ event) => this._receive(event.data);
    ws.onclose = (/** @type {{code: number, reason: string}} */ event) =>
      this._lost(event.code, event.reason, closePolicy(event.code));
    ws.onerror = noop; // a close event always follows, with the code
    this._connectTimer = this._after(this.options.connectTimeout, () =>
      this._drop(1006, 'connect timeout', RETRY),
    );
  }

  /**
   * Close the current socket from this side and handle it as lost. Handlers
   * are detached first: a dead socket's close event may come much later.
   * @param {number} code
   * @param {string} reason
   * @param {'now' | 'slow' | 'retry' | 'stop'} policy
   * @param {Error} [error] why, when `policy` is STOP
   */
  _drop(code, reason, policy, error) {
    const ws = this._ws;
    if (!ws) return;
    this._lost(code, reason, policy, error);
    try {
      ws.close(1000, reason);
    } catch {
      // already closing or closed: nothing more to do
    }
  }

  /**
   * The socket is gone: tell the page, then reconnect or stop per `policy`.
   * @param {number} code
   * @param {string} reason
   * @param {'now' | 'slow' | 'retry' | 'stop'} policy
   * @param {Error} [error] why, when `policy` is STOP (default: from `code`)
   */
  _lost(code, reason, policy, error) {
    const ws = this._ws;
    if (!ws) return;
    ws.onmessage = ws.onclose = ws.onerror = null;
    this._ws = null;
    this._clearTimers();
    for (const sub of this._subs.values()) sub.state = 'pending';
    if (this._kicked) policy = STOP;
    this.emit('disconnected', { code, reason: reason || '', reconnect: policy !== STOP });
    // A listener may have called close() (or connect() after it): that wins.
    if (this.state === CLOSED || this._ws) return;
    if (policy === STOP) {
      this._shut(
        error ||
          (code === 4003 || this._kicked
            ? fail('kicked', 'kicked by the server')
            : fail('closed', `closed by the server (${code}${reason ? ' ' + reason : ''})`)),
      );
      return;
    }
    // "Reconnect now" is for a connection that worked: one that the server
    // closes within a second of connecting backs off instead, so a server that
    // keeps doing so never sees a tight reconnect loop.
    if (policy === NOW && this._now() - this._connectedAt < 1000) policy = RETRY;
    this._connectedAt = 0;
    const attempt = this._attempt++;
    const delay =
      policy === NOW && attempt === 0
        ? 0
        : backoff(policy === SLOW ? attempt + 2 : attempt, this.options.backoff, this.options.random);
    this._setState(RECONNECTING);
    if (this.state !== RECONNECTING) return; // closed by a 'state' listener
    // Armed before the event, so a listener's close() can still cancel it.
    this._retryTimer = this._after(delay, () => this._open());
    this.emit('reconnecting', { attempt: attempt + 1, delay, code });
  }

  /**
   * Stop for good: state `closed`, no timers, no page hooks, every waiting
   * call rejected with `error`.
   * @param {Error} error
   */
  _shut(error) {
    this._clearTimers();
    this._listen(false);
    this._setState(CLOSED);
    for (const waiter of this._waiting) {
      this._clear(waiter.timer);
      waiter.reject(error);
    }
    this._waiting.clear();
    for (const [key, calls] of this._calls) for (const call of calls.slice()) this._settle(key, error, call);
    for (const sub of this._subs.values()) sub._settle(error);
  }

  /**
   * Call `fn` with the token: at once for a string (or none), after the
   * function's result for a token function. A function that throws or
   * rejects gives an `error` event (`token`) and an anonymous connection.
   * Skipped when the connection changed meanwhile: the new one asks again.
   * @param {(token: string | null) => void} fn
   */
  _withToken(fn) {
    const source = this.token;
    if (typeof source !== 'function') return fn(source);
    const ws = this._ws;
    Promise.resolve()
      .then(source)
      .then(
        (value) => value || null,
        (error) => {
          this.emit('error', fail('token', `the token function failed: ${error}`));
          return null;
        },
      )
      .then((value) => {
        this._refreshing = false;
        if (this._ws === ws) fn(value);
      });
  }

  /**
   * The server said `connected`: authenticate, resubscribe, release waiting calls.
   * @param {string | null} token
   */
  _connected(token) {
    this._clear(this._connectTimer);
    this._attempt = 0;
    this._connectedAt = this._now();
    this._setState(CONNECTED);
    if (this.state !== CONNECTED) return; // closed by a 'state' listener
    // Sent before any subscribe: the server handles a connection's frames in
    // order, so private channels see the token.
    if (token) this._send({ type: 'auth', token });
    for (const sub of this._subs.values()) this._send(sub._request());
    for (const calls of this._calls.values()) {
      for (const call of calls) {
        this._send(call.message);
        if (call.message.type === 'members') break;
      }
    }
    for (const waiter of this._waiting) {
      this._clear(waiter.timer);
      waiter.resolve();
    }
    this._waiting.clear();
    this._watchHeartbeat();
    this.emit('connected', { clientId: this.clientId, user: this.user });
  }

  /**
   * Notice a dead connection: after `pingInterval` ms without any frame from
   * the server, ping it; no frame within `pingGrace` more means a half-open
   * socket (sleeping laptop, lost Wi-Fi) that the browser may not notice for
   * minutes, so reconnect at once. The server pings every 30 s, so with the
   * default 35 s this client pings only when the server has gone quiet, and
   * it works with any server ping interval. One timer, re-armed lazily: a
   * busy channel costs no timer work per message.
   */
  _watchHeartbeat() {
    const { pingInterval, pingGrace } = this.options;
    const check = () => {
      const silent = this._now() - this._lastSeen;
      if (silent >= pingInterval) this._probe(pingGrace);
      this._heartbeatTimer = this._after(silent >= pingInterval ? pingInterval : pingInterval - silent, check);
    };
    this._heartbeatTimer = this._after(pingInterval, check);
  }

  /** The page came back (visible, online): make sure the connection is alive now. */
  _check() {
    if (this.state === RECONNECTING) {
      this._attempt = 0;
      this._open();
    } else if (this.state === CONNECTED) {
      this._probe(this.options.checkTimeout);
    }
  }

  /**
   * Ping the server; no frame back within `timeout` ms means dead: reconnect now.
   * @param {number} timeout
   */
  _probe(timeout) {
    if (this._probeTimer) return;
    this._send({ type: 'ping' });
    this._probeTimer = this._after(timeout, () => {
      this._probeTimer = null;
      this._drop(1006, 'heartbeat timeout', NOW);
    });
  }

  // -- incoming frames ---------------------------------------------------------------

  /** @param {any} raw */
  _receive(raw) {
    this._lastSeen = this._now();
    if (this._probeTimer) {
      this._clear(this._probeTimer);
      this._probeTimer = null;
    }
    let m;
    try {
      m = JSON.parse(raw);
    } catch {
      m = null;
    }
    if (!m || typeof m !== 'object' || Array.isArray(m)) {
      this.emit('error', fail('invalid_frame', 'the server sent a frame that is not a JSON object'));
      return;
    }
    const channel = typeof m.channel === 'string' ? m.channel : null;
    const sub = channel === null ? undefined : this._subs.get(channel);
    switch (m.type) {
      case 'connected':
        this.clientId = m.clientId || null;
        if (this.clientId) this._ids.add(this.clientId);
        this.user = m.user || null;
        // With a token function the state stays `connecting` until it answers
        // (bounded by connectTimeout): nothing is sent before the token.
        this._withToken((token) => this._connected(token));
        break;
      case 'authenticated':
        this.user = m.user || null;
        this.emit('authenticated', this.user);
        break;
      case 'subscribed':
        if (sub) {
          sub.state = 'subscribed';
          if (Array.isArray(m.members)) sub.members = m.members.slice();
          const recovered = m.recovered === true;
          const epoch = typeof m.epoch === 'string' ? m.epoch : null;
          // Recovered messages follow, up to m.offset; otherwise start from here.
          sub._recoverTo = recovered ? m.offset : 0;
          if (!recovered) sub.offset = epoch === null ? null : m.offset;
          sub.epoch = epoch;
          /** @type {Subscribed} */
          const info = { channel: sub.channel, recovered, offset: sub.epoch === null ? null : m.offset, epoch };
          if (m.members) info.members = m.members;
          sub._settle(info);
          sub._fire('onSubscribed', info);
          this.emit('subscribed', sub.channel, m.members, info);
        }
        break;
      case 'unsubscribed':
        // Without a reason it answers our own unsubscribe: nothing to do.
        if (m.reason && channel !== null) {
          if (sub && m.reason === 'reauthenticated') {
            // setToken() switched users: the server dropped what needed the
            // old identity; ask again as the new one (after its auth, in order).
            sub.state = 'pending';
            this._send(sub._request());
          } else if (sub) {
            this._subs.delete(channel);
            sub.state = 'unsubscribed';
            if (m.reason === 'token_expired') this._expired.set(channel, sub);
          }
          // A token function gets a fresh token, which brings the channels back.
          if (m.reason === 'token_expired' && typeof this.token === 'function' && !this._refreshing) {
            this._refreshing = true;
            this.setToken(this.token);
          }
          this.emit('unsubscribed', channel, m.reason);
        }
        break;
      case 'message': {
        /** @type {MessageMeta} */
        const meta = { channel, timestamp: m.timestamp };
        if (m.from !== undefined) meta.from = m.from;
        if (sub && typeof m.offset === 'number') {
          // A history channel: each offset once, in order.
          if (sub.epoch !== null && sub.offset !== null && m.offset <= sub.offset) break;
          sub.offset = m.offset;
          meta.offset = m.offset;
          if (m.offset <= sub._recoverTo) {
            meta.recovered = true;
            // Our own messages were never echoed to us: not when recovered either.
            if (this._ids.has(m.from)) break;
          }
        }
        if (channel === null) {
          this.emit('message', null, m.data, meta);
          this.emit('broadcast', m.data, meta);
        } else {
          if (sub) sub._fire('onMessage', m.data, meta);
          this.emit('message', channel, m.data, meta);
        }
        break;
      }
      case 'presence':
        if (sub && m.client) this._presence(sub, m.event, m.client);
        this.emit('presence', channel, m.event, m.client);
        break;
      case 'members': {
        const members = Array.isArray(m.members) ? m.members : [];
        if (sub) sub.members = members.slice();
        this._settle('members ' + channel, members);
        break;
      }
      case 'history':
        this._settle('history ' + channel, { publications: m.publications || [], offset: m.offset, epoch: m.epoch });
        break;
      case 'ping':
        this._send({ type: 'pong' });
        break;
      case 'kicked':
        // The server closes with 4003 next; never reconnect after a kick.
        this._kicked = true;
        this.emit('kicked', m.reason);
        break;
      case 'server_restart':
        // Leave now, as the server asks, and come back with jittered backoff
        // once it is up again (not all at once with every other client).
        this._drop(1000, 'server restart', RETRY);
        break;
      case 'error':
        this._serverError(fail(m.code || 'error', m.error || 'server error', channel), sub);
        break;
      default:
      // pong, and types from a newer server: nothing to do
    }
  }

  /**
   * @param {Subscription} sub
   * @param {string} event
   * @param {any} client
   */
  _presence(sub, event, client) {
    const others = sub.members && sub.members.filter((member) => member.id !== client.id);
    if (event === 'join') {
      if (others) sub.members = others.concat([client]);
      sub._fire('onJoin', client);
    } else if (event === 'leave') {
      if (others) sub.members = others;
      sub._fire('onLeave', client);
    }
  }

  /**
   * A server `error`: settle the call it answers, then emit `error`.
   * The protocol has no request ids; the server answers a connection's frames
   * in order, so an error about a channel whose subscribe is pending answers
   * that subscribe, and `not_subscribed` answers pending `members` calls.
   * @param {Error & {code?: string}} error
   * @param {Subscription | undefined} sub
   */
  _serverError(error, sub) {
    const channel = /** @type {any} */ (error).channel;
    // Codes that never answer a subscribe: a publish's (`rejected`: the app's
    // onPublish hook), members', history's.
    if (sub && sub.state === 'pending' && !/^(not_subscribed|rate_limited|rejected|history_)/.test(error.code || '')) {
      this._subs.delete(channel);
      sub.state = 'failed';
      sub._settle(error);
    }
    if (channel != null) {
      if (error.code === 'not_subscribed') this._settle('members ' + channel, error);
      if (error.code === 'not_subscribed' || /^history_|^invalid_message/.test(error.code || '')) {
        this._settle('history ' + channel, error);
      }
    }
    this.emit('error', error);
  }

  // -- helpers ---------------------------------------------------------------------------

  /**
   * Send a message when connected; otherwise drop it, since `_connected`
   * sends everything a new connection needs (auth, subscribes, members).
   * @param {object} message
   */
  _send(message) {
    this._sendText(JSON.stringify(message));
  }

  /**
   * @param {string} text
   * @returns {boolean} whether it went to an open connection
   */
  _sendText(text) {
    if (this.state !== CONNECTED || !this._ws) return false;
    this._ws.send(text);
    return true;
  }

  /** @returns {Promise<void>} resolves when connected; rejects after `callTimeout` or on close */
  _whenConnected() {
    if (this.state === CONNECTED) return Promise.resolve();
    if (this.state === CLOSED) return Promise.reject(fail('closed', 'not connected: call connect() first'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: this._after(this.options.callTimeout, () => {
          this._waiting.delete(waiter);
          reject(fail('timeout', 'not connected within callTimeout'));
        }),
      };
      this._waiting.add(waiter);
    });
  }

  /** @param {State} state */
  _setState(state) {
    const previous = this.state;
    if (state !== previous) {
      this.state = state;
      this.emit('state', state, previous);
    }
  }

  /** @param {boolean} on add or remove the page hooks (online, offline, visibilitychange) */
  _listen(on) {
    const win = this._window;
    if (!win || !win.addEventListener || on === this._listening) return;
    this._listening = on;
    const method = on ? 'addEventListener' : 'removeEventListener';
    win[method]('online', this._onOnline);
    win[method]('offline', this._onOffline);
    if (win.document) win.document[method]('visibilitychange', this._onVisible);
  }

  _clearTimers() {
    this._clear(this._retryTimer);
    this._clear(this._connectTimer);
    this._clear(this._heartbeatTimer);
    this._clear(this._probeTimer);
    this._retryTimer = this._connectTimer = this._heartbeatTimer = this._probeTimer = null;
  }

  /**
   * @param {number} ms
   * @param {() => void} fn
   */
  _after(ms, fn) {
    return (this.options.timers || globalThis).setTimeout(fn, ms);
  }

  /** @param {any} timer */
  _clear(timer) {
    if (timer != null) (this.options.timers || globalThis).clearTimeout(timer);
  }

  _now() {
    return this.options.now ? this.options.now() : Date.now();
  }

  /** Run a page callback; like an event listener, it cannot break the SDK. @param {() => void} fn */
  _safely(fn) {
    try {
      fn();
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

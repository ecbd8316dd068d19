// Fakes for the SDK's injected dependencies: a WebSocket class whose "server
// side" the test drives, and a window that fires online/offline/visibility.

/** A stand-in for the browser's WebSocket; instances are recorded on the class. */
export function fakeWebSocketClass() {
  class FakeWebSocket {
    /** @type {FakeWebSocket[]} */
    static instances = [];

    /** @param {string} url */
    constructor(url) {
      this.url = url;
      /** Frames the client sent, parsed. @type {any[]} */
      this.sent = [];
      /** @type {{code?: number, reason?: string} | null} */
      this.closedByClient = null;
      this.onmessage = null;
      this.onclose = null;
      this.onerror = null;
      FakeWebSocket.instances.push(this);
    }

    /** @param {string} text */
    send(text) {
      if (this.closedByClient) throw new Error('send after close');
      this.sent.push(JSON.parse(text));
    }

    /** @param {number} [code] @param {string} [reason] */
    close(code, reason) {
      this.closedByClient = { code, reason };
    }

    // -- the server side, driven by tests --
    /** @param {any} message an object (sent as JSON) or a raw string */
    serverSend(message) {
      this.onmessage?.({ data: typeof message === 'string' ? message : JSON.stringify(message) });
    }

    /** @param {string} [clientId] @param {any} [user] */
    serverConnected(clientId = 'c1', user = undefined) {
      this.serverSend(user ? { type: 'connected', clientId, user } : { type: 'connected', clientId });
    }

    /** @param {number} code @param {string} [reason] */
    serverClose(code, reason = '') {
      this.onclose?.({ code, reason });
    }

    /** @param {string} type */
    sentOf(type) {
      return this.sent.filter((m) => m.type === type);
    }

    static get last() {
      return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    }
  }
  return FakeWebSocket;
}

/** A minimal event target. */
class Target {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
  }
  /** @param {string} type @param {Function} fn */
  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)?.add(fn);
  }
  /** @param {string} type @param {Function} fn */
  removeEventListener(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }
  /** @param {string} type */
  fire(type) {
    for (const fn of this.listeners.get(type) ?? []) fn({ type });
  }
  /** @param {string} type */
  count(type) {
    return this.listeners.get(type)?.size ?? 0;
  }
}

/** A window with a document (visibility) and a location. */
export function fakeWindow(href = 'http://chat.localhost:8080/index.html') {
  const win = new Target();
  const doc = new Target();
  /** @type {'visible' | 'hidden'} */
  doc.visibilityState = 'visible';
  const url = new URL(href);
  return Object.assign(win, { document: doc, location: { href: url.href, pathname: url.pathname, protocol: url.protocol, host: url.host } });
}

/** Let pending promise callbacks run. */
export async function flush() {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

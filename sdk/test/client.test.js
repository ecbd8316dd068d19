// FaztRealtime against a fake WebSocket and a fake window, with node:test's
// mock timers: reconnect and backoff, resubscribe, heartbeat, close-code
// classes, server_restart, queued calls, presence, members, publish, tokens.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { FaztRealtime } from '../src/index.js';
import { fakeWebSocketClass, fakeWindow, flush } from './fakes.js';

const EVENTS = [
  'connected',
  'disconnected',
  'reconnecting',
  'message',
  'broadcast',
  'error',
  'kicked',
  'authenticated',
  'subscribed',
  'unsubscribed',
  'presence',
  'state',
];

/** @param {any} [options] */
function setup(options = {}) {
  const WS = fakeWebSocketClass();
  const win = fakeWindow();
  /** @type {any[][]} */
  const events = [];
  const rt = new FaztRealtime(options.url, { WebSocket: WS, window: win, random: () => 0.5, ...options });
  for (const name of EVENTS) rt.on(name, (/** @type {any[]} */ ...args) => events.push([name, ...args]));
  /** @param {string} name */
  const of = (name) => events.filter((e) => e[0] === name).map((e) => e.slice(1));
  return { rt, WS, win, events, of };
}

/** Connect the latest socket: the server's `connected` message. */
function connect(/** @type {any} */ WS, clientId = 'c1') {
  WS.last.serverConnected(clientId);
  return WS.last;
}

beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
afterEach(() => mock.timers.reset());

describe('connecting', () => {
  test('opens the default URL, becomes connected on the server hello, and sends the token first', () => {
    const { rt, WS, of } = setup({ token: 'jwt-1' });
    assert.equal(rt.state, 'connecting');
    assert.equal(WS.last.url, 'ws://chat.localhost:8080/_ws');
    rt.subscribe('news');
    rt.subscribe('private-alice');
    assert.deepEqual(WS.last.sent, [], 'nothing is sent before the server says connected');
    const ws = connect(WS, 'abc');
    assert.equal(rt.state, 'connected');
    assert.equal(rt.clientId, 'abc');
    assert.deepEqual(ws.sent, [
      { type: 'auth', token: 'jwt-1' },
      { type: 'subscribe', channel: 'news' },
      { type: 'subscribe', channel: 'private-alice' },
    ]);
    assert.deepEqual(of('connected'), [[{ clientId: 'abc', user: null }]]);
    ws.serverSend({ type: 'authenticated', user: { sub: 'alice' } });
    assert.deepEqual(rt.user, { sub: 'alice' });
    assert.deepEqual(of('authenticated'), [[{ sub: 'alice' }]]);
  });

  test('autoConnect: false waits for connect(); connect() is idempotent', () => {
    const { rt, WS } = setup({ autoConnect: false, url: 'ws://127.0.0.1:9/_ws' });
    assert.equal(rt.state, 'closed');
    assert.equal(WS.instances.length, 0);
    rt.connect();
    rt.connect();
    assert.equal(WS.instances.length, 1);
    assert.equal(WS.last.url, 'ws://127.0.0.1:9/_ws');
  });

  test('no connected message within connectTimeout: drop the socket and retry', () => {
    const { rt, WS, of } = setup({ connectTimeout: 3000 });
    mock.timers.tick(2999);
    assert.equal(WS.instances.length, 1);
    mock.timers.tick(1);
    assert.ok(WS.instances[0].closedByClient, 'the stuck socket is closed');
    assert.deepEqual(of('disconnected')[0], [{ code: 1006, reason: 'connect timeout', reconnect: true }]);
    assert.equal(rt.state, 'reconnecting');
    mock.timers.tick(1000);
    assert.equal(WS.instances.length, 2);
  });

  test('a WebSocket constructor that throws (bad URL) gives an invalid_url error and stops', () => {
    class Throwing {
      constructor() {
        throw new SyntaxError('bad url');
      }
    }
    const { rt, of } = setup({ WebSocket: Throwing, autoConnect: false });
    rt.connect();
    assert.equal(rt.state, 'closed');
    assert.equal(of('error')[0][0].code, 'invalid_url');
  });

  test('without any WebSocket class, or with a bad URL, the constructor says so', () => {
    assert.throws(() => new FaztRealtime('ws://x/_ws', { window: null }), /no WebSocket class/);
    const WebSocket = fakeWebSocketClass();
    assert.throws(() => new FaztRealtime('ws://[bad/_ws', { WebSocket, window: null }), /invalid URL/);
    assert.throws(() => new FaztRealtime('ftp://x/_ws', { WebSocket, window: null }), /not a ws, wss, http or https URL/);
    assert.throws(() => new FaztRealtime('/_ws', { WebSocket, window: null }), /invalid URL/);
  });

  test('a frame that is not a JSON object is reported and ignored', () => {
    const { rt, WS, of } = setup();
    const ws = connect(WS);
    ws.serverSend('not json');
    ws.serverSend('[1,2]');
    ws.serverSend({ type: 'from-the-future' });
    assert.deepEqual(
      of('error').map((e) => e[0].code),
      ['invalid_frame', 'invalid_frame'],
    );
    assert.equal(rt.state, 'connected');
  });

  for (const event of ['disconnected', 'reconnecting', 'state']) {
    test(`close() from a '${event}' listener wins over the reconnect`, () => {
      const { rt, WS } = setup();
      connect(WS);
      rt.on(event, () => rt.close());
      WS.last.serverClose(1006);
      mock.timers.tick(60_000);
      assert.equal(rt.state, 'closed');
      assert.equal(WS.instances.length, 1);
    });
  }

  test('a throwing listener neither breaks the SDK nor hides the error', async () => {
    const thrown = [];
    const original = globalThis.queueMicrotask;
    globalThis.queueMicrotask = (fn) => {
      try {
        fn();
      } catch (error) {
        thrown.push(error);
      }
    };
    try {
      const { rt, WS } = setup();
      const got = [];
      rt.on('message', () => {
        throw new Error('page bug');
      });
      rt.subscribe('news', {
        onMessage: () => {
          throw new Error('handler bug');
        },
      });
      rt.on('message', (channel, data) => got.push(data));
      const ws = connect(WS);
      ws.serverSend({ type: 'message', channel: 'news', data: 1, timestamp: 1 });
      ws.serverSend({ type: 'ping' });
      assert.deepEqual(got, [1], 'later listeners still run');
      assert.deepEqual(ws.sentOf('pong'), [{ type: 'pong' }], 'the SDK still answers pings');
      assert.deepEqual(
        thrown.map((e) => e.message),
        ['handler bug', 'page bug'],
      );
    } finally {
      globalThis.queueMicrotask = original;
    }
  });
});

describe('reconnect and backoff', () => {
  test('a dropped connection reconnects after a full-jitter delay, growing per failed attempt', () => {
    const { rt, WS, of } = setup({ random: () => 0.5 });
    connect(WS);
    WS.last.serverClose(1006);
    assert.equal(rt.state, 'reconnecting');
    assert.deepEqual(of('disconnected'), [[{ code: 1006, reason: '', reconnect: true }]]);
    // attempt 1: 500 + 0.5 * 500
    assert.deepEqual(of('reconnecting')[0], [{ attempt: 1, delay: 750, code: 1006 }]);
    mock.timers.tick(749);
    assert.equal(WS.instances.length, 1, 'not before the delay');
    mock.timers.tick(1);
    assert.equal(WS.instances.length, 2);
    assert.equal(rt.state, 'connecting');
    WS.last.serverClose(1006); // the server is still down
    WS.last; // attempt 2: 500 + 0.5 * 1000
    assert.deepEqual(of('reconnecting')[1], [{ attempt: 2, delay: 1000, code: 1006 }]);
    mock.timers.tick(1000);
    WS.last.serverClose(1006);
    assert.deepEqual(of('reconnecting')[2], [{ attempt: 3, delay: 1500, code: 1006 }]);
  });

  test('the delays stay within the configured bounds and reset after a successful connect', () => {
    const { WS, of } = setup({ backoff: { min: 100, max: 800 }, random: () => 0.999 });
    connect(WS);
    for (let i = 0; i < 8; i++) {
      WS.last.serverClose(1006);
      const { delay } = of('reconnecting').at(-1)[0];
      assert.ok(delay >= 100 && delay <= 800, `delay ${delay}`);
      mock.timers.tick(delay);
    }
    assert.equal(of('reconnecting').at(-1)[0].delay, 800, 'capped at max');
    connect(WS); // success resets the attempt counter
    WS.last.serverClose(1006);
    assert.deepEqual(of('reconnecting').at(-1)[0], { attempt: 1, delay: 199, code: 1006 });
  });

  test('every wanted channel is subscribed again after a reconnect, unsubscribed ones are not', async () => {
    const { rt, WS } = setup();
    const a = rt.subscribe('a');
    rt.subscribe('b');
    rt.subscribe('presence-c');
    let ws = connect(WS);
    for (const channel of ['a', 'b', 'presence-c']) ws.serverSend({ type: 'subscribed', channel });
    await a.ready;
    assert.equal(a.state, 'subscribed');
    await rt.unsubscribe('b');
    assert.deepEqual(ws.sentOf('unsubscribe'), [{ type: 'unsubscribe', channel: 'b' }]);
    ws.serverClose(1001);
    assert.equal(a.state, 'pending');
    mock.timers.tick(1000);
    ws = connect(WS, 'c2');
    assert.deepEqual(ws.sent, [
      { type: 'subscribe', channel: 'a' },
      { type: 'subscribe', channel: 'presence-c' },
    ]);
    ws.serverSend({ type: 'subscribed', channel: 'a' });
    assert.equal(a.state, 'subscribed');
  });

  test('unsubscribing while disconnected only forgets the channel', async () => {
    const { rt, WS } = setup();
    rt.subscribe('a');
    rt.subscribe('b');
    await rt.unsubscribe('a');
    const ws = connect(WS);
    assert.deepEqual(ws.sent, [{ type: 'subscribe', channel: 'b' }]);
  });
});

describe('heartbeat', () => {
  test('server pings get a pong', () => {
    const { WS } = setup();
    const ws = connect(WS);
    ws.serverSend({ type: 'ping' });
    ws.serverSend({ type: 'ping' });
    assert.deepEqual(ws.sentOf('pong'), [{ type: 'pong' }, { type: 'pong' }]);
  });

  test('silence for pingInterval: the client pings; no answer within pingGrace: reconnect at once', () => {
    const { rt, WS, of } = setup({ pingInterval: 1000, pingGrace: 500 });
    const ws = connect(WS);
    // Traffic keeps the connection alive, whatever its kind, without client pings.
    for (let i = 0; i < 5; i++) {
      mock.timers.tick(900);
      ws.serverSend(i % 2 ? { type: 'ping' } : { type: 'message', channel: 'x', data: i, timestamp: 0 });
    }
    assert.deepEqual(ws.sentOf('ping'), []);
    mock.timers.tick(999);
    assert.deepEqual(ws.sentOf('ping'), []);
    mock.timers.tick(1);
    assert.deepEqual(ws.sentOf('ping'), [{ type: 'ping' }], 'a quiet server is asked');
    mock.timers.tick(499);
    assert.equal(rt.state, 'connected');
    mock.timers.tick(1);
    assert.ok(ws.closedByClient, 'the dead socket is closed by the client');
    assert.deepEqual(of('disconnected'), [[{ code: 1006, reason: 'heartbeat timeout', reconnect: true }]]);
    assert.deepEqual(of('reconnecting'), [[{ attempt: 1, delay: 0, code: 1006 }]]);
    mock.timers.tick(0);
    assert.equal(WS.instances.length, 2);
    // A late close event from the dead socket changes nothing.
    ws.serverClose(1006);
    assert.equal(of('disconnected').length, 1);
  });

  test('a quiet server that answers the client ping keeps the connection', () => {
    const { rt, WS, of } = setup({ pingInterval: 1000, pingGrace: 500 });
    const ws = connect(WS);
    for (let i = 1; i <= 5; i++) {
      mock.timers.tick(1000);
      assert.equal(ws.sentOf('ping').length, i);
      mock.timers.tick(100);
      ws.serverSend({ type: 'pong' });
    }
    mock.timers.tick(900);
    assert.equal(rt.state, 'connected');
    assert.deepEqual(of('disconnected'), []);
  });
});

describe('close-code classes', () => {
  for (const code of [4001, 4003, 4009, 4050]) {
    test(`close ${code}: no reconnect, pending calls reject`, async () => {
      const { rt, WS, of, win } = setup();
      const sub = rt.subscribe('news');
      const ws = connect(WS);
      ws.serverClose(code, 'bye');
      assert.equal(rt.state, 'closed');
      assert.deepEqual(of('disconnected'), [[{ code, reason: 'bye', reconnect: false }]]);
      assert.deepEqual(of('reconnecting'), []);
      await assert.rejects(sub.ready, { code: code === 4003 ? 'kicked' : 'closed' });
      await assert.rejects(rt.publish('news', 1), { code: 'closed' });
      await assert.rejects(rt.members('presence-news'), { code: 'closed' });
      mock.timers.tick(120_000);
      assert.equal(WS.instances.length, 1);
      assert.equal(win.count('online'), 0, 'page hooks removed');
      // connect() starts again and resubscribes.
      rt.connect();
      assert.deepEqual(connect(WS).sent, [{ type: 'subscribe', channel: 'news' }]);
    });
  }

  for (const code of [4100, 4101]) {
    test(`close ${code}: back off (longer) before every attempt`, () => {
      const { WS, of } = setup({ random: () => 0 });
      connect(WS);
      WS.last.serverClose(code);
      const first = of('reconnecting')[0][0];
      assert.equal(first.delay, 500);
      const high = setup({ random: () => 0.999 });
      connect(high.WS);
      high.WS.last.serverClose(code);
      // Starts at the third step of the schedule: up to 500 + 2000.
      assert.equal(high.of('reconnecting')[0][0].delay, 2498);
    });
  }

  for (const code of [4200, 4201, 4202]) {
    test(`close ${code}: reconnect now, then back off if that fails`, () => {
      const { WS, of } = setup();
      connect(WS);
      mock.timers.tick(5000);
      WS.last.serverClose(code);
      assert.equal(of('reconnecting')[0][0].delay, 0);
      mock.timers.tick(0);
      assert.equal(WS.instances.length, 2);
      WS.last.serverClose(code);
      assert.equal(of('reconnecting')[1][0].delay, 1000, 'second attempt backs off');
    });
  }

  test('a connection closed with 42xx within a second of connecting backs off instead', () => {
    const { WS, of } = setup();
    for (let i = 0; i < 3; i++) {
      connect(WS);
      mock.timers.tick(100);
      WS.last.serverClose(4200);
      const { delay } = of('reconnecting').at(-1)[0];
      assert.ok(delay >= 500, `attempt ${i}: delay ${delay}`);
      mock.timers.tick(delay);
    }
  });

  for (const code of [1000, 1001, 1006, 1009, 1011]) {
    test(`close ${code}: reconnect with backoff`, () => {
      const { rt, WS, of } = setup();
      connect(WS);
      WS.last.serverClose(code);
      assert.equal(rt.state, 'reconnecting');
      assert.equal(of('reconnecting')[0][0].delay, 750);
    });
  }

  test('kicked: the kicked event with the reason, then no reconnect whatever the close code', () => {
    const { rt, WS, of } = setup();
    const ws = connect(WS);
    ws.serverSend({ type: 'kicked', reason: 'spam' });
    assert.deepEqual(of('kicked'), [['spam']]);
    ws.serverClose(1006);
    assert.equal(rt.state, 'closed');
    assert.deepEqual(of('reconnecting'), []);
  });
});

describe('server_restart', () => {
  test('leaves at once, retries with backoff until the server is back, then resubscribes', () => {
    const { rt, WS, of } = setup();
    rt.subscribe('news');
    const ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'news' });
    ws.serverSend({ type: 'server_restart' });
    assert.ok(ws.closedByClient, 'the client closes its side, as the server asks');
    assert.equal(rt.state, 'reconnecting');
    assert.deepEqual(of('disconnected'), [[{ code: 1000, reason: 'server restart', reconnect: true }]]);
    const first = of('reconnecting')[0][0].delay;
    assert.ok(first >= 500, 'jittered, not all clients at once');
    mock.timers.tick(first);
    WS.last.serverClose(1006); // still restarting: the upgrade fails
    mock.timers.tick(of('reconnecting')[1][0].delay);
    const back = connect(WS, 'c2');
    assert.equal(WS.instances.length, 3);
    assert.deepEqual(back.sent, [{ type: 'subscribe', channel: 'news' }]);
    assert.equal(rt.state, 'connected');
  });
});

describe('calls made while disconnected', () => {
  test('publish waits for the connection and is sent after the resubscribes', async () => {
    const { rt, WS } = setup();
    rt.subscribe('room');
    const sent = rt.publish('room', { text: 'hi' });
    const ws = connect(WS);
    await sent;
    assert.deepEqual(ws.sent, [
      { type: 'subscribe', channel: 'room' },
      { type: 'message', channel: 'room', data: { text: 'hi' } },
    ]);
  });

  test('a call that waits longer than callTimeout rejects with timeout', async () => {
    const { rt } = setup({ callTimeout: 2000 });
    const sent = rt.publish('room', 1);
    const members = rt.members('presence-room');
    const sub = rt.subscribe('news');
    mock.timers.tick(2000);
    await assert.rejects(sent, { code: 'timeout' });
    await assert.rejects(members, { code: 'timeout', channel: 'presence-room' });
    await assert.rejects(sub.ready, { code: 'timeout', channel: 'news' });
    assert.equal(rt.state, 'connecting', 'the connection attempt goes on');
  });

  test('close() rejects waiting calls with closed', async () => {
    const { rt, WS, win } = setup();
    const sent = rt.publish('room', 1);
    const members = rt.members('presence-room');
    rt.close();
    await assert.rejects(sent, { code: 'closed' });
    await assert.rejects(members, { code: 'closed' });
    assert.equal(rt.state, 'closed');
    assert.ok(WS.last.closedByClient);
    assert.equal(win.count('online') + win.count('offline') + win.document.count('visibilitychange'), 0);
  });
});

describe('subscriptions', () => {
  test('ready resolves on subscribed (with presence members) and the subscription is thenable', async () => {
    const { rt, WS, of } = setup();
    const sub = rt.subscribe('presence-room');
    assert.equal(rt.subscribe('presence-room'), sub, 'one subscription per channel');
    const ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'presence-room', members: [{ id: 'a', name: 'A' }] });
    const value = await sub;
    assert.deepEqual(value, {
      channel: 'presence-room',
      members: [{ id: 'a', name: 'A' }],
      recovered: false,
      offset: null,
      epoch: null,
    });
    assert.deepEqual(sub.members, [{ id: 'a', name: 'A' }]);
    assert.equal(of('subscribed').length, 1);
    assert.equal(ws.sentOf('subscribe').length, 1, 'subscribing twice sends once');
  });

  test('a refused subscription rejects with the server code and is not retried', async () => {
    const { rt, WS, of } = setup();
    const sub = rt.subscribe('private-x');
    const ws = connect(WS);
    ws.serverSend({ type: 'error', code: 'unauthorized', error: 'login first', channel: 'private-x' });
    await assert.rejects(sub.ready, { code: 'unauthorized', channel: 'private-x', message: 'login first' });
    assert.equal(sub.state, 'failed');
    assert.equal(of('error')[0][0].code, 'unauthorized', 'also an error event');
    ws.serverClose(1006);
    mock.timers.tick(1000);
    assert.deepEqual(connect(WS).sent, []);
  });

  test('an invalid channel name fails at once, without a round trip', async () => {
    const { rt, WS } = setup();
    const ws = connect(WS);
    for (const bad of ['', 'a b', 'x'.repeat(201), 'é', 42, null, undefined, ['a']]) {
      await assert.rejects(rt.subscribe(bad).ready, { code: 'invalid_channel' });
      await assert.rejects(rt.publish(bad, 1), { code: 'invalid_channel' });
      await assert.rejects(rt.members(bad), { code: 'invalid_channel' });
    }
    assert.deepEqual(ws.sent, []);
  });

  test('messages go to the channel handlers and to the message event, with meta', () => {
    const { rt, WS, of } = setup();
    /** @type {any[]} */
    const got = [];
    rt.subscribe('room', { onMessage: (data, meta) => got.push([data, meta]) });
    rt.subscribe('room', { onMessage: (data) => got.push(['second', data]) });
    const ws = connect(WS);
    ws.serverSend({ type: 'message', channel: 'room', data: { t: 1 }, timestamp: 42, from: 'c9' });
    ws.serverSend({ type: 'message', channel: 'other', data: 2, timestamp: 43 });
    assert.deepEqual(got, [
      [{ t: 1 }, { channel: 'room', timestamp: 42, from: 'c9' }],
      ['second', { t: 1 }],
    ]);
    assert.deepEqual(of('message'), [
      ['room', { t: 1 }, { channel: 'room', timestamp: 42, from: 'c9' }],
      ['other', 2, { channel: 'other', timestamp: 43 }],
    ]);
  });

  test('a message without channel (broadcastAll) is message(null, ...) and broadcast', () => {
    const { WS, of } = setup();
    const ws = connect(WS);
    ws.serverSend({ type: 'message', data: { note: 'maintenance' }, timestamp: 7 });
    assert.deepEqual(of('message'), [[null, { note: 'maintenance' }, { channel: null, timestamp: 7 }]]);
    assert.deepEqual(of('broadcast'), [[{ note: 'maintenance' }, { channel: null, timestamp: 7 }]]);
  });

  test('presence events call onJoin/onLeave and keep the member list', () => {
    const { rt, WS, of } = setup();
    /** @type {any[]} */
    const seen = [];
    const sub = rt.subscribe('presence-room', {
      onJoin: (member) => seen.push(['join', member.id]),
      onLeave: (member) => seen.push(['leave', member.id]),
    });
    const ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'presence-room', members: [{ id: 'a' }] });
    ws.serverSend({ type: 'presence', channel: 'presence-room', event: 'join', client: { id: 'b', name: 'B' } });
    ws.serverSend({ type: 'presence', channel: 'presence-room', event: 'join', client: { id: 'b', name: 'B' } });
    ws.serverSend({ type: 'presence', channel: 'presence-room', event: 'leave', client: { id: 'a' } });
    assert.deepEqual(seen, [
      ['join', 'b'],
      ['join', 'b'],
      ['leave', 'a'],
    ]);
    assert.deepEqual(sub.members, [{ id: 'b', name: 'B' }], 'no duplicates');
    assert.equal(of('presence').length, 3);
  });

  test('members() asks once for concurrent calls and resolves them all', async () => {
    const { rt, WS } = setup();
    rt.subscribe('presence-room');
    const ws = connect(WS);
    const one = rt.members('presence-room');
    const two = rt.members('presence-room');
    assert.deepEqual(ws.sentOf('members'), [{ type: 'members', channel: 'presence-room' }]);
    ws.serverSend({ type: 'members', channel: 'presence-room', members: [{ id: 'a' }, { id: 'b' }] });
    assert.deepEqual(await one, [{ id: 'a' }, { id: 'b' }]);
    assert.deepEqual(await two, [{ id: 'a' }, { id: 'b' }]);
    const three = rt.members('presence-room');
    assert.equal(ws.sentOf('members').length, 2, 'a later call asks again');
    ws.serverSend({ type: 'error', code: 'not_subscribed', error: 'subscribe first', channel: 'presence-room' });
    await assert.rejects(three, { code: 'not_subscribed' });
  });

  test('a members call in flight when the connection drops is asked again after reconnect', async () => {
    const { rt, WS } = setup();
    rt.subscribe('presence-room');
    connect(WS);
    const pending = rt.members('presence-room');
    WS.last.serverClose(1006);
    mock.timers.tick(1000);
    const ws = connect(WS);
    assert.deepEqual(ws.sent, [
      { type: 'subscribe', channel: 'presence-room' },
      { type: 'members', channel: 'presence-room' },
    ]);
    ws.serverSend({ type: 'members', channel: 'presence-room', members: [] });
    assert.deepEqual(await pending, []);
  });

  test('publish sends a message frame; data JSON cannot carry is refused; server refusals are error events', async () => {
    const { rt, WS, of } = setup();
    const ws = connect(WS);
    await rt.publish('room', [1, 'two']);
    await rt.publish('room', undefined);
    assert.deepEqual(ws.sentOf('message'), [
      { type: 'message', channel: 'room', data: [1, 'two'] },
      { type: 'message', channel: 'room', data: null },
    ]);
    const cyclic = {};
    cyclic.self = cyclic;
    await assert.rejects(rt.publish('room', cyclic), { code: 'invalid_message' });
    ws.serverSend({ type: 'error', code: 'forbidden', error: 'publishing is off', channel: 'room' });
    assert.deepEqual(
      of('error').map(([e]) => [e.code, e.channel]),
      [['forbidden', 'room']],
    );
  });
});

describe('tokens', () => {
  test('setToken sends auth when connected and is used first on the next connection', () => {
    const { rt, WS } = setup();
    rt.subscribe('news');
    let ws = connect(WS);
    rt.setToken('jwt-2');
    assert.deepEqual(ws.sentOf('auth'), [{ type: 'auth', token: 'jwt-2' }]);
    ws.serverClose(1006);
    mock.timers.tick(1000);
    ws = connect(WS);
    assert.deepEqual(ws.sent[0], { type: 'auth', token: 'jwt-2' });
    rt.setToken(null);
    ws.serverClose(1006);
    mock.timers.tick(1000);
    assert.deepEqual(connect(WS).sent, [{ type: 'subscribe', channel: 'news' }]);
  });

  test('token_expired: surfaced, not resubscribed on reconnect, resubscribed after setToken', () => {
    const { rt, WS, of } = setup({ token: 'old' });
    const sub = rt.subscribe('private-a');
    rt.subscribe('news');
    let ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'private-a' });
    ws.serverSend({ type: 'unsubscribed', channel: 'private-a', reason: 'token_expired' });
    assert.deepEqual(of('unsubscribed'), [['private-a', 'token_expired']]);
    assert.equal(sub.state, 'unsubscribed');
    ws.serverClose(1006);
    mock.timers.tick(1000);
    ws = connect(WS);
    assert.deepEqual(ws.sentOf('subscribe'), [{ type: 'subscribe', channel: 'news' }]);
    rt.setToken('new');
    assert.deepEqual(ws.sent.slice(-2), [
      { type: 'auth', token: 'new' },
      { type: 'subscribe', channel: 'private-a' },
    ]);
    assert.equal(sub.state, 'pending');
    ws.serverSend({ type: 'subscribed', channel: 'private-a' });
    assert.equal(sub.state, 'subscribed');
  });

  test('reauthenticated: subscriptions the new identity must earn again are asked for again', () => {
    const { rt, WS, of } = setup({ token: 'alice' });
    const sub = rt.subscribe('private-room');
    const ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'private-room' });
    rt.setToken('bob');
    ws.serverSend({ type: 'unsubscribed', channel: 'private-room', reason: 'reauthenticated' });
    assert.deepEqual(ws.sent.slice(-2), [
      { type: 'auth', token: 'bob' },
      { type: 'subscribe', channel: 'private-room' },
    ]);
    assert.equal(sub.state, 'pending');
    assert.deepEqual(of('unsubscribed'), [['private-room', 'reauthenticated']]);
    ws.serverSend({ type: 'subscribed', channel: 'private-room' });
    assert.equal(sub.state, 'subscribed');
  });

  test("a publish's rejected (onPublish) does not fail the channel's pending resubscribe", async () => {
    const { rt, WS, of } = setup({ token: 'alice' });
    const sub = rt.subscribe('private-room');
    const ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'private-room' });
    await rt.publish('private-room', { text: '' });
    rt.setToken('bob');
    ws.serverSend({ type: 'unsubscribed', channel: 'private-room', reason: 'reauthenticated' });
    assert.equal(sub.state, 'pending');
    // The app's hook answers the message sent before: it is about the publish.
    ws.serverSend({ type: 'error', code: 'rejected', error: 'an empty message is not sent', channel: 'private-room' });
    assert.equal(sub.state, 'pending', 'rejected answers a publish, never a subscribe');
    assert.deepEqual(
      of('error').map(([e]) => [e.code, e.channel]),
      [['rejected', 'private-room']],
    );
    ws.serverSend({ type: 'subscribed', channel: 'private-room' });
    assert.equal(sub.state, 'subscribed');
    await sub.ready;
  });

  test('a token function is asked on every connection; nothing is sent before it answers', async () => {
    let calls = 0;
    /** @type {(token: string) => void} */
    let answer = () => {};
    const { rt, WS, of } = setup({
      token: () => {
        calls += 1;
        return new Promise((resolve) => (answer = resolve));
      },
    });
    rt.subscribe('private-a');
    let ws = connect(WS);
    await flush();
    assert.equal(calls, 1);
    assert.equal(rt.state, 'connecting', 'still connecting while the token is fetched');
    assert.deepEqual(ws.sent, []);
    answer('t1');
    await flush();
    assert.equal(rt.state, 'connected');
    assert.deepEqual(ws.sent, [
      { type: 'auth', token: 't1' },
      { type: 'subscribe', channel: 'private-a' },
    ]);
    assert.equal(of('connected').length, 1);
    ws.serverClose(1006);
    mock.timers.tick(1000);
    ws = connect(WS);
    await flush();
    assert.equal(calls, 2);
    answer('t2');
    await flush();
    assert.deepEqual(ws.sent[0], { type: 'auth', token: 't2' });
  });

  test('a failing token function is an error event and the connection goes on anonymous', async () => {
    const { rt, WS, of } = setup({
      token: () => {
        throw new Error('no session');
      },
    });
    rt.subscribe('news');
    const ws = connect(WS);
    await flush();
    assert.equal(rt.state, 'connected');
    assert.deepEqual(ws.sent, [{ type: 'subscribe', channel: 'news' }]);
    assert.equal(of('error')[0][0].code, 'token');
    assert.match(of('error')[0][0].message, /no session/);
  });

  test('token_expired with a token function: one refresh brings every dropped channel back', async () => {
    const tokens = ['t1', 't2', 't3'];
    let calls = 0;
    const { rt, WS } = setup({ token: async () => tokens[calls++] });
    const a = rt.subscribe('private-a');
    const b = rt.subscribe('presence-b');
    const ws = connect(WS);
    await flush();
    ws.serverSend({ type: 'subscribed', channel: 'private-a' });
    ws.serverSend({ type: 'subscribed', channel: 'presence-b', members: [] });
    ws.sent.length = 0;
    ws.serverSend({ type: 'unsubscribed', channel: 'private-a', reason: 'token_expired' });
    ws.serverSend({ type: 'unsubscribed', channel: 'presence-b', reason: 'token_expired' });
    ws.serverSend({ type: 'error', code: 'unauthorized', error: 'token expired' });
    await flush();
    assert.equal(calls, 2, 'one refresh for the burst');
    assert.deepEqual(ws.sent, [
      { type: 'auth', token: 't2' },
      { type: 'subscribe', channel: 'private-a' },
      { type: 'subscribe', channel: 'presence-b' },
    ]);
    assert.deepEqual([a.state, b.state], ['pending', 'pending']);
  });

  test('an unsubscribed answer to our own unsubscribe is not an event', () => {
    const { rt, WS, of } = setup();
    rt.subscribe('news');
    const ws = connect(WS);
    rt.unsubscribe('news');
    ws.serverSend({ type: 'unsubscribed', channel: 'news' });
    assert.deepEqual(of('unsubscribed'), []);
  });
});

describe('page visibility and network', () => {
  test('coming back visible while waiting to reconnect reconnects at once', () => {
    const { rt, WS, win } = setup({ backoff: { min: 10_000, max: 60_000 } });
    connect(WS);
    WS.last.serverClose(1006);
    assert.equal(rt.state, 'reconnecting');
    win.document.visibilityState = 'hidden';
    win.document.fire('visibilitychange');
    assert.equal(WS.instances.length, 1, 'hiding does nothing');
    win.document.visibilityState = 'visible';
    win.document.fire('visibilitychange');
    assert.equal(WS.instances.length, 2);
    assert.equal(rt.state, 'connecting');
  });

  test('online while waiting to reconnect reconnects at once', () => {
    const { WS, win } = setup({ backoff: { min: 10_000, max: 60_000 } });
    connect(WS);
    WS.last.serverClose(1006);
    win.fire('online');
    assert.equal(WS.instances.length, 2);
  });

  test('coming back while connected probes with a ping; no answer means reconnect now', () => {
    const { rt, WS, win, of } = setup({ checkTimeout: 2000 });
    const ws = connect(WS);
    win.document.fire('visibilitychange');
    win.fire('online');
    assert.deepEqual(ws.sentOf('ping'), [{ type: 'ping' }], 'one probe at a time');
    mock.timers.tick(1999);
    assert.equal(rt.state, 'connected');
    mock.timers.tick(1);
    assert.deepEqual(of('disconnected')[0], [{ code: 1006, reason: 'heartbeat timeout', reconnect: true }]);
    assert.equal(of('reconnecting')[0][0].delay, 0);
  });

  test('a probe answered in time keeps the connection', () => {
    const { rt, WS, win, of } = setup({ checkTimeout: 2000 });
    const ws = connect(WS);
    win.fire('offline');
    assert.deepEqual(ws.sentOf('ping'), [{ type: 'ping' }]);
    mock.timers.tick(500);
    ws.serverSend({ type: 'pong' });
    mock.timers.tick(5000);
    assert.equal(rt.state, 'connected');
    assert.deepEqual(of('disconnected'), []);
  });
});

// History channels against a fake WebSocket (node:test mock timers): the
// subscription's position, resubscribe with `since`, recovered messages,
// deduplication by offset, holes the server announces, and history().
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { FaztRealtime } from '../src/index.js';
import { fakeWebSocketClass, flush } from './fakes.js';

/** @param {any} [options] */
function setup(options = {}) {
  const WS = fakeWebSocketClass();
  const rt = new FaztRealtime('ws://h/_ws', { WebSocket: WS, window: null, random: () => 0.5, ...options });
  /** @type {any[][]} */
  const got = [];
  /** @type {any[]} */
  const subscribed = [];
  const sub = rt.subscribe('room', {
    onMessage: (data, meta) => got.push([data, meta.offset, meta.recovered === true]),
    onSubscribed: (info) => subscribed.push(info),
  });
  return { rt, WS, sub, got, subscribed };
}

/** @param {any} WS */
function connect(WS, clientId = 'c1') {
  WS.last.serverConnected(clientId);
  return WS.last;
}

/** @param {number} offset @param {any} data */
const message = (offset, data = offset, extra = {}) => ({ type: 'message', channel: 'room', data, timestamp: 1, offset, ...extra });

beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
afterEach(() => mock.timers.reset());

describe('recovery', () => {
  test('the position is kept and sent as since after a reconnect; missed messages come once', async () => {
    const { WS, sub, got, subscribed } = setup();
    let ws = connect(WS);
    assert.deepEqual(ws.sentOf('subscribe'), [{ type: 'subscribe', channel: 'room' }]);
    ws.serverSend({ type: 'subscribed', channel: 'room', offset: 4, epoch: 'e1' });
    assert.deepEqual(await sub, { channel: 'room', recovered: false, offset: 4, epoch: 'e1' });
    ws.serverSend(message(5));
    ws.serverSend(message(6));
    assert.deepEqual([sub.offset, sub.epoch], [6, 'e1']);

    ws.serverClose(1006);
    mock.timers.tick(2000);
    ws = connect(WS, 'c2');
    assert.deepEqual(ws.sentOf('subscribe'), [{ type: 'subscribe', channel: 'room', since: { offset: 6, epoch: 'e1' } }]);
    ws.serverSend({ type: 'subscribed', channel: 'room', offset: 8, epoch: 'e1', recovered: true });
    ws.serverSend(message(7));
    ws.serverSend(message(8));
    ws.serverSend(message(8)); // a repeat: dropped
    ws.serverSend(message(9));
    assert.deepEqual(got, [
      [5, 5, false],
      [6, 6, false],
      [7, 7, true],
      [8, 8, true],
      [9, 9, false],
    ]);
    assert.deepEqual(
      subscribed.map((s) => [s.recovered, s.offset, s.epoch]),
      [
        [false, 4, 'e1'],
        [true, 8, 'e1'],
      ],
    );
  });

  test('recovery refused: told so, and the stream goes on from the new position', () => {
    const { rt, WS, sub, got, subscribed } = setup();
    /** @type {any[]} */
    const events = [];
    rt.on('subscribed', (...args) => events.push(args));
    let ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'room', offset: 10, epoch: 'e1' });
    ws.serverClose(1006);
    mock.timers.tick(2000);
    ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'room', offset: 3, epoch: 'e2', recovered: false });
    ws.serverSend(message(4, 'new'));
    assert.deepEqual([sub.offset, sub.epoch], [4, 'e2']);
    assert.deepEqual(got, [['new', 4, false]], 'a lower offset in a new epoch is not a repeat');
    assert.deepEqual(subscribed[1], { channel: 'room', recovered: false, offset: 3, epoch: 'e2' });
    assert.deepEqual(events[1], ['room', undefined, subscribed[1]]);
  });

  test('a hole the server announces mid-stream resets the position and fires onSubscribed', () => {
    const { WS, sub, got, subscribed } = setup();
    const ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'room', offset: 0, epoch: 'e1' });
    ws.serverSend(message(1));
    ws.serverSend({ type: 'subscribed', channel: 'room', offset: 0, epoch: 'e2', recovered: false });
    ws.serverSend(message(1, 'after the loss'));
    assert.deepEqual(got, [
      [1, 1, false],
      ['after the loss', 1, false],
    ]);
    assert.equal(subscribed.length, 2);
    assert.equal(sub.epoch, 'e2');
  });

  test('own messages are not shown when recovered (they were never echoed live)', () => {
    const { WS, got } = setup();
    let ws = connect(WS, 'me-1');
    ws.serverSend({ type: 'subscribed', channel: 'room', offset: 0, epoch: 'e1' });
    ws.serverClose(1006);
    mock.timers.tick(2000);
    ws = connect(WS, 'me-2');
    ws.serverSend({ type: 'subscribed', channel: 'room', offset: 2, epoch: 'e1', recovered: true });
    ws.serverSend(message(1, 'mine', { from: 'me-1' }));
    ws.serverSend(message(2, 'theirs', { from: 'other' }));
    assert.deepEqual(got, [['theirs', 2, true]]);
  });

  test('without a position (no history, or the store was down) there is no since', () => {
    const { WS, sub } = setup();
    let ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'room', recovered: false });
    ws.serverSend({ type: 'message', channel: 'room', data: 1, timestamp: 1 });
    assert.deepEqual([sub.offset, sub.epoch], [null, null]);
    ws.serverClose(1006);
    mock.timers.tick(2000);
    ws = connect(WS);
    assert.deepEqual(ws.sentOf('subscribe'), [{ type: 'subscribe', channel: 'room' }]);
  });
});

describe('history()', () => {
  test('asks the server and resolves with the publications', async () => {
    const { rt, WS, sub } = setup();
    const ws = connect(WS);
    const latest = sub.history({ limit: 2 });
    const after = rt.history('room', { since: { offset: 3, epoch: 'e1' } });
    assert.deepEqual(ws.sentOf('history'), [
      { type: 'history', channel: 'room', limit: 2 },
      { type: 'history', channel: 'room', since: { offset: 3, epoch: 'e1' } },
    ]);
    const publications = [{ data: 'a', offset: 4, timestamp: 1 }];
    ws.serverSend({ type: 'history', channel: 'room', publications, offset: 4, epoch: 'e1' });
    ws.serverSend({ type: 'error', code: 'history_unrecoverable', error: 'gone', channel: 'room' });
    assert.deepEqual(await latest, { publications, offset: 4, epoch: 'e1' });
    await assert.rejects(after, { code: 'history_unrecoverable', channel: 'room' });
    assert.equal(sub.state, 'pending', 'a history error does not fail the subscription');
  });

  test('waits for the connection, is asked again after a reconnect, and times out', async () => {
    const { rt, WS } = setup({ autoConnect: false, callTimeout: 5000 });
    rt.connect();
    const waiting = rt.history('room');
    let ws = connect(WS);
    assert.equal(ws.sentOf('history').length, 1);
    ws.serverClose(1006);
    mock.timers.tick(2000);
    ws = connect(WS);
    // After the resubscribe, so the server answers it as a subscriber.
    assert.deepEqual(
      ws.sent.map((m) => m.type),
      ['subscribe', 'history'],
    );
    ws.serverSend({ type: 'history', channel: 'room', publications: [], offset: 0, epoch: 'e' });
    assert.deepEqual(await waiting, { publications: [], offset: 0, epoch: 'e' });
    const late = rt.history('room');
    mock.timers.tick(5000);
    await assert.rejects(late, { code: 'timeout' });
    const disabled = rt.history('room');
    ws.serverSend({ type: 'error', code: 'history_disabled', error: 'no history', channel: 'room' });
    await assert.rejects(disabled, { code: 'history_disabled' });
    rt.close();
    await assert.rejects(rt.history('room'), { code: 'closed' });
    await flush();
  });
});

describe('a subscription the token expiry dropped', () => {
  test('comes back with since: what was published meanwhile is recovered', () => {
    const { rt, WS, sub } = setup();
    const ws = connect(WS);
    ws.serverSend({ type: 'subscribed', channel: 'room', offset: 5, epoch: 'e1' });
    ws.serverSend({ type: 'unsubscribed', channel: 'room', reason: 'token_expired' });
    assert.equal(sub.state, 'unsubscribed');
    assert.equal(rt.subscribe('room'), sub, 'the same subscription, asked for again');
    assert.deepEqual(ws.sentOf('subscribe').at(-1), { type: 'subscribe', channel: 'room', since: { offset: 5, epoch: 'e1' } });
  });
});

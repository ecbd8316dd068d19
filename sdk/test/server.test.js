// End to end: the SDK (its ES module source) over real sockets against a real
// `fazt serve` subprocess, with `ws` as the WebSocket class. Covers what fakes
// cannot: the server's real answers to subscribe, presence, members, publish,
// private channels, kick, heartbeat pings, and a server restart on the same port.
// Skipped (with a message) when the Python virtualenv ../.venv is missing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { SDK_DIR } from '../build.mjs';
import { FaztRealtime } from '../src/index.js';
import { Server, noServer, releaseAll, sleep, token, until } from './support/server.js';

describe('against a real fazt serve', { skip: noServer }, () => {
  /** @type {Server} */
  let server;
  /** @type {FaztRealtime[]} */
  const clients = [];
  /** Minted before any client connects: spawnSync blocks the loop, and so the pongs. @type {Record<string, string>} */
  const tokens = {};

  /** A client with small backoff, recording its events. @param {any} [options] */
  function client(options = {}) {
    const rt = new FaztRealtime(server.wsUrl, { WebSocket, window: null, backoff: { min: 50, max: 300 }, ...options });
    /** @type {any[][]} */
    const events = [];
    for (const name of ['connected', 'disconnected', 'reconnecting', 'message', 'broadcast', 'error', 'kicked']) {
      rt.on(name, (/** @type {any[]} */ ...args) => events.push([name, ...args]));
    }
    clients.push(rt);
    return { rt, events, of: (/** @type {string} */ name) => events.filter((e) => e[0] === name).map((e) => e.slice(1)) };
  }

  before(async () => {
    for (const sub of ['alice', 'bob']) tokens[sub] = token(sub);
    server = new Server();
    await server.start();
  });

  after(async () => {
    await releaseAll(
      ...clients.map((rt) => () => rt.close()),
      () => server?.dispose(),
    );
  });

  test('the kernel serves this very bundle at /_fazt/realtime.min.js', async () => {
    const response = await fetch(`${server.appUrl}/_fazt/realtime.min.js`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /javascript/);
    assert.equal(await response.text(), readFileSync(join(SDK_DIR, 'realtime.min.js'), 'utf8'));
  });

  test('subscribe, server broadcast and broadcastAll', async () => {
    const { rt, of } = client();
    const sub = rt.subscribe('news');
    assert.deepEqual(await sub, { channel: 'news', recovered: false, offset: null, epoch: null });
    assert.equal(rt.state, 'connected');
    assert.match(rt.clientId ?? '', /^[\w-]{16,}$/);
    await server.api('send', { channel: 'news', data: { n: 1 } });
    await until(() => of('message').length === 1, 'the broadcast');
    const [channel, data, meta] = of('message')[0];
    assert.deepEqual([channel, data], ['news', { n: 1 }]);
    assert.ok(Math.abs(meta.timestamp - Date.now()) < 60_000, 'timestamp in ms');
    await server.api('all', { data: 'hello all' });
    await until(() => of('broadcast').length === 1, 'the broadcastAll');
    assert.deepEqual(of('broadcast')[0][0], 'hello all');
    assert.equal(of('message')[1][0], null);
  });

  test('presence: join, members, leave between two users', async () => {
    const alice = client({ token: tokens.alice });
    /** @type {string[]} */
    const seen = [];
    const aliceSub = alice.rt.subscribe('presence-room', {
      onJoin: (member) => seen.push(`join ${member.id}`),
      onLeave: (member) => seen.push(`leave ${member.id}`),
    });
    const first = await aliceSub;
    assert.deepEqual(first.members?.map((m) => m.id), ['alice']);
    const bob = client({ token: tokens.bob });
    await bob.rt.subscribe('presence-room');
    await until(() => seen.length === 1, 'bob joining');
    assert.deepEqual(seen, ['join bob']);
    const members = await alice.rt.members('presence-room');
    assert.deepEqual(members.map((m) => [m.id, m.name]), [['alice', 'ALICE'], ['bob', 'BOB']]);
    assert.deepEqual(aliceSub.members?.map((m) => m.id), ['alice', 'bob']);
    bob.rt.close();
    await until(() => seen.length === 2, 'bob leaving');
    assert.deepEqual(seen, ['join bob', 'leave bob']);
  });

  test('client publish on a publish channel reaches the others with from, not the sender', async () => {
    const a = client();
    const b = client();
    await Promise.all([a.rt.subscribe('chat-1'), b.rt.subscribe('chat-1')]);
    await a.rt.publish('chat-1', { text: 'hi' });
    await until(() => b.of('message').length === 1, 'the published message');
    const [, data, meta] = b.of('message')[0];
    assert.deepEqual(data, { text: 'hi' });
    assert.equal(meta.from, a.rt.clientId);
    // Sent, then refused by the server: error events, the connection stays.
    await b.rt.publish('news', 'no publish rule');
    await b.rt.publish('chat-2', 'not a subscriber');
    await until(() => b.of('error').length === 2, 'the refusals');
    assert.deepEqual(
      b.of('error').map(([e]) => [e.code, e.channel]),
      [['forbidden', 'news'], ['not_subscribed', 'chat-2']],
    );
    assert.equal(b.rt.state, 'connected');
    assert.deepEqual(a.of('message'), [], 'no echo to the sender');
  });

  test('history: a dropped connection comes back with what it missed, once, in order', async () => {
    const writer = client();
    await writer.rt.subscribe('log-1');
    const { rt } = client();
    /** @type {any[]} */
    const seen = [];
    /** @type {any[]} */
    const infos = [];
    const sub = rt.subscribe('log-1', {
      onMessage: (data, meta) => seen.push([data, meta.offset, meta.recovered === true]),
      onSubscribed: (info) => infos.push(info),
    });
    const first = await sub;
    assert.deepEqual([first.recovered, first.offset, typeof first.epoch], [false, 0, 'string']);
    await server.api('send', { channel: 'log-1', data: 'one' });
    await until(() => seen.length === 1, 'the first message');
    // Away (closed, so it cannot come back too soon) while two messages go out.
    rt.close();
    await server.api('send', { channel: 'log-1', data: 'two' });
    await writer.rt.publish('log-1', 'three');
    await until(async () => (await server.api('top', { channel: 'log-1' })).offset === 3, 'both sent');
    rt.connect();
    await until(() => infos.length === 2, 'the resubscribe');
    await until(() => seen.length === 3, 'the missed messages');
    assert.deepEqual(infos[1], { channel: 'log-1', recovered: true, offset: 3, epoch: first.epoch });
    await server.api('send', { channel: 'log-1', data: 'four' });
    await until(() => seen.length === 4, 'the live message');
    assert.deepEqual(seen, [
      ['one', 1, false],
      ['two', 2, true],
      ['three', 3, true],
      ['four', 4, false],
    ]);
    const history = await sub.history({ limit: 2 });
    assert.deepEqual(history.publications.map((p) => [p.data, p.offset]), [['three', 3], ['four', 4]]);
    assert.equal(history.publications[0].from, writer.rt.clientId);
    await assert.rejects(rt.history('chat-1'), { code: 'not_subscribed' });
  });

  test('a private channel without a token is refused', async () => {
    const { rt } = client();
    await assert.rejects(rt.subscribe('private-secrets').ready, { code: 'unauthorized', channel: 'private-secrets' });
    await assert.rejects(rt.subscribe('presence-room').ready, { code: 'unauthorized' });
  });

  test('heartbeat: server pings are answered, the connection stays up', async () => {
    const { rt, of } = client();
    await rt.subscribe('news');
    await sleep(2500); // five server pings at 0.5 s, pong timeout 1 s
    assert.equal(rt.state, 'connected');
    assert.deepEqual(of('disconnected'), []);
  });

  test('kick: the kicked event, then closed for good', async () => {
    const { rt, of } = client();
    await rt.subscribe('news');
    assert.deepEqual(await server.api('kick', { clientId: rt.clientId }), { kicked: true });
    await until(() => rt.state === 'closed', 'the close after the kick');
    assert.deepEqual(of('kicked'), [['bye']]);
    assert.deepEqual(of('disconnected')[0][0], { code: 4003, reason: of('disconnected')[0][0].reason, reconnect: false });
    await sleep(400);
    assert.deepEqual(of('reconnecting'), []);
  });

  test('server restart: clients reconnect by themselves and resubscribe', async () => {
    const { rt, of } = client();
    await rt.subscribe('news');
    await server.stop();
    await until(() => rt.state !== 'connected', 'the disconnect');
    assert.equal(of('disconnected')[0][0].reconnect, true);
    await sleep(300); // a few failed attempts while the server is down
    assert.notEqual(rt.state, 'connected');
    await server.start();
    await until(() => rt.state === 'connected', 'the reconnect');
    await until(() => rt.subscribe('news').state === 'subscribed', 'the resubscribe');
    await server.api('send', { channel: 'news', data: 'after restart' });
    await until(() => of('message').length === 1, 'a message after the restart');
    assert.equal(of('message')[0][1], 'after restart');
    assert.ok(of('connected').length >= 2);
  });
});

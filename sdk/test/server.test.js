// End to end: the SDK (its ES module source) over real sockets against a real
// `fazt serve` subprocess, with `ws` as the WebSocket class. Covers what fakes
// cannot: the server's real answers to subscribe, presence, members, publish,
// private channels, kick, heartbeat pings, and a server restart on the same port.
// Skipped (with a message) when the Python virtualenv ../.venv is missing.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { SDK_DIR } from '../build.mjs';
import { FaztRealtime } from '../src/index.js';

const REPO = join(SDK_DIR, '..');
const PYTHON = process.env.FAZT_PYTHON || join(REPO, '.venv', 'bin', 'python');
const SECRET = 'sdk-test-secret-that-is-long-enough-for-hs256';
const skip = existsSync(PYTHON) ? false : `no Python virtualenv at ${PYTHON} (run scripts/setup-env)`;

const APP = {
  'app.json': JSON.stringify({ realtime: { channels: { 'chat-*': { publish: true } } } }),
  'api/send.js': `module.exports = async (req) => {
    await fazt.realtime.broadcast(req.json.channel, req.json.data);
    return { json: { sent: true } };
  };`,
  'api/all.js': `module.exports = async (req) => {
    await fazt.realtime.broadcastAll(req.json.data);
    return { json: { sent: true } };
  };`,
  'api/kick.js': `module.exports = async (req) => ({ json: { kicked: await fazt.realtime.kick(req.json.clientId, 'bye') } });`,
};

/** A port that was free a moment ago. @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Wait until `predicate()` is true (polling), or fail with `what`.
 * @param {() => boolean} predicate
 * @param {string} what
 */
async function until(predicate, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** `fazt serve` in a subprocess; `start()` resolves once it answers HTTP. */
class Server {
  /** @param {string} root @param {number} port */
  constructor(root, port) {
    this.root = root;
    this.port = port;
    /** @type {import('node:child_process').ChildProcess | null} */
    this.process = null;
    this.log = join(root, `fazt-${port}.log`);
  }

  async start() {
    const config = join(this.root, 'fazt.json');
    // Short heartbeat and shutdown grace: the test sees several pings and a quick restart.
    writeFileSync(config, JSON.stringify({ realtime: { pingIntervalSeconds: 0.5, pongTimeoutSeconds: 1, shutdownGraceSeconds: 0.3 } }));
    const log = openSync(this.log, 'a');
    const args = ['-m', 'fazt', 'serve', join(this.root, 'apps'), '--port', String(this.port), '--address', '127.0.0.1'];
    args.push('--data', join(this.root, 'data'), '--config', config, '--jwt-secret', SECRET);
    this.process = spawn(PYTHON, args, { cwd: REPO, stdio: ['ignore', log, log], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (this.process.exitCode !== null) throw new Error(`fazt exited: ${readFileSync(this.log, 'utf8')}`);
      try {
        await fetch(`http://127.0.0.1:${this.port}/`);
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`fazt did not answer: ${readFileSync(this.log, 'utf8')}`);
        await sleep(50);
      }
    }
  }

  /** SIGTERM (graceful: server_restart, then 4200), SIGKILL after 10 s. */
  async stop() {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** POST to the app's api/<name>.js. @param {string} name @param {any} body */
  async api(name, body) {
    const response = await fetch(`http://127.0.0.1:${this.port}/_app/it/api/${name}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200, await response.clone().text());
    return response.json();
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/_app/it/_ws`;
  }
}

/** @param {string} sub */
function token(sub) {
  const run = spawnSync(PYTHON, ['-m', 'fazt', 'token', '--sub', sub, '--name', sub.toUpperCase(), '--jwt-secret', SECRET], {
    cwd: REPO,
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim();
}

describe('against a real fazt serve', { skip }, () => {
  /** @type {Server} */
  let server;
  let root = '';
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
    root = mkdtempSync(join(tmpdir(), 'fazt-sdk-'));
    for (const [path, text] of Object.entries(APP)) {
      const file = join(root, 'apps', 'it', path);
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, text);
    }
    for (const sub of ['alice', 'bob']) tokens[sub] = token(sub);
    server = new Server(root, await freePort());
    await server.start();
  });

  after(async () => {
    for (const rt of clients) rt.close();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test('the kernel serves this very bundle at /_fazt/realtime.min.js', async () => {
    const response = await fetch(`http://127.0.0.1:${server.port}/_app/it/_fazt/realtime.min.js`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /javascript/);
    assert.equal(await response.text(), readFileSync(join(SDK_DIR, 'realtime.min.js'), 'utf8'));
  });

  test('subscribe, server broadcast and broadcastAll', async () => {
    const { rt, of } = client();
    const sub = rt.subscribe('news');
    assert.deepEqual(await sub, { channel: 'news' });
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

// `fazt serve` as a subprocess for the SDK's end-to-end tests (server.test.js,
// browser.test.js): a temporary app folder, a free port, a short heartbeat.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SDK_DIR } from '../../build.mjs';

export const REPO = join(SDK_DIR, '..');
export const PYTHON = process.env.FAZT_PYTHON || join(REPO, '.venv', 'bin', 'python');
const SECRET = 'sdk-test-secret-that-is-long-enough-for-hs256';

/** Why the end-to-end tests cannot run here, or false. */
export const noServer = existsSync(PYTHON) ? false : `no Python virtualenv at ${PYTHON} (run scripts/setup-env)`;

/** The app `it`: publish rule on chat-*, history on log-*, and api handlers that drive the server API. */
export const APP = {
  'app.json': JSON.stringify({
    realtime: {
      channels: {
        'chat-*': { publish: true },
        'log-*': { publish: true, history: { size: 100, ttlSeconds: 600 } },
      },
    },
  }),
  'api/send.js': `module.exports = async (req) => {
    await fazt.realtime.broadcast(req.json.channel, req.json.data);
    return { json: { sent: true } };
  };`,
  'api/all.js': `module.exports = async (req) => {
    await fazt.realtime.broadcastAll(req.json.data);
    return { json: { sent: true } };
  };`,
  'api/top.js': `module.exports = async (req) => ({ json: { offset: (await fazt.realtime.history(req.json.channel)).offset } });`,
  'api/kick.js': `module.exports = async (req) => ({ json: { kicked: await fazt.realtime.kick(req.json.clientId, 'bye') } });`,
};

/** A port that was free a moment ago. @returns {Promise<number>} */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * Remove a temporary folder; retried, because a process that just exited (a
 * browser's network process, a server's log writer) may still be writing in it.
 * @param {string} path
 */
export function removeFolder(path) {
  rmSync(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

/**
 * Run every cleanup step, even when an earlier one throws; then throw the first
 * error (all of them, when several failed). A failed cleanup never skips the next.
 * @param {...(() => unknown)} steps
 */
export async function releaseAll(...steps) {
  /** @type {unknown[]} */
  const errors = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, 'several cleanup steps failed');
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Wait until `predicate()` is true (polling), or fail with `what`.
 * @param {() => boolean | Promise<boolean>} predicate
 * @param {string} what
 */
export async function until(predicate, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A development token for `sub` (blocks the event loop: call before connecting). @param {string} sub */
export function token(sub) {
  const run = spawnSync(PYTHON, ['-m', 'fazt', 'token', '--sub', sub, '--name', sub.toUpperCase(), '--jwt-secret', SECRET], {
    cwd: REPO,
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim();
}

/** `fazt serve` over a temporary folder with the app `it` (plus `files`); `start()` resolves once it answers HTTP. */
export class Server {
  /** @param {Record<string, string>} [files] more files for the app */
  constructor(files = {}) {
    this.root = mkdtempSync(join(tmpdir(), 'fazt-sdk-'));
    for (const [path, text] of Object.entries({ ...APP, ...files })) {
      const file = join(this.root, 'apps', 'it', path);
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, text);
    }
    this.port = 0;
    /** @type {import('node:child_process').ChildProcess | null} */
    this.process = null;
    this.log = join(this.root, 'fazt.log');
  }

  async start() {
    if (!this.port) this.port = await freePort();
    const config = join(this.root, 'fazt.json');
    // Short heartbeat and shutdown grace: tests see several pings and a quick restart.
    writeFileSync(config, JSON.stringify({ realtime: { pingIntervalSeconds: 0.5, pongTimeoutSeconds: 1, shutdownGraceSeconds: 0.3 } }));
    const log = openSync(this.log, 'a');
    const args = ['-m', 'fazt', 'serve', join(this.root, 'apps'), '--port', String(this.port), '--address', '127.0.0.1'];
    args.push('--data', join(this.root, 'data'), '--config', config, '--jwt-secret', SECRET);
    const child = spawn(PYTHON, args, { cwd: REPO, stdio: ['ignore', log, log], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    this.process = child;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`fazt exited: ${readFileSync(this.log, 'utf8')}`);
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

  /** Stop and delete the folder (deleted even when stopping fails). */
  async dispose() {
    await releaseAll(
      () => this.stop(),
      () => removeFolder(this.root),
    );
  }

  /** POST to the app's api/<name>.js. @param {string} name @param {any} body */
  async api(name, body) {
    const response = await fetch(`${this.appUrl}/api/${name}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200, await response.clone().text());
    return response.json();
  }

  get appUrl() {
    return `http://127.0.0.1:${this.port}/_app/it`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/_app/it/_ws`;
  }
}

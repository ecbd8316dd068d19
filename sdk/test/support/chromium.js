// Headless Chromium (Debian's /usr/bin/chromium) driven over the DevTools
// protocol with `ws`: just enough to open a page and evaluate expressions in it.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Why the browser tests cannot run here, or false. */
export const noChromium = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (scripts/setup-env installs it)`;

export class Chromium {
  constructor() {
    this.profile = mkdtempSync(join(tmpdir(), 'fazt-sdk-chromium-'));
    /** @type {import('node:child_process').ChildProcess | null} */
    this.process = null;
    /** @type {WebSocket | null} */
    this.socket = null;
    this.nextId = 1;
    /** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void}>} */
    this.pending = new Map();
    this.session = '';
  }

  /** Launch and attach to one blank page. */
  async start() {
    const args = ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check'];
    args.push('--remote-debugging-port=0', `--user-data-dir=${this.profile}`, 'about:blank');
    const child = spawn(CHROMIUM, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.process = child;
    const endpoint = await new Promise((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => reject(new Error(`Chromium did not start:\n${text}`)), 20_000);
      child.stderr?.on('data', (chunk) => {
        text += chunk;
        const match = /DevTools listening on (ws:\S+)/.exec(text);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.once('exit', (code) => reject(new Error(`Chromium exited (${code}):\n${text}`)));
    });
    const socket = new WebSocket(endpoint, { perMessageDeflate: false });
    this.socket = socket;
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    socket.on('message', (raw) => {
      const message = JSON.parse(String(raw));
      const call = this.pending.get(message.id);
      if (!call) return;
      this.pending.delete(message.id);
      if (message.error) call.reject(new Error(`${message.error.message} (${message.error.code})`));
      else call.resolve(message.result);
    });
    const { targetInfos } = await this.send('Target.getTargets');
    const page = targetInfos.find((/** @type {any} */ t) => t.type === 'page');
    const { sessionId } = await this.send('Target.attachToTarget', { targetId: page.targetId, flatten: true });
    this.session = sessionId;
    await this.send('Runtime.enable', {}, true);
  }

  /**
   * One DevTools command; `onPage` sends it to the attached page.
   * @param {string} method
   * @param {object} [params]
   * @returns {Promise<any>}
   */
  send(method, params = {}, onPage = false) {
    const id = this.nextId++;
    /** @type {any} */
    const message = { id, method, params };
    if (onPage) message.sessionId = this.session;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket?.send(JSON.stringify(message));
    });
  }

  /** @param {string} url */
  async open(url) {
    await this.send('Page.navigate', { url }, true);
  }

  /**
   * The value of `expression` in the page (awaited if it is a Promise).
   * @param {string} expression
   */
  async evaluate(expression) {
    const { result, exceptionDetails } = await this.send(
      'Runtime.evaluate',
      { expression, returnByValue: true, awaitPromise: true },
      true,
    );
    if (exceptionDetails) throw new Error(`in the page: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
    return result.value;
  }

  async stop() {
    this.socket?.close();
    const child = this.process;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.profile, { recursive: true, force: true });
  }
}

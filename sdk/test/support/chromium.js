// Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, the one
// browser driver of the project (the Python browser tests use Playwright too).
// `playwright-core` never downloads a browser: it launches the executable we name.
// Playwright makes and removes the browser's profile folder itself, under
// $TMPDIR (scripts/test points that at the run's own temporary folder).
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Why the browser tests cannot run here, or false. */
export const noChromium = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (scripts/setup-env installs it)`;

/** Every Playwright call in a browser test is bounded by this (milliseconds). */
const TIMEOUT_MS = 15_000;

const ARGS = [
  '--no-sandbox', // required as root
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

export class Chromium {
  constructor() {
    /** @type {import('playwright-core').Browser | null} */
    this.browser = null;
    /** @type {import('playwright-core').Page | null} */
    this.page = null;
  }

  /** Launch and open one blank page. */
  async start() {
    this.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: TIMEOUT_MS });
    this.page = await this.browser.newPage();
    this.page.setDefaultTimeout(TIMEOUT_MS);
  }

  /** @param {string} url */
  async open(url) {
    await this.#page().goto(url);
  }

  /**
   * The value of `expression` in the page (awaited if it is a Promise).
   * @param {string} expression
   */
  async evaluate(expression) {
    return this.#page().evaluate(expression);
  }

  /** Close the browser; Playwright kills it after its own timeout and removes its profile. */
  async stop() {
    const browser = this.browser;
    this.browser = this.page = null;
    await browser?.close();
  }

  #page() {
    if (!this.page) throw new Error('Chromium is not started');
    return this.page;
  }
}

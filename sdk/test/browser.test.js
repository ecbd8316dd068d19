// The built bundle in real headless Chromium against a real `fazt serve`: the
// page loads /_fazt/realtime.min.js, connects with the default URL (path route
// /_app/it/_ws), and the page hooks are wired to the real window and document.
// The backoff is set to a minute, so only the `online` / `visibilitychange`
// hooks can bring the page back within the test after a server restart.
// Skipped (with a message) without Chromium or the Python virtualenv.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Chromium, noChromium } from './support/chromium.js';
import { Server, noServer, releaseAll, until } from './support/server.js';

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>sdk</title>
<script src="_fazt/realtime.min.js"></script>
<script>
  window.log = [];
  window.rt = new FaztRealtime(undefined, { backoff: { min: 60000, max: 60000 } });
  for (const event of ['connected', 'disconnected', 'reconnecting', 'message', 'error']) {
    rt.on(event, (...args) => log.push([event, ...args]));
  }
  window.news = rt.subscribe('news');
</script>`;

describe('the bundle in headless Chromium', { skip: noServer || noChromium }, () => {
  /** @type {Server} */
  let server;
  /** @type {Chromium} */
  let browser;
  /** @param {string} expression */
  const page = (expression) => browser.evaluate(expression);
  /** @param {string} event */
  const count = async (event) => /** @type {number} */ (await page(`log.filter((e) => e[0] === '${event}').length`));

  before(async () => {
    server = new Server({ 'index.html': PAGE });
    browser = new Chromium();
    await server.start();
    await browser.start();
    await browser.open(`${server.appUrl}/`);
  });

  after(async () => {
    await releaseAll(
      () => browser?.stop(),
      () => server?.dispose(),
    );
  });

  test('connects with the default URL and receives a broadcast', async () => {
    await until(async () => (await page('typeof rt === "object" && news.state')) === 'subscribed', 'the subscription');
    assert.equal(await page('rt.url'), `${server.wsUrl}`);
    assert.equal(await page('rt.state'), 'connected');
    await server.api('send', { channel: 'news', data: { n: 1 } });
    await until(async () => (await count('message')) === 1, 'the message');
    assert.deepEqual(await page('log.find((e) => e[0] === "message").slice(1, 3)'), ['news', { n: 1 }]);
  });

  for (const [hook, fire] of [
    ['online', 'window.dispatchEvent(new Event("online"))'],
    ['visibilitychange', 'document.dispatchEvent(new Event("visibilitychange"))'],
  ]) {
    test(`after a server restart, the ${hook} hook reconnects at once instead of waiting a minute`, async () => {
      const connectedBefore = await count('connected');
      const messagesBefore = await count('message');
      await server.stop();
      await until(async () => (await page('rt.state')) === 'reconnecting', 'the page to notice');
      await server.start();
      assert.equal(await page('rt.state'), 'reconnecting', 'still waiting out the one-minute backoff');
      await page(fire);
      await until(async () => (await page('news.state')) === 'subscribed', 'the reconnect and resubscribe');
      assert.equal(await count('connected'), connectedBefore + 1);
      await server.api('send', { channel: 'news', data: hook });
      await until(async () => (await count('message')) === messagesBefore + 1, 'a message after the restart');
    });
  }
});

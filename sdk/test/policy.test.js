// The pure parts: full-jitter backoff, close-code classes, URL resolution.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoff, closePolicy } from '../src/policy.js';
import { resolveUrl } from '../src/url.js';

test('backoff stays within [min, max] for every attempt and every random draw', () => {
  for (let attempt = 0; attempt < 64; attempt++) {
    for (const r of [0, 0.25, 0.5, 0.999999]) {
      const delay = backoff(attempt, {}, () => r);
      assert.ok(delay >= 500 && delay <= 20000, `attempt ${attempt}, random ${r}: ${delay}`);
    }
  }
  assert.equal(backoff(1e9, {}, () => 0.99), 20000, 'a huge attempt number is capped, not Infinity or NaN');
  assert.equal(backoff(-3, {}, () => 0), 500, 'a negative attempt counts as the first');
});

test('backoff is full jitter: the range doubles each attempt up to the cap', () => {
  const low = (/** @type {number} */ n) => backoff(n, {}, () => 0);
  const high = (/** @type {number} */ n) => backoff(n, {}, () => 0.999999);
  assert.deepEqual([0, 1, 2, 3].map(low), [500, 500, 500, 500], 'the floor never moves');
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(high), [999, 1499, 2499, 4499, 8499, 16499, 20000]);
  // Different random draws give different delays: clients spread out.
  assert.notEqual(backoff(4, {}, () => 0.1), backoff(4, {}, () => 0.9));
  const seen = new Set(Array.from({ length: 50 }, () => backoff(5)));
  assert.ok(seen.size > 10, 'Math.random by default');
});

test('backoff honours custom min and max', () => {
  assert.equal(backoff(0, { min: 100, max: 1000 }, () => 0), 100);
  assert.equal(backoff(10, { min: 100, max: 1000 }, () => 0.99), 1000);
  assert.equal(backoff(3, { min: 2000, max: 1000 }, () => 0.5), 2000, 'max below min: min wins');
});

test('close codes map to the reconnect classes of docs/protocol.md', () => {
  const table = {
    stop: [4000, 4001, 4003, 4009, 4099],
    slow: [4100, 4101, 4199],
    now: [4200, 4201, 4202, 4299],
    retry: [1000, 1001, 1005, 1006, 1009, 1011, 1012, 3000, 4300],
  };
  for (const [policy, codes] of Object.entries(table)) {
    for (const code of codes) assert.equal(closePolicy(code), policy, `code ${code}`);
  }
});

test('the default URL is the page host plus /_ws, ws or wss by page protocol', () => {
  const page = (/** @type {string} */ href) => ({ href, pathname: new URL(href).pathname });
  assert.equal(resolveUrl(undefined, page('http://chat.localhost:8080/rooms/1')), 'ws://chat.localhost:8080/_ws');
  assert.equal(resolveUrl(null, page('https://chat.example.com/')), 'wss://chat.example.com/_ws');
  assert.equal(resolveUrl('', page('http://localhost:8080/_app/chat/index.html')), 'ws://localhost:8080/_app/chat/_ws');
  assert.equal(resolveUrl('/_ws', page('https://a.example.com/x')), 'wss://a.example.com/_ws');
  assert.equal(resolveUrl('http://b.example.com:9/_ws?x=1', null), 'ws://b.example.com:9/_ws?x=1');
  assert.equal(resolveUrl('wss://c.example.com/_ws', null), 'wss://c.example.com/_ws');
  assert.throws(() => resolveUrl(undefined, null), /no URL given/);
});

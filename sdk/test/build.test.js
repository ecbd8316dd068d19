// The committed bundle: within the size budget, up to date with src/, and
// byte-identical to the copy the Python package serves.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import vm from 'node:vm';
import { BUNDLE, PYTHON_COPY, SOURCE_MAP, bundle } from '../build.mjs';

const SIZE_BUDGET = 4608; // bytes of realtime.min.js, gzipped: 4.5 KB (history and recovery took it past 4 KB)

test('realtime.min.js is at most 4.5 KB gzipped', () => {
  const size = gzipSync(readFileSync(BUNDLE), { level: 9 }).length;
  assert.ok(size <= SIZE_BUDGET, `realtime.min.js is ${size} bytes gzipped, over the ${SIZE_BUDGET}-byte budget`);
});

test('realtime.min.js and its source map are what src/ builds to (run `npm run build`)', async () => {
  const built = await bundle();
  assert.equal(readFileSync(BUNDLE, 'utf8'), built.js, 'realtime.min.js is stale: run `npm run build` in sdk/');
  assert.equal(readFileSync(SOURCE_MAP, 'utf8'), built.map, 'realtime.min.js.map is stale: run `npm run build` in sdk/');
});

test('fazt/realtime/static/realtime.min.js is a byte-identical copy', () => {
  assert.ok(readFileSync(PYTHON_COPY).equals(readFileSync(BUNDLE)), 'the Python copy differs: run `npm run build` in sdk/');
});

test('the bundle defines the global FaztRealtime class in a plain script context', () => {
  const sandbox = { queueMicrotask, setTimeout, clearTimeout, URL };
  vm.createContext(sandbox);
  vm.runInContext(readFileSync(BUNDLE, 'utf8'), sandbox);
  const FaztRealtime = /** @type {any} */ (sandbox).FaztRealtime;
  assert.equal(typeof FaztRealtime, 'function');
  assert.equal(typeof FaztRealtime.backoff, 'function');
  assert.equal(FaztRealtime.closePolicy(4003), 'stop');
  const opened = [];
  class WS {
    constructor(url) { opened.push(url); }
    close() {}
  }
  const rt = new FaztRealtime('ws://127.0.0.1:1/_ws', { WebSocket: WS, window: null });
  try {
  assert.deepEqual(opened, ['ws://127.0.0.1:1/_ws']);
  assert.equal(rt.state, 'connecting');
  // Public members keep their names through property mangling.
  for (const name of ['on', 'off', 'subscribe', 'unsubscribe', 'members', 'history', 'publish', 'setToken', 'close', 'connect']) {
    assert.equal(typeof rt[name], 'function', name);
  }
  const sub = rt.subscribe('news', { onMessage() {} });
  for (const name of ['then', 'catch', 'unsubscribe', 'history']) assert.equal(typeof sub[name], 'function', name);
  for (const name of ['offset', 'epoch']) assert.ok(name in sub, name);
  assert.equal(typeof sub.ready.then, 'function');
  } finally {
    rt.close();
  }
});

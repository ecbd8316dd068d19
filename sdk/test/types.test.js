// realtime.d.ts accepts the documented usage (test/types/usage.ts) and the
// JSDoc-typed sources type-check under `strict`: `tsc -p sdk` with no errors.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { SDK_DIR } from '../build.mjs';

test('tsc: realtime.d.ts matches the documented usage and src/ type-checks', () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const run = spawnSync(process.execPath, [tsc, '-p', SDK_DIR], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`);
});

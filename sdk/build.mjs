// Builds realtime.min.js (+ .map) from src/ with esbuild, and copies the bundle
// to fazt/realtime/static/ so the Python package serves it without Node.
// `node build.mjs` writes the files; tests import `bundle()` to check that the
// committed files are what src/ builds to.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

export const SDK_DIR = dirname(fileURLToPath(import.meta.url));
export const BUNDLE = join(SDK_DIR, 'realtime.min.js');
export const SOURCE_MAP = join(SDK_DIR, 'realtime.min.js.map');
export const PYTHON_COPY = join(SDK_DIR, '..', 'fazt', 'realtime', 'static', 'realtime.min.js');

/** @returns {Promise<{js: string, map: string}>} the bundle and its source map, in memory */
export async function bundle() {
  const result = await esbuild.build({
    absWorkingDir: SDK_DIR,
    entryPoints: ['src/browser.js'],
    outfile: BUNDLE,
    bundle: true,
    minify: true,
    format: 'iife',
    // Every browser of the last few years; esbuild lowers ??, ||= and the like.
    target: ['es2020'],
    // Internal members (`_name`) get short names: a large part of the size budget.
    mangleProps: /^_/,
    sourcemap: true,
    legalComments: 'none',
    // Explicit, so sdk/tsconfig.json (type checking only) never changes the bundle.
    tsconfigRaw: { compilerOptions: { alwaysStrict: true } },
    banner: { js: '/*! fazt realtime SDK (FaztRealtime) | MIT | source: sdk/src */' },
    write: false,
    logLevel: 'warning',
  });
  const file = (/** @type {string} */ path) => result.outputFiles.find((f) => f.path === path)?.text ?? '';
  return { js: file(BUNDLE), map: file(SOURCE_MAP) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { js, map } = await bundle();
  writeFileSync(BUNDLE, js);
  writeFileSync(SOURCE_MAP, map);
  mkdirSync(dirname(PYTHON_COPY), { recursive: true });
  writeFileSync(PYTHON_COPY, js);
  const { gzipSync } = await import('node:zlib');
  console.log(`realtime.min.js: ${js.length} bytes, ${gzipSync(js, { level: 9 }).length} gzipped`);
}

// @ts-check
/**
 * Entry of the `<script>` bundle (realtime.min.js): the global `FaztRealtime`
 * is the class itself, with the pure helpers hung on it for tests and tools.
 */
import { FaztRealtime } from './client.js';
import { backoff, closePolicy } from './policy.js';

/** @type {any} */ (FaztRealtime).backoff = backoff;
/** @type {any} */ (FaztRealtime).closePolicy = closePolicy;
/** @type {any} */ (globalThis).FaztRealtime = FaztRealtime;

// @ts-check
/** ES module entry: `import { FaztRealtime } from 'fazt-realtime-sdk/src/index.js'`. */
export { FaztRealtime, Subscription, CONNECTING, CONNECTED, RECONNECTING, CLOSED } from './client.js';
export { backoff, closePolicy } from './policy.js';

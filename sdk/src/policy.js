// @ts-check
/**
 * Pure reconnect policy: the full-jitter backoff and the close-code classes.
 * No timers and no sockets here, so both are tested as plain functions.
 */

/**
 * @typedef {{min?: number, max?: number}} BackoffOptions
 *   `min`: the smallest delay and the base of the exponential (ms, default 500);
 *   `max`: the largest delay (ms, default 20000).
 */

/**
 * Delay before reconnect attempt number `attempt` (0 for the first one), in ms.
 *
 * Full jitter (as in AWS's "Exponential Backoff and Jitter"): a uniform random
 * delay in `[min, min + min(max, min * 2^attempt)]`, clamped to `max`. The
 * random part spreads the reconnects of many clients after a server restart,
 * so they do not come back as one herd. Always `min <= delay <= max`.
 *
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @param {() => number} [random] a `Math.random` stand-in, returning [0, 1)
 * @returns {number}
 */
export function backoff(attempt, options = {}, random = Math.random) {
  const min = options.min ?? 500;
  const max = Math.max(min, options.max ?? 20000);
  // Past 2^31 the cap is `max` anyway; the clamp keeps 2 ** attempt finite.
  const cap = Math.min(max, min * 2 ** Math.min(Math.max(attempt, 0), 31));
  return Math.min(max, Math.floor(min + random() * cap));
}

/** Reconnect at once (first attempt without delay), then back off. */
export const NOW = 'now';
/** Back off before every attempt, starting higher: the server asked for room. */
export const SLOW = 'slow';
/** Back off before every attempt. */
export const RETRY = 'retry';
/** Do not reconnect. */
export const STOP = 'stop';

/**
 * The reconnect class of a WebSocket close code (Pusher's convention, see
 * docs/protocol.md): 4000-4099 stop (4001 unknown app, 4003 kicked, 4009 auth
 * failed), 4100-4199 back off (4100 over capacity, 4101 slow consumer),
 * 4200-4299 reconnect now (4200 restart, 4201 pong missing, 4202 idle), and
 * everything else (1000, 1001, 1006, 1009, ...) reconnects with backoff.
 *
 * @param {number} code
 * @returns {'now' | 'slow' | 'retry' | 'stop'}
 */
export function closePolicy(code) {
  if (code >= 4000 && code < 4100) return STOP;
  if (code >= 4100 && code < 4200) return SLOW;
  if (code >= 4200 && code < 4300) return NOW;
  return RETRY;
}

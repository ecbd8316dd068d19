// @ts-check
/** Where to connect: the explicit URL, or the page's own `/_ws`. */

/**
 * The WebSocket URL for `url` as given to `new FaztRealtime(url)`.
 *
 * - no URL: the page's host plus `/_ws` (`/_app/<slug>/_ws` when the page is
 *   served under the path route `/_app/<slug>/`), with `wss:` on an `https:`
 *   page and `ws:` otherwise;
 * - `ws:` / `wss:` URLs are used as they are;
 * - `http(s):` and relative URLs are resolved against the page and switched
 *   to `ws(s):`.
 *
 * Throws an `Error` when no URL is given and there is no page to derive it
 * from, or when the URL is malformed or of another scheme.
 *
 * @param {string | undefined | null} url
 * @param {{href: string, pathname: string} | undefined | null} location
 * @returns {string}
 */
export function resolveUrl(url, location) {
  if (!url) {
    if (!location) throw new Error('FaztRealtime: no URL given and no page location to derive one from');
    const route = /^\/_app\/[^/]+\//.exec(location.pathname);
    url = (route ? route[0] : '/') + '_ws';
  }
  let resolved;
  try {
    resolved = new URL(url, location ? location.href : undefined);
  } catch {
    throw new Error(`FaztRealtime: invalid URL ${url}`);
  }
  if (/^wss?:$/.test(resolved.protocol)) return url;
  if (!/^https?:$/.test(resolved.protocol)) throw new Error(`FaztRealtime: not a ws, wss, http or https URL: ${url}`);
  resolved.protocol = resolved.protocol === 'https:' ? 'wss:' : 'ws:';
  return resolved.href;
}

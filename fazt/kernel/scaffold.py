"""``fazt new SLUG``: a small working app to start from.

The app has one public channel (``messages``), a page that subscribes to it and
shows what arrives, and ``api/hello.js``, which broadcasts what the page posts.
Every URL in it works in both routing styles without edits: the SDK is loaded
from the absolute ``/_fazt/realtime.min.js`` (served on app hosts and on the
kernel's own host), the API is called with the relative ``api/hello``, and the
SDK finds ``/_ws`` or ``/_app/<slug>/_ws`` by itself.

An existing folder is never touched: the app folder is created with
``mkdir(exist_ok=False)`` and nothing is written when that fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from fazt.kernel.registry import SLUG_PATTERN

#: The one channel the new app's rule opens to everyone.
CHANNEL = "messages"


class ScaffoldError(Exception):
    """The app cannot be created (bad slug, folder exists); nothing was written."""


def app_files(slug: str) -> dict[str, str]:
    """Relative path -> text of every file of a new app called ``slug``."""
    manifest = {
        "slug": slug,
        "name": slug,
        "realtime": {"channels": {CHANNEL: {"auth": False}}},
    }
    return {
        "app.json": json.dumps(manifest, indent=2) + "\n",
        "index.html": _INDEX_HTML.replace("{slug}", slug).replace("{channel}", CHANNEL),
        "api/hello.js": _HELLO_JS.replace("{channel}", CHANNEL),
        "README.md": _README.replace("{slug}", slug).replace("{channel}", CHANNEL),
    }


def create_app(apps_dir: Path, slug: str) -> Path:
    """Write a new app in ``apps_dir/slug`` and return its folder.

    Raises ``ScaffoldError`` for a slug that is not valid and for a folder that
    already exists (it is left as it was).
    """
    if not SLUG_PATTERN.match(slug):
        raise ScaffoldError(
            f"{slug!r} is not a valid slug: use 1-63 lower-case letters, digits and '-', "
            "not starting or ending with '-' (it becomes the host name <slug>.localhost)"
        )
    folder = apps_dir / slug
    if folder.exists() or folder.is_symlink():
        raise ScaffoldError(f"{folder} already exists; nothing was written (pick another name)")
    apps_dir.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError as error:  # created between the check and here
        raise ScaffoldError(f"{folder} already exists; nothing was written") from error
    for relative, text in app_files(slug).items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8") as handle:
            handle.write(text)
    return folder


_INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{slug}</title>
  <link rel="icon" href="data:,">
  <style>
    * { box-sizing: border-box; }
    body { font: 16px/1.5 system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 40rem; }
    header { display: flex; gap: .5rem; align-items: baseline; flex-wrap: wrap; }
    h1 { font-size: 1.4rem; margin: 0; }
    #status { font-size: .85rem; color: #666; }
    form { display: flex; gap: .5rem; margin: 1rem 0; }
    input { flex: 1; min-width: 0; font: inherit; padding: .5rem; }
    button { font: inherit; padding: .5rem 1rem; }
    ol { padding-left: 1.5rem; overflow-wrap: anywhere; }
    .empty { color: #666; }
  </style>
</head>
<body>
  <header>
    <h1>{slug}</h1>
    <span id="status">connecting…</span>
  </header>

  <form id="send">
    <input id="text" maxlength="500" autocomplete="off" placeholder="Say hello"
           aria-label="message">
    <button type="submit">Send</button>
  </form>
  <p id="empty" class="empty">No messages yet: send one, or open this page in a second window.</p>
  <ol id="messages"></ol>

  <!-- Absolute: the kernel serves /_fazt/ on every app host and on its own host. -->
  <script src="/_fazt/realtime.min.js"></script>
  <script>
    // ws://<this host>/_ws, or /_app/<slug>/_ws when the page is served there.
    const rt = new FaztRealtime();
    const status = document.getElementById('status');
    rt.on('state', (state) => { status.textContent = state; });

    rt.subscribe('{channel}', {
      onMessage: (data) => {
        document.getElementById('empty').hidden = true;
        const item = document.createElement('li');
        item.textContent = data.text;             // text, never HTML
        document.getElementById('messages').append(item);
      },
    });

    document.getElementById('send').addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = document.getElementById('text');
      // Relative, so it works at http://<slug>.localhost:8080/ and at /_app/<slug>/.
      const response = await fetch('api/hello', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ text: input.value }),
      });
      if (response.ok) input.value = '';
      else status.textContent = 'error: ' + (await response.json()).error;
    });
  </script>
</body>
</html>
"""

_HELLO_JS = """// POST /api/hello {"text": "..."}: broadcast the text to everyone on "{channel}".
// An empty body ({} or nothing) broadcasts a greeting.
module.exports = async (req) => {
  if (req.method !== 'POST') {
    return { json: { hint: 'POST {"text": "..."} here to broadcast it' } };
  }
  const given = req.json && typeof req.json.text === 'string' ? req.json.text.trim() : '';
  const text = given ? given.slice(0, 500) : `hello from ${fazt.app.slug}`;
  await fazt.realtime.broadcast('{channel}', { text, at: Date.now() });
  return { json: { sent: true, text } };
};
"""

_README = """# {slug}

Made by `fazt new {slug}`.

- `app.json`: the manifest. Its one channel rule makes `{channel}` public
  (`"auth": false`); only handlers publish on it.
- `index.html`: the page. It loads `/_fazt/realtime.min.js`, subscribes to
  `{channel}` and shows what arrives.
- `api/hello.js`: `POST /api/hello {"text": "..."}` broadcasts the text on
  `{channel}`.

Run it from the folder that holds this app's folder (`apps/` by default):

```sh
fazt serve apps        # then open http://{slug}.localhost:8080/
                       # or http://127.0.0.1:8080/_app/{slug}/
```

Try the API from a shell:

```sh
curl -X POST -d '{"text": "hi"}' http://127.0.0.1:8080/_app/{slug}/api/hello
```

Edits to `index.html` and `api/hello.js` need no restart; an edited
`app.json` does. `fazt check apps` validates every `app.json`.
"""

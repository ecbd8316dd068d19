"""The kernel's own front page: ``GET /`` on a kernel host lists the apps.

A newcomer who opens ``http://127.0.0.1:8080/`` sees every served app with a
link in both routing styles (``http://<slug>.<domain>:PORT/`` and
``/_app/<slug>/``), and the app folders that were refused, so that a typo in an
``app.json`` does not look like a missing app. Nothing here reveals a file
system path: refused apps are named by their folder only.
"""

from __future__ import annotations

from html import escape
from typing import Protocol

from fazt.kernel.handlers import JsonErrorsMixin
from fazt.kernel.hosts import host_port
from fazt.kernel.manifest import ManifestError
from fazt.kernel.registry import AppRegistry


class AppListing(Protocol):
    """What the index page shows of the kernel (``Kernel`` is one)."""

    @property
    def apps(self) -> AppRegistry: ...
    @property
    def domain(self) -> str: ...
    @property
    def manifest_errors(self) -> list[ManifestError]: ...


_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 44rem; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
ul { padding: 0; list-style: none; }
li { padding: .6rem 0; border-bottom: 1px solid #ddd; overflow-wrap: anywhere; }
li a { display: inline-block; margin-right: 1rem; }
.name { font-weight: 600; margin-right: .5rem; }
code { background: #f3f3f3; padding: 0 .2rem; }
.refused { color: #a00; }
"""


def _port_suffix(host: str) -> str:
    """``:8080`` when the Host header carries a port, else ``""``."""
    port = host_port(host)
    return f":{port}" if port else ""


def render_index(kernel: AppListing, *, scheme: str, host: str) -> str:
    """The index page's HTML for a request that came in on ``host`` (a kernel host)."""
    suffix = _port_suffix(host)
    items = []
    for app in kernel.apps.all():
        slug = escape(app.slug)
        by_host = f"{scheme}://{slug}.{escape(kernel.domain)}{suffix}/"
        by_path = f"/_app/{slug}/"
        title = app.manifest.get("name")
        named = isinstance(title, str) and title != app.slug
        label = f' <span class="title">{escape(str(title))}</span>' if named else ""
        items.append(
            f'<li><span class="name">{slug}</span>{label}<br>'
            f'<a href="{by_host}">{by_host}</a><a href="{by_path}">{by_path}</a></li>'
        )
    for error in kernel.manifest_errors:
        refused = error.file.parent if error.file.name == "app.json" else error.file
        folder = escape(refused.name)
        items.append(
            f'<li class="refused"><span class="name">{folder}</span> not served: its '
            "<code>app.json</code> has errors (run <code>fazt check</code>)</li>"
        )
    listing = "\n".join(items) or "<li>No apps yet.</li>"
    count = len(kernel.apps)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fazt: {count} app(s)</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>fazt</h1>
<p>{count} app(s). Each answers at <code>http://&lt;slug&gt;.{escape(kernel.domain)}{suffix}/</code>
and, on this host, at <code>/_app/&lt;slug&gt;/</code>.</p>
<ul>
{listing}
</ul>
<p>New app: <code>fazt new hello APPS_DIR</code>, then restart <code>fazt serve</code>.</p>
</body>
</html>
"""


class IndexHandler(JsonErrorsMixin):
    """``GET /`` and ``HEAD /`` on a kernel host: the app index (see module doc)."""

    def initialize(self, kernel: AppListing) -> None:
        self._kernel = kernel

    def _send(self, include_body: bool) -> None:
        page = render_index(self._kernel, scheme=self.request.protocol, host=self.request.host)
        body = page.encode("utf-8")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        if include_body:
            self.finish(body)
        else:
            self.set_header("Content-Length", len(body))
            self.finish()

    def get(self) -> None:
        self._send(include_body=True)

    def head(self) -> None:
        self._send(include_body=False)

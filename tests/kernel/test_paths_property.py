"""Property tests for the traversal checks (no sockets): no generated URL path
maps to a file outside the app's public part."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fazt.kernel.paths import api_handler_file, decode_segments, is_served, static_path_ok

# Pieces that traversal attempts are made of, plus names that exist in the app.
PIECES = [
    "/", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", "%00", "%25", "%",
    "app.json", "api", "private", "public", "index.html", "notes.txt", ".env", "x",
    "link-out", "link-private", "hello", "hello.js", "%252e",
]  # fmt: skip
url_paths = st.lists(st.sampled_from(PIECES), max_size=12).map(lambda parts: "/" + "".join(parts))


def build_app(root: Path) -> Path:
    app = root / "app"
    for relative, text in {
        "app.json": "{}",
        "index.html": "home",
        "public/index.html": "pub",
        "private/notes.txt": "secret",
        "api/hello.js": "module.exports = 1",
        ".env": "TOKEN",
    }.items():
        (app / relative).parent.mkdir(parents=True, exist_ok=True)
        (app / relative).write_text(text)
    (root / "outside.txt").write_text("outside")
    if not (app / "link-out").exists():
        os.symlink(root / "outside.txt", app / "link-out")
        os.symlink(app / "private", app / "public" / "link-private")
    return app


def allowed(app: Path, target: str) -> bool:
    real = os.path.realpath(target)
    relative = os.path.relpath(real, app)
    parts = relative.split(os.sep)
    return not (
        relative.startswith("..")
        or parts[0] in {"app.json", "api", "private"}
        or any(part.startswith(".") and part != "." for part in parts)
    )


def test_static_and_api_paths_property(tmp_path: Path) -> None:
    app = build_app(tmp_path)

    @settings(max_examples=200, deadline=None)
    @given(url_paths)
    def check(url_path: str) -> None:
        segments = decode_segments(url_path)
        if segments is None or not is_served(segments):
            return
        candidate = os.path.join(str(app), *segments)
        if static_path_ok(str(app), candidate) and os.path.exists(candidate):
            assert allowed(app, candidate), url_path
        handler = api_handler_file(app, url_path.lstrip("/"))
        if handler is not None:
            real = os.path.realpath(handler)
            assert real.startswith(str(app / "api") + os.sep), url_path

    check()

"""Traversal-safe mapping of request paths to files inside an app folder.

Two layers, both required:

1. *Lexical*: the URL path is percent-decoded exactly once, then split on
   ``/``. Any ``..`` or ``.`` segment, any dotfile segment, NUL bytes and
   backslashes are refused, as are the never-served parts of an app
   (``app.json``, ``api/``, ``private/``). Encoded slashes (``%2f``) decode to
   ``/`` and so are split and checked like any other separator.
2. *Physical*: the candidate file's ``realpath`` (symlinks resolved) must lie
   inside the app folder's ``realpath``, and its path relative to the app
   folder must pass layer 1 again (a symlink in ``public/`` pointing at
   ``private/`` is refused too).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import unquote

from fazt.contracts.containment import is_within

#: Top-level names inside an app folder that are never served as static files.
NEVER_SERVED_TOP = frozenset({"app.json", "api", "private"})
#: What a handler name segment may look like (``/api/<seg>/<seg>``). A segment
#: starting with ``_`` (or ``.``) is never a route: ``api/_lib/`` holds modules that
#: handlers ``require`` but that must not answer HTTP themselves.
_API_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def decode_segments(raw_path: str) -> list[str] | None:
    """The path's segments after one percent-decoding, or None when unsafe.

    Empty segments (``a//b``, a trailing ``/``) are dropped.
    """
    try:
        decoded = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\x00" in decoded or "\\" in decoded:
        return None
    segments = [segment for segment in decoded.split("/") if segment]
    for segment in segments:
        if segment.startswith("."):
            # Covers "..", "." and dotfiles such as .env or .git.
            return None
    return segments


def is_served(segments: list[str]) -> bool:
    """Whether a (safe) relative path may be served as a static file."""
    return not (segments and segments[0] in NEVER_SERVED_TOP)


def inside(root: Path, candidate: Path) -> bool:
    """Whether ``candidate`` resolves (symlinks included) to a path under ``root``."""
    return is_within(os.path.realpath(candidate), os.path.realpath(root))


def served_relative(root: Path, candidate: Path) -> bool:
    """Physical check for static files: inside ``root`` and not a never-served part."""
    if not inside(root, candidate):
        return False
    relative = os.path.relpath(os.path.realpath(candidate), os.path.realpath(root))
    if relative == ".":
        return True
    parts = relative.split(os.sep)
    return is_served(parts) and not any(part.startswith(".") for part in parts)


def static_path_ok(root: str, candidate: str) -> bool:
    """Physical check for a static file, cheap when no symlink is involved.

    ``candidate`` has passed the lexical checks and lies lexically under
    ``root`` (a resolved path). One ``lstat`` per segment below ``root``; only
    when a segment is a symlink is the full ``served_relative`` check run. A
    missing segment passes (the caller answers 404 for missing files).
    """
    relative = os.path.relpath(candidate, root)
    if relative == ".":
        return True
    if relative.startswith(".."):
        return served_relative(Path(root), Path(candidate))
    path = root
    for part in relative.split(os.sep):
        path = f"{path}{os.sep}{part}"
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return True
        if stat.S_ISLNK(mode):
            return served_relative(Path(root), Path(candidate))
    return True


def api_handler_file(app_root: Path, raw_name: str) -> Path | None:
    """The handler file for ``/api/<raw_name>``, or None when there is none.

    ``api/a/b.js`` answers ``/api/a/b``; ``api/a/index.js`` answers ``/api/a``
    when ``api/a.js`` does not exist. Names are restricted to letters, digits,
    ``_``, ``-`` and ``.``, and no segment starts with ``_`` or ``.`` (private
    modules); the file must resolve inside ``api/``.
    """
    segments = decode_segments(raw_name)
    if not segments or not all(_API_SEGMENT.match(segment) for segment in segments):
        return None
    api_root = f"{app_root}{os.sep}api"
    if segments[-1].endswith(".js"):
        # "/api/x.js" is not a route; only the extension-less name is.
        return None
    direct = [*segments[:-1], segments[-1] + ".js"]
    for parts in (direct, [*segments, "index.js"]):
        found = _regular_file_inside(api_root, parts)
        if found is not None:
            return Path(found)
    return None


def _regular_file_inside(root: str, parts: list[str]) -> str | None:
    """``root/parts...`` when it is a regular file that resolves inside ``root``.

    The hot path of every API call: one ``lstat`` per segment instead of a full
    ``realpath`` (which stats every component from ``/``). Only when a segment
    is a symlink does it fall back to the full ``inside`` check.
    """
    path = root
    linked = False
    for part in parts:
        path = f"{path}{os.sep}{part}"
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        linked = linked or stat.S_ISLNK(mode)
    if linked:
        if not inside(Path(root), Path(path)):
            return None
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return None
    return path if stat.S_ISREG(mode) else None

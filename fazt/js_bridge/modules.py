"""Loading an app's ``api/`` files for the CommonJS loader, confined to that folder.

JS cannot read the disk, and it cannot call Python while a time limit is set,
so ``require`` cannot fetch files on demand. Instead Python reads the handler
file and, transitively, every file it names in a *literal* relative
``require('./x')`` call, and defines them all in the context before the handler
runs. ``require`` in JS then resolves the same way (``prelude.js`` mirrors
:func:`candidate_keys`) and finds them already defined.

A module key is the POSIX path of a file relative to ``api_root``
(``"lib/db.js"``). A key never leaves ``api_root``: ``..`` past the root,
absolute paths and bare names (``'fs'``) are refused before the disk is touched,
and a file whose real path (symlinks resolved) is outside ``api_root`` becomes
an *error module*: requiring it throws a clear message.

Files are cached by ``(device, inode, mtime_ns, size)`` of their target, so an
edit (or a retargeted symlink) is picked up by the next request, with one
``stat`` per file per request.

Error locations: the ``quickjs`` wrapper compiles every source as ``<input>``
and cannot name a file, so a stack frame of ``api/hello.js`` and one of the
bridge's prelude look alike. :class:`ModuleLines` compiles each module at its
own line offset instead (the wrapper's header on the line before the file's
first line, newlines before it), past the prelude's lines; a frame's line then
says which file it is in and where, and stacks and syntax errors are rewritten
to ``api/<file>.js:line:col``, without the bridge's own frames.
"""

from __future__ import annotations

import bisect
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fazt.contracts.containment import is_within

#: Largest file the loader reads (bigger ones become error modules).
MAX_MODULE_BYTES = 4 * 1024 * 1024

#: Handler paths whose module key is remembered (the lexical check runs per request).
MAX_CACHED_KEYS = 10_000

#: ``require('./x')`` / ``require("../y.js")`` with a literal relative path.
_LITERAL_REQUIRE = re.compile(r"""\brequire\s*\(\s*(['"])(\.{1,2}/[^'"\r\n]*)\1\s*\)""")

Version = tuple[int, int, int, int]
ModuleKind = Literal["js", "json", "error"]


@dataclass(frozen=True)
class ModuleSource:
    """One loadable file: its key, its on-disk version, and its text.

    ``kind`` is ``"js"`` (``text`` is the source), ``"json"`` (``text`` is the
    JSON) or ``"error"`` (``text`` is the message ``require`` throws).
    """

    key: str
    version: Version | None
    kind: ModuleKind
    text: str
    requires: tuple[str, ...] = ()


class HandlerPathError(ValueError):
    """The handler file is not a readable file inside ``api_root``."""


def normalise_key(base_dir: str, spec: str) -> str | None:
    """Join ``spec`` onto ``base_dir`` (both POSIX, relative); ``None`` if it climbs out."""
    parts = base_dir.split("/") if base_dir else []
    for segment in spec.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(segment)
    return "/".join(parts)


def candidate_keys(from_key: str, spec: str) -> list[str]:
    """The keys ``require(spec)`` inside module ``from_key`` tries, in order.

    Empty when ``spec`` is not a relative path or leaves ``api_root``. Must stay
    in step with ``resolveKey`` in ``prelude.js``.
    """
    if not (spec.startswith("./") or spec.startswith("../")):
        return []
    base_dir = from_key.rpartition("/")[0]
    key = normalise_key(base_dir, spec)
    if not key:
        return []
    if key.endswith((".js", ".json")):
        return [key]
    return [key, key + ".js", key + ".json", key + "/index.js"]


def _is_candidate(path: str) -> bool:
    """Whether ``require`` would pick this path: a file, or a symlink that is not a folder.

    Broken and escaping symlinks count, so that requiring them gives a clear error
    instead of silently falling through to the next candidate.
    """
    if os.path.islink(path):
        return not os.path.isdir(path)
    return os.path.isfile(path)


class ModuleStore:
    """Reads and caches module files for every app; safe to share between threads."""

    def __init__(self, *, max_module_bytes: int = MAX_MODULE_BYTES) -> None:
        self._max_bytes = max_module_bytes
        self._lock = threading.Lock()
        self._cache: dict[str, ModuleSource] = {}  # absolute path -> last loaded source
        self._keys: dict[tuple[str, str], str] = {}  # (api_root, handler_file) -> key
        self._roots: dict[Path, str] = {}  # api_root -> its absolute path
        self._seen: dict[str, tuple[int, ModuleSource]] = {}  # path -> (batch, source)

    def handler_key(self, api_root: Path, handler_file: Path) -> str:
        """The module key of ``handler_file``; raises :class:`HandlerPathError`.

        Only a lexical check (it runs on every request); symlinks are checked when
        the file is read, in :meth:`closure`.
        """
        cache_key = (str(api_root), str(handler_file))
        key = self._keys.get(cache_key)
        if key is not None:
            return key
        root = os.path.abspath(api_root)
        path = os.path.abspath(handler_file)
        if path == root or not is_within(path, root):
            raise HandlerPathError(f"{handler_file} is not inside {api_root}")
        key = path[len(root) :].lstrip(os.sep).replace(os.sep, "/")
        with self._lock:
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.clear()  # a crude bound; recomputing a key is cheap
            self._keys[cache_key] = key
        return key

    def closure(
        self, api_root: Path, entry_key: str, batch: int | None = None
    ) -> list[ModuleSource]:
        """``entry_key`` (first) and every module reachable from it through literal requires.

        Each file is re-read when its version changed. Calls with the same
        ``batch`` (requests that arrived together, in one IOLoop iteration)
        stat each file once: every ``stat`` hands the GIL to another thread and
        back, and an edit is still seen by the next batch. A candidate key that does
        not exist on disk is simply absent (``require`` then says so); the entry
        itself always appears, as an error module if it cannot be loaded.
        """
        root = self._roots.get(api_root)
        if root is None:
            root = os.path.abspath(api_root)
            with self._lock:
                if len(self._roots) >= MAX_CACHED_KEYS:
                    self._roots.clear()
                self._roots[api_root] = root
        entry = self._load(root, entry_key, must_exist=True, batch=batch)
        if entry is None:  # not reached: with must_exist a missing entry is an error module
            return []
        found: dict[str, ModuleSource] = {entry_key: entry}
        pending = [entry]  # loaded modules whose requires are not followed yet
        while pending:
            source = pending.pop()
            for spec in source.requires:
                for candidate in candidate_keys(source.key, spec):
                    if candidate in found:
                        break
                    if _is_candidate(os.path.join(root, candidate)):
                        loaded = self._load(root, candidate, must_exist=False, batch=batch)
                        if loaded is not None:
                            found[candidate] = loaded
                            pending.append(loaded)
                        break
        return list(found.values())

    def _load(
        self, root: str, key: str, *, must_exist: bool, batch: int | None = None
    ) -> ModuleSource | None:
        path = os.path.join(root, key)
        if batch is not None:
            with self._lock:
                seen = self._seen.get(path)
            if seen is not None and seen[0] == batch:
                return seen[1]
        source = self._stat_and_load(root, key, path, must_exist=must_exist)
        if batch is not None and source is not None and source.version is not None:
            with self._lock:
                self._seen[path] = (batch, source)
        return source

    def _stat_and_load(
        self, root: str, key: str, path: str, *, must_exist: bool
    ) -> ModuleSource | None:
        try:
            st = os.stat(path)
        except OSError:
            if os.path.islink(path):
                return ModuleSource(key, None, "error", f"api/{key} is a broken symlink")
            if must_exist:
                return ModuleSource(key, None, "error", f"api/{key} does not exist")
            return None
        version: Version = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached.version == version:
            return cached
        source = self._read(root, key, path, version, st.st_size)
        with self._lock:
            self._cache[path] = source
        return source

    def _read(self, root: str, key: str, path: str, version: Version, size: int) -> ModuleSource:
        def error(message: str) -> ModuleSource:
            return ModuleSource(key, version, "error", message)

        if not is_within(os.path.realpath(path), os.path.realpath(root)):
            return error(f"api/{key} resolves outside the app's api/ folder (symlink); refused")
        if not os.path.isfile(path):
            return error(f"api/{key} is not a regular file")
        if size > self._max_bytes:
            return error(f"api/{key} is larger than {self._max_bytes} bytes")
        try:
            with open(path, "rb") as file:
                raw = file.read(self._max_bytes + 1)
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return error(f"api/{key} is not valid UTF-8")
        except OSError as exc:
            return error(f"api/{key} cannot be read: {exc.strerror or exc}")
        text = text.removeprefix("\ufeff")
        if key.endswith(".json"):
            return ModuleSource(key, version, "json", text)
        if text.startswith("#!"):  # a shebang line is not JS; keep the line count
            text = "//" + text[2:]
        requires = tuple(dict.fromkeys(m.group(2) for m in _LITERAL_REQUIRE.finditer(text)))
        return ModuleSource(key, version, "js", text, requires)


#: What the wrapper writes for every location: ``<input>:line:column``.
_INPUT_LOCATION = re.compile(r"<input>:(\d+):(\d+)")
#: The CommonJS wrapper of a module; the file's text starts on the next line.
MODULE_HEADER = "(function (module, exports, require) {"


@dataclass(frozen=True)
class _Placement:
    """Lines ``first``..``first + lines - 1`` hold ``key``'s text; the next, its footer."""

    first: int
    lines: int
    last_line_length: int
    key: str


class ModuleLines:
    """Gives each module of one context its own lines, and maps locations back.

    ``reserved`` lines (the prelude's) belong to the bridge. Each module text
    is placed after everything placed before it; a module whose new text does
    not fit its place (an edit that added lines) gets a new one, and the old
    place still maps to the same file. The padding costs one byte per line
    placed before the module, once per compile. One instance per context, used
    by its one thread.
    """

    def __init__(self, reserved: int) -> None:
        self._next_header = reserved + 1  # the first line nothing uses yet
        self._places: dict[str, _Placement] = {}
        self._starts: list[int] = []  # first lines, ascending (placement order)
        self._placed: list[_Placement] = []

    def wrap(self, key: str, text: str) -> str:
        """The source to compile for module ``key``: padding, header, text, footer."""
        lines = text.split("\n")
        place = self._places.get(key)
        if place is None or place.lines < len(lines):
            place = _Placement(self._next_header + 1, len(lines), len(lines[-1]), key)
            self._next_header = place.first + place.lines + 1  # past the footer line
            self._places[key] = place
            self._starts.append(place.first)
            self._placed.append(place)
        padding = "\n" * (place.first - 2)
        return f"{padding}{MODULE_HEADER}\n{text}\n}})"

    def locate(self, line: int, column: int) -> tuple[str, int, int] | None:
        """``(key, line, column)`` in the file for a compiled location, or None (bridge)."""
        index = bisect.bisect_right(self._starts, line) - 1
        if index < 0:
            return None
        place = self._placed[index]
        offset = line - place.first
        if offset < place.lines:
            return place.key, offset + 1, column
        if offset == place.lines:  # the footer: "unexpected end of input" and the like
            return place.key, place.lines, place.last_line_length + 1
        return None

    def _where(self, match: re.Match[str]) -> str | None:
        found = self.locate(int(match.group(1)), int(match.group(2)))
        return None if found is None else f"api/{found[0]}:{found[1]}:{found[2]}"

    def rewrite_stack(self, stack: str) -> str:
        """A JS stack with file locations, and without the bridge's frames.

        A native frame called by the bridge (``at call (native)`` under the
        module loader) goes with the bridge's frames.
        """
        if "<input>:" not in stack:
            return stack
        kept: list[str] = []
        for line in stack.split("\n"):
            match = _INPUT_LOCATION.search(line)
            if match is None:
                kept.append(line)
                continue
            where = self._where(match)
            if where is None:
                while kept and kept[-1].rstrip().endswith("(native)"):
                    kept.pop()  # its caller is the bridge
                continue
            kept.append(line[: match.start()] + where + line[match.end() :])
        return "\n".join(kept)

    def compile_error(self, key: str, error_text: str) -> str:
        """``api/<key>:line:col: SyntaxError: ...`` from the wrapper's compile error."""
        first, _, rest = error_text.partition("\n")
        match = _INPUT_LOCATION.search(rest)
        where = self._where(match) if match is not None else None
        return f"{where or f'api/{key}'}: {first}"

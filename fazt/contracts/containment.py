"""Whether a path lies inside a folder: the one rule both the router and the JS loader apply."""

from __future__ import annotations

import os


def is_within(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or lies below it, comparing whole path segments.

    A lexical test on paths the caller has already made comparable (both
    ``abspath``, or both ``realpath`` when symlinks must not lead out):
    ``/srv/app/api-old`` is not within ``/srv/app/api``.
    """
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

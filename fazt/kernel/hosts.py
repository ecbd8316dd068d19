"""Host headers: which host names an app, which is the kernel's own, and its port.

An **app host** is ``<slug>.<domain>`` (one label, port ignored). A **kernel
host** is the kernel's own: the bare domain, ``localhost``, any IP literal, and
the names in the config key ``kernelHosts``. The router owns what each kind
answers; this module only classifies.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable


def host_name(host: str) -> str:
    """The Host header without its port, lower-case, without a trailing dot.

    An IPv6 literal keeps its brackets: ``[::1]:8080`` -> ``[::1]``.
    """
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0].rstrip(".") if ":" in host else host.rstrip(".")


def host_port(host: str) -> int | None:
    """The port a Host header names, or None (``chat.localhost:8080`` -> 8080)."""
    tail = host.strip().rpartition("]")[2] if host.strip().startswith("[") else host
    _, colon, port = tail.rpartition(":")
    return int(port) if colon and port.isdigit() and len(port) <= 5 else None


def host_slug(host: str, domain: str) -> str | None:
    """The slug a Host header names under ``domain``, or None.

    ``chat.localhost:8080`` -> ``chat``; only one label is accepted, so
    ``a.b.localhost`` names no app.
    """
    name = host_name(host)
    if name.startswith("["):
        return None  # an IPv6 literal never names an app
    suffix = "." + domain.lower()
    if not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    return label if label and "." not in label else None


@functools.lru_cache(maxsize=256)
def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
    except ValueError:
        return False
    return True


class KernelHosts:
    """The kernel's own host names: the bare domain, ``localhost``, IP literals, extras."""

    def __init__(self, domain: str, extra: Iterable[str] = ()) -> None:
        self.names = frozenset({domain.lower(), "localhost", *(host_name(h) for h in extra)})

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        name = host_name(host)
        return name in self.names or _is_ip_literal(name)

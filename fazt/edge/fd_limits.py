"""Open files: raise the soft limit at start, and fit the realtime connection limit into it.

Every connection is a file descriptor. ``fit_config_to_fd_limit`` raises the
soft ``RLIMIT_NOFILE`` to the hard limit (the most an unprivileged process may
have), then shares the limit out (``fd_budget``):

- connections that have not finished their headers or upgrade get at most a
  quarter of it (``http.maxPendingConnections`` is lowered if it is more), so
  slow or silent clients can never take every descriptor;
- ``FD_RESERVE`` descriptors (at most a quarter) are kept for everything else:
  listening sockets, HTTP requests being served, Redis, files and handlers;
- realtime connections get at most the rest: when the realtime plugin's
  ``maxConnectionsTotal`` plus that headroom (pending cap and reserve) does not
  fit, the effective ``maxConnectionsTotal`` is lowered to what fits, so new
  realtime connections are refused with 503 before descriptors run out.

Each lowered cap is logged in one line at start.

``maxConnectionsTotal`` counts connections cluster-wide while the limit is per
process, so with several processes the clamp is conservative.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from typing import Any

from fazt.config import KernelConfig

log = logging.getLogger("fazt.edge")

#: Descriptors kept for listening sockets, HTTP connections being served, Redis
#: and files (at most a quarter of the limit).
FD_RESERVE = 256
#: Linux's default ``fs.nr_open``: the target when the hard limit is unlimited.
NR_OPEN_DEFAULT = 1024 * 1024
REALTIME = "realtime"


@dataclass(frozen=True, slots=True)
class FdLimit:
    """The soft limit before and after raising it, and the hard limit."""

    before: int
    soft: int
    hard: int


def raise_fd_limit() -> FdLimit:
    """Raise the soft open-file limit to the hard limit; keep it if that is refused."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NR_OPEN_DEFAULT if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as error:
            log.warning(
                "could not raise the open-file limit from %d to %d: %s",
                soft,
                target,
                error,
            )
            return FdLimit(before=soft, soft=soft, hard=hard)
        log.debug("open-file limit raised from %d to %d", soft, target)
        return FdLimit(before=soft, soft=target, hard=hard)
    return FdLimit(before=soft, soft=soft, hard=hard)


@dataclass(frozen=True, slots=True)
class FdBudget:
    """How a process's descriptors are shared out (see the module doc)."""

    limit: int
    reserve: int
    pending: int
    realtime: int


def fd_budget(limit: int, *, max_pending: int, max_realtime: int) -> FdBudget:
    """The pending cap and the realtime cap that fit ``limit``, with the reserve kept back.

    Pure. Each cap is the configured one unless it does not fit: the pending
    cap gets at most a quarter of the limit, the reserve is ``FD_RESERVE`` (at
    most a quarter), and realtime connections get at most what is left (at
    least 1).
    """
    if limit == resource.RLIM_INFINITY:
        return FdBudget(limit, 0, max_pending, max_realtime)
    reserve = min(FD_RESERVE, limit // 4)
    pending = max(1, min(max_pending, limit // 4))
    realtime = max(1, min(max_realtime, limit - reserve - pending))
    return FdBudget(limit, reserve, pending, realtime)


def fit_config_to_fd_limit(config: KernelConfig, *, default_max_realtime: int) -> KernelConfig:
    """Raise the soft limit, then lower the caps that do not fit it (one line each).

    ``default_max_realtime`` is the realtime plugin's ``maxConnectionsTotal`` when
    the config leaves it unset (passed in: the edge sits below the plugins).
    Returns ``config`` unchanged when everything fits.
    """
    limit = raise_fd_limit().soft
    realtime_enabled = REALTIME in config.plugins
    section: dict[str, Any] = config.plugin_settings(REALTIME)
    limits = dict(section.get("limits") or {})
    wanted = int(limits.get("maxConnectionsTotal", default_max_realtime))
    budget = fd_budget(limit, max_pending=config.http_max_pending_connections, max_realtime=wanted)
    overrides: dict[str, Any] = {}
    if budget.pending < config.http_max_pending_connections:
        log.warning(
            "the open-file limit is %d: http.maxPendingConnections %d would leave too few "
            "descriptors for connections being served, so it is %d (a quarter of the limit; "
            "raise the hard limit, e.g. ulimit -Hn or systemd's LimitNOFILE=, to allow more)",
            limit,
            config.http_max_pending_connections,
            budget.pending,
        )
        overrides["http"] = {"maxPendingConnections": budget.pending}
    if realtime_enabled and budget.realtime < wanted:
        log.warning(
            "the open-file limit is %d: realtime.limits.maxConnectionsTotal %d plus %d "
            "descriptors of headroom (%d for connections still sending their headers, %d for "
            "everything else) does not fit, so maxConnectionsTotal is %d (raise the hard limit, "
            "e.g. ulimit -Hn or systemd's LimitNOFILE=, to allow more)",
            limit,
            wanted,
            budget.pending + budget.reserve,
            budget.pending,
            budget.reserve,
            budget.realtime,
        )
        limits["maxConnectionsTotal"] = budget.realtime
        overrides[REALTIME] = {**section, "limits": limits}
    return config.with_overrides(overrides) if overrides else config

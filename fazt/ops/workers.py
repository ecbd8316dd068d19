"""``--workers N``: every worker answers on the admin port, and asks its siblings.

The parent binds the admin port before it forks, exactly as it binds the
public port, so every worker accepts on it and the kernel hands each admin
connection to one of them. The views of the admin API are cluster-wide
already (they come from the Redis registry), so any worker answers them
alone. What is per process (metrics, readiness, recent events, the rates of
the dashboard) the answering worker gathers from every worker: each one
serves a *snapshot* of itself on a Unix socket, ``worker-<slot>.sock``, in a
folder the parent made for this purpose (mode 0700, removed when it exits).

A snapshot request is one line naming what to include (``status`` or
``metrics``); the answer is one JSON object, then the worker closes the
connection. A worker that is being restarted, or died, simply has no
answering socket: it is left out (a refused or missing socket), never waited
for longer than ``SNAPSHOT_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

log = logging.getLogger("fazt.ops")

SNAPSHOT_TIMEOUT_SECONDS: Final = 2.0
#: A snapshot larger than this is refused (a worker's metrics text is ~10-100 KB).
MAX_SNAPSHOT_BYTES: Final = 32 * 1024 * 1024
#: What a snapshot request may ask for.
STATUS, METRICS = "status", "metrics"

Snapshot = dict[str, Any]


@dataclass(frozen=True)
class WorkerGroup:
    """This worker's place among ``count`` workers sharing the snapshot ``folder``."""

    folder: Path
    slot: int
    count: int

    def socket_path(self, slot: int) -> Path:
        return self.folder / f"worker-{slot}.sock"


class SnapshotServer:
    """Serves ``snapshot(part)`` on this worker's Unix socket."""

    def __init__(self, group: WorkerGroup, snapshot: Callable[[str], Snapshot]) -> None:
        self._group = group
        self._snapshot = snapshot
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        path = self._group.socket_path(self._group.slot)
        # The worker this one replaces may have died without removing it.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server = await asyncio.start_unix_server(self._answer, str(path))
        os.chmod(path, 0o600)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), SNAPSHOT_TIMEOUT_SECONDS)
            part = METRICS if line.strip() == METRICS.encode() else STATUS
            writer.write(json.dumps(self._snapshot(part)).encode())
            await writer.drain()
        except (OSError, asyncio.TimeoutError, ValueError):
            log.debug("a snapshot request failed", exc_info=True)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self._group.socket_path(self._group.slot).unlink()


async def fetch_snapshot(path: Path, part: str) -> Snapshot | None:
    """The snapshot of the worker listening on ``path``, or None when it does not answer."""
    writer: asyncio.StreamWriter | None = None
    try:
        reader, opened = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path)), SNAPSHOT_TIMEOUT_SECONDS
        )
        writer = opened
        opened.write(part.encode() + b"\n")
        data = await asyncio.wait_for(_read_all(reader), SNAPSHOT_TIMEOUT_SECONDS)
        found = json.loads(data)
        return found if isinstance(found, dict) else None
    except (OSError, asyncio.TimeoutError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await reader.read(65536):
        size += len(chunk)
        if size > MAX_SNAPSHOT_BYTES:
            raise ValueError("snapshot too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def gather_snapshots(group: WorkerGroup, own: Snapshot, part: str) -> list[Snapshot]:
    """``own`` and the snapshot of every other worker that answers, by slot."""
    others = [
        fetch_snapshot(group.socket_path(slot), part)
        for slot in range(group.count)
        if slot != group.slot
    ]
    found = [snapshot for snapshot in await asyncio.gather(*others) if snapshot is not None]
    return sorted([own, *found], key=lambda snapshot: int(snapshot.get("worker") or 0))

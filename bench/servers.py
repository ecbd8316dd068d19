"""The servers measured: fazt (``fazt serve`` as a black box) and its peers.

Every peer speaks the same small JSON protocol (``docs/benchmarks.md``):
subscribe/subscribed, a client ``message`` publishes to a channel (relayed to
every other subscriber: no peer echoes a publish to its sender, as fazt does
not), ``ping``/``pong``; the storm peers also check a JWT in an ``auth``
message. python-socketio speaks its own framing (the ``socketio`` dialect).

A peer is started per measurement as a fresh subprocess pinned to the server
core (``procs.spawn``), and stopped by its process group.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import BENCH, PYTHON, free_port, process_tree, spawn, stop_process, wait_port

# HS256 secret shared by fazt (``--jwt-secret``), the storm peers and the clients.
JWT_SECRET = "bench-only-hs256-secret-0123456789abcdef"
FAZT_APP = "bench"
ROOM_PREFIX = "room-"


@dataclass
class Options:
    """What a scenario asks of the server it starts (fazt reads all, the peers the secret)."""

    realtime: dict[str, Any] = field(default_factory=dict)  # fazt "realtime" config keys
    redis: str | None = None
    workers: int = 1


@dataclass
class Server:
    """A running peer: its process, the URL to connect to and the client dialect."""

    proc: subprocess.Popen[bytes]
    port: int
    ws_path: str
    argv: list[str]
    cwd: Path
    log: Path
    dialect: str = "plain"
    publish_path: str | None = None
    broadcast_all_path: str | None = None
    workdir: Path | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.ws_path}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        """The server and its children (``fazt serve --workers N`` forks N workers)."""
        return process_tree(self.proc.pid)

    def stop_for_restart(self, grace: float = 30.0) -> bool:
        """SIGTERM, and wait until the process is gone (its files stay); SIGKILL after
        ``grace`` seconds. Returns True when it had to be killed."""
        return stop_process(self.proc, grace=grace)

    def start_again(self, timeout: float = 60.0) -> None:
        """The same command again, on the same port (after ``stop_for_restart``)."""
        self.proc = spawn(self.argv, self.log, cwd=self.cwd)
        wait_port(self.port, self.proc, timeout, self.log)


@dataclass
class Peer:
    name: str
    label: str
    start: Callable[[int, Path, Options], Server]
    available: Callable[[], str | None] = lambda: None  # reason it cannot run, or None


def script_peer(script: str, path: str, dialect: str = "plain", publish: str | None = None) -> Any:
    def start(port: int, tmp: Path, options: Options) -> Server:
        log = tmp / f"{Path(script).stem}-{port}.log"
        runner = ["node"] if script.endswith(".js") else [PYTHON]
        argv = [*runner, script, str(port), JWT_SECRET]
        proc = spawn(argv, log, cwd=BENCH / "peers")
        return Server(proc, port, path, argv, BENCH / "peers", log, dialect, publish_path=publish)

    return start


def node_available() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (BENCH / "node_modules" / "ws").is_dir():
        return "bench/node_modules/ws is missing (npm ci in bench/ failed?)"
    return None


# -- fazt ------------------------------------------------------------------------------------
FAZT_APP_JSON = {
    "slug": FAZT_APP,
    "name": FAZT_APP,
    "realtime": {
        "channels": {
            "bench": {"publish": True},
            f"{ROOM_PREFIX}*": {"publish": True},
        }
    },
}
FAZT_PUBLISH_JS = """\
// The JS handler path: an HTTP POST that broadcasts to a channel.
module.exports = async (req) => {
  const { channel, data } = req.json;
  await fazt.realtime.broadcast(channel, data);
  return { json: { sent: true } };
};
"""
FAZT_BROADCAST_ALL_JS = """\
// One app-wide broadcast to every connection (the connections scenario).
module.exports = async (req) => {
  await fazt.realtime.broadcastAll(req.json.data);
  return { json: { sent: true } };
};
"""
# Limits raised so the bench measures the server, not the admission limits.
FAZT_LIMITS = {
    "maxConnectionsTotal": 20000,
    "maxConnectionsPerApp": 20000,
    "maxChannelsPerApp": 20000,
    "maxMessagesPerSecond": 100000,
}


def fazt_available() -> str | None:
    probe = subprocess.run(
        [PYTHON, "-c", "import fazt.cli, fazt.realtime.plugin"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return "fazt serve or the realtime plugin is not importable"
    return None


def fazt_config(options: Options) -> dict[str, Any]:
    config: dict[str, Any] = {"realtime": {"limits": dict(FAZT_LIMITS), **options.realtime}}
    if options.redis:
        config["redis"] = options.redis
    return config


def fazt_start(port: int, tmp: Path, options: Options) -> Server:
    work = Path(tempfile.mkdtemp(prefix="fazt-", dir=tmp))
    app = work / "apps" / FAZT_APP
    (app / "api").mkdir(parents=True)
    (app / "app.json").write_text(json.dumps(FAZT_APP_JSON, indent=2))
    (app / "api" / "publish.js").write_text(FAZT_PUBLISH_JS)
    (app / "api" / "broadcast_all.js").write_text(FAZT_BROADCAST_ALL_JS)
    (app / "index.html").write_text("<!doctype html><title>bench</title>\n")
    config = work / "fazt.json"
    config.write_text(json.dumps(fazt_config(options), indent=2))
    log = tmp / f"fazt-{port}.log"
    argv = [
        PYTHON,
        "-m",
        "fazt",
        # Access logs off, as in the bare peers (they have no log handler).
        *("--log-level", "WARNING", "serve", str(work / "apps")),
        *("--address", "127.0.0.1", "--port", str(port)),
        *("--config", str(config), "--data", str(work / "data")),
        *("--jwt-secret", JWT_SECRET),
    ]
    if options.workers > 1:
        argv += ["--workers", str(options.workers)]
    proc = spawn(argv, log, cwd=work)
    return Server(
        proc,
        port,
        f"/_app/{FAZT_APP}/_ws",
        argv,
        work,
        log,
        "fazt",
        publish_path=f"/_app/{FAZT_APP}/api/publish",
        broadcast_all_path=f"/_app/{FAZT_APP}/api/broadcast_all",
        workdir=work,
    )


PEERS = [
    Peer("fazt", "fazt (`fazt serve`)", fazt_start, fazt_available),
    Peer(
        "tornado",
        "bare Tornado `write_message` loop",
        script_peer("tornado_peer.py", "/ws", publish="/publish"),
    ),
    Peer("websockets", "websockets `broadcast()`", script_peer("websockets_peer.py", "/")),
    Peer(
        "socketio",
        "python-socketio (aiohttp)",
        script_peer("socketio_peer.py", "/socket.io/?EIO=4&transport=websocket", "socketio"),
    ),
    Peer("node-ws", "Node.js `ws`", script_peer("node_peer.js", "/"), node_available),
    Peer("rawsend", "calibration: bare `socket.send()`", script_peer("rawsend_peer.py", "/")),
]
BY_NAME = {peer.name: peer for peer in PEERS}


@contextlib.contextmanager
def running(
    peer: Peer, tmp: Path, options: Options | None = None, timeout: float = 60.0
) -> Iterator[Server]:
    """A fresh server for one measurement, stopped (and its files removed) afterwards."""
    server = peer.start(free_port(), tmp, options or Options())
    try:
        wait_port(server.port, server.proc, timeout, server.log)
        if options and options.workers > 1:
            wait_workers(server, options.workers, timeout)
        yield server
    finally:
        stop_process(server.proc)
        if server.workdir is not None:
            shutil.rmtree(server.workdir, ignore_errors=True)


def wait_workers(server: Server, workers: int, timeout: float) -> None:
    """Wait until ``fazt serve --workers N`` has forked its N workers."""
    deadline = time.monotonic() + timeout
    while len(server.pids()) < workers + 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(server.pids()) - 1} of {workers} workers started")
        time.sleep(0.05)

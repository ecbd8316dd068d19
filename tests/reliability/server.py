"""The server under test: ``fazt serve`` in a subprocess, its app, and ways to look at it.

One app, ``rel``, with the channels the population uses, the ``api/*.js``
handlers the publishers and the checks call, and a static file for the health
probe. On Redis, the test starts its own ``redis-server`` on a free port.
Everything is stopped by PID in ``close``, each step even when another failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from pathlib import Path
from typing import Any, Final

from tests.harness import FaztProcess, make_app
from tests.realtime.backplane.redis_server import RedisServer

APP: Final = "rel"
SECRET: Final = "reliability-secret-0123456789abcdef0123"

#: The health request, as a path inside the app. Until the kernel has its own
#: ``/healthz``, a static file of the app: the cheapest request that still goes
#: through the kernel's router and IOLoop. Change this one constant to move it.
HEALTH_PATH: Final = "/health.txt"

MANIFEST: Final = {
    "realtime": {
        "channels": {
            "pub-*": {"publish": True},
            "role-*": {"role": "vip"},
            "private-*": {"auth": True},
        }
    }
}

HANDLERS: Final = {
    # A server publisher: ``repeat`` broadcasts (default 1) per request, the
    # sequence number ``data.s`` counting up; answered once all are sent.
    "api/pub.js": """
module.exports = async (req) => {
  const b = req.json;
  const repeat = b.repeat || 1;
  for (let i = 0; i < repeat; i++) {
    const data = repeat > 1 ? Object.assign({}, b.data, { s: b.data.s + i }) : b.data;
    if (b.channel === null) await fazt.realtime.broadcastAll(data);
    else await fazt.realtime.broadcast(b.channel, data);
  }
  return { json: { sent: true } };
};
""",
    "api/kick.js": """
module.exports = async (req) => {
  return { json: { kicked: await fazt.realtime.kick(req.json.clientId, req.json.reason) } };
};
""",
    "api/count.js": """
module.exports = async (req) => {
  const channel = req.query.channel;
  return { json: { count: channel ? await fazt.realtime.count(channel)
                                  : await fazt.realtime.count() } };
};
""",
}

#: Kernel config of the server under test; the probe and counts are in ``run``.
REALTIME_CONFIG: Final[dict[str, Any]] = {
    "pingIntervalSeconds": 5,
    "pongTimeoutSeconds": 5,
    "shutdownGraceSeconds": 1,
    # Small, so that a client that never reads is cut off within a second or two.
    "outgoingQueueSize": 64,
    "limits": {
        "maxConnectionsPerApp": 2000,
        "maxChannelsPerApp": 1000,
        "maxMessageSizeKB": 16,
    },
}


class ServerUnderTest:
    """``fazt serve`` (and its Redis) for one run; ``close`` stops both."""

    def __init__(self, workdir: Path, backplane: str) -> None:
        if backplane not in ("memory", "redis"):
            raise ValueError(f"unknown backplane {backplane!r}")
        self.backplane = backplane
        self.redis: RedisServer | None = None
        make_app(
            workdir / "apps",
            APP,
            MANIFEST,
            {**HANDLERS, HEALTH_PATH.lstrip("/"): "ok\n"},
        )
        config: dict[str, Any] = {
            "plugins": ["realtime", "tests.reliability.inspector:InspectorPlugin"],
            "realtime": REALTIME_CONFIG,
        }
        extra = ["--jwt-secret", SECRET]
        if backplane == "redis":
            self.redis = RedisServer()
            self.redis.start()
            extra += ["--redis", self.redis.url]
        self.process = FaztProcess(
            workdir / "apps", data_dir=workdir / "data", config=config, extra_args=extra
        )

    def start(self) -> ServerUnderTest:
        try:
            self.process.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        try:
            self.process.stop()
        finally:
            if self.redis is not None:
                self.redis.close()

    def __enter__(self) -> ServerUnderTest:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- addresses -------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.process.port

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ws_path(self) -> str:
        return f"/_app/{APP}/_ws"

    def ws_url(self, token: str | None = None) -> str:
        url = self.process.ws_url(APP)
        return f"{url}?token={token}" if token else url

    def url(self, path: str) -> str:
        return self.process.url(APP, path)

    @property
    def health_url(self) -> str:
        return self.url(HEALTH_PATH)

    # -- looking at it (blocking; the run calls these outside its busy phases) -----------
    def get_json(self, path: str, timeout: float = 30) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
            return json.loads(response.read())

    def inspect(self, deep: bool = False) -> dict[str, Any]:
        """The realtime core's own counts (``tests.reliability.inspector``)."""
        stats: dict[str, Any] = self.get_json("/_inspect?deep=1" if deep else "/_inspect")
        return stats

    def count(self) -> int:
        """``fazt.realtime.count()`` through an ``api/*.js`` handler."""
        return int(self.get_json("/api/count")["count"])

    def rss_kb(self) -> int:
        """The server's resident set size, from ``/proc/PID/status``."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server used so far, from ``/proc/PID/stat``."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        # utime and stime are fields 14 and 15 of stat(5); 12 and 13 after the name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.process.log_text()
        return ""

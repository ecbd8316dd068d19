"""``--workers 2`` with the admin port: every worker's data through the one listener."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.harness import FaztProcess, free_port, make_app
from tests.ops.support import samples
from tests.realtime.backplane.redis_server import RedisServer, needs_redis_server

pytestmark = [pytest.mark.redis, needs_redis_server]


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read().decode(), error.code
        error.close()
    return status, json.loads(body) if body.startswith(("{", "[")) else body


def eventually(probe: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_metrics_readiness_and_api_cover_every_worker(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    folders_before = set(Path(tempfile.gettempdir()).glob("fazt-admin-*"))
    redis = RedisServer()
    redis.start()
    admin_port = free_port()
    process = FaztProcess(
        tmp_path / "apps",
        data_dir=tmp_path / "data",
        config={"admin": {"port": admin_port}},
        extra_args=["--workers", "2", "--redis", redis.url],
    )
    try:
        with process:
            base = f"http://127.0.0.1:{admin_port}"
            token = (tmp_path / "data" / "admin-token").read_text().strip()

            def both_ready() -> Any:
                status, body = get(base + "/readyz")
                return body if status == 200 and len(body.get("workers", [])) == 2 else None

            ready = eventually(both_ready, "both workers ready")
            assert [w["worker"] for w in ready["workers"]] == [0, 1]
            assert all(w["ready"] for w in ready["workers"])

            # Whichever worker answers, /metrics holds both, each sample labelled.
            for _ in range(4):
                status, text = get(base + "/metrics")
                assert status == 200
                found = samples(text)
                workers = {
                    dict(labels).get("worker")
                    for name, labels in found
                    if name == "fazt_realtime_backplane_up"
                }
                assert workers == {"0", "1"}
                assert all(
                    value == 1
                    for (name, _), value in found.items()
                    if name == "fazt_realtime_backplane_up"
                )
            status, apps = get(base + "/admin/apps", token)
            assert status == 200 and [app["slug"] for app in apps] == ["chat"]
            status, overview = get(base + "/admin/overview", token)
            assert status == 200 and overview["workers"] == 2 and overview["ready"] is True

            redis.stop()
            down = eventually(
                lambda: (lambda s, b: b if s == 503 else None)(*get(base + "/readyz")),
                "not ready without Redis",
            )
            assert down["reason"] == "the backplane (Redis) is unreachable"
            redis.start()
            eventually(both_ready, "both workers ready again")
    finally:
        redis.close()
    # The parent removed the workers' snapshot folder when it exited.
    assert set(Path(tempfile.gettempdir()).glob("fazt-admin-*")) <= folders_before

"""``fazt serve --workers N``: a dead worker is replaced with backoff; SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from fazt.kernel.tokens import TokenService
from fazt.supervisor import describe_exit, restart_delay
from tests.edge.processes import EdgeFaztProcess
from tests.edge.procfs import child_pids, cpu_seconds, is_running, process_holding
from tests.harness import REPO_ROOT, make_app
from tests.realtime.backplane.redis_server import RedisServer, needs_redis_server
from tests.realtime.wsclient import Client, open_client

SECRET = "supervisor-test-secret-0123456789abcdef"
APP_UUID = "app_supervisorTest01"
PRESENCE_TTL = 1.0


def test_restart_delay_doubles_up_to_a_cap() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert restart_delay(10_000) == 30


def test_exits_in_words() -> None:
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(1) == "exited with status 1"
    assert describe_exit(0) == "exited with status 0"


@contextlib.contextmanager
def supervised(count: int, mode: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.edge.supervised", str(count), mode],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        assert process.stderr is not None
        process.stderr.close()


def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


RESTART_LINE = re.compile(
    r"worker \d+ replaces worker \d+, which exited with status 3 "
    r"after [\d.]+ s \(backoff ([\d.]+) s\)"
)


def test_a_crashing_worker_is_restarted_with_growing_backoff_and_no_spin(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "supervisor.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.edge.supervised", "1", "crash"],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            text=True,
        )
    try:
        started = time.monotonic()
        # Waits for the restarts instead of sleeping a fixed time, so a loaded
        # machine (slow worker start-ups) changes how long it takes, not the result.
        wait_for(
            lambda: len(RESTART_LINE.findall(log_path.read_text())) >= 3,
            "three restarts",
            timeout=30,
        )
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(process.pid)
        process.send_signal(signal.SIGTERM)
        code = process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    log = log_path.read_text()
    restarts = RESTART_LINE.findall(log)
    assert restarts[:3] == ["0.5", "1.0", "2.0"], log
    # The backoff alone is 3.5 s: never a tight restart loop.
    assert elapsed >= 3.5, log
    assert cpu < 0.25 * elapsed, f"the supervisor used {cpu:.2f} s of CPU in {elapsed:.1f} s"
    assert code == 0, log
    assert "Traceback" not in log


def test_sigterm_stops_every_worker_and_exits_0() -> None:
    with supervised(3, "serve") as process:
        wait_for(lambda: len(child_pids(process.pid)) == 3, "three workers")
        workers = child_pids(process.pid)
        process.send_signal(signal.SIGTERM)
        code = process.wait(10)
        assert process.stderr is not None
        log = process.stderr.read()
    assert code == 0, log
    assert not any(is_running(pid) for pid in workers)
    assert "replaces worker" not in log


def test_a_final_exit_status_stops_supervision_with_that_status() -> None:
    with supervised(2, "refuse") as process:
        code = process.wait(10)
        assert process.stderr is not None
        log = process.stderr.read()
    assert code == 2, log
    assert "which restarting cannot fix: stopping every worker" in log
    assert "replaces worker" not in log


def test_fazt_serve_stops_when_its_workers_refuse_their_config(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    # Plugin sections are checked by each worker's kernel; the parent cannot see this one.
    config = {"redis": "redis://127.0.0.1:1/0", "realtime": {"pingIntervalSeconds": "often"}}
    node = EdgeFaztProcess(
        tmp_path / "apps", data_dir=tmp_path / "d", config=config, extra_args=("--workers", "2")
    )
    with pytest.raises(RuntimeError, match="fazt exited with 2"):
        node.start(timeout=30)
    log = node.log_text()
    assert "fazt: error: worker" in log and "pingIntervalSeconds" in log, log
    assert "restarting cannot fix" in log and "replaces worker" not in log, log


class Prober:
    """Opens a new HTTP connection every few milliseconds and records each outcome."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[float, bool]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        client = AsyncHTTPClient(force_instance=True)
        try:
            while True:
                started = time.monotonic()
                try:
                    response = await client.fetch(self.url, request_timeout=5, raise_error=False)
                    ok = response.code == 200
                except Exception:
                    ok = False
                self.results.append((started, ok))
                await asyncio.sleep(0.02)
        finally:
            client.close()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@pytest.mark.redis
@needs_redis_server
@pytest.mark.gen_test(timeout=120)
async def test_kill_9_of_a_worker_is_replaced_while_the_port_keeps_serving(
    tmp_path: Path,
) -> None:
    redis = RedisServer()
    redis.start()
    make_app(tmp_path / "apps", "chat", {"uuid": APP_UUID}, {"index.html": "hello"})
    config = {
        "redis": redis.url,
        "jwt": {"secret": SECRET},
        "realtime": {"presenceTtlSeconds": PRESENCE_TTL, "shutdownGraceSeconds": 0.2},
    }
    node = EdgeFaztProcess(
        tmp_path / "apps", data_dir=tmp_path / "d", config=config, extra_args=("--workers", "2")
    )
    clients: dict[str, tuple[Client, int]] = {}
    prober = Prober(node.url("chat"))
    try:
        node.start(timeout=30)
        wait_for(lambda: len(child_pids(node.pid)) == 2, "two workers")
        workers = child_pids(node.pid)
        # Users on both workers: connect until each worker holds at least one.
        for n in range(40):
            user = f"user{n}"
            token = TokenService(SECRET.encode()).issue(user, name=user)
            client = await open_client(node.ws_url("chat"), token)
            await client.subscribe("presence-room")
            port = client.ws.local_address[1]
            owner = process_holding(node.port, port, workers)
            assert owner in workers, (owner, workers)
            clients[user] = (client, owner)
            if len({owner for _, owner in clients.values()}) == 2:
                break
        victim = next(iter(clients.values()))[1]
        observer = next(c for c, owner in clients.values() if owner != victim)
        gone = sorted(user for user, (_, owner) in clients.items() if owner == victim)
        await observer.request({"type": "members", "channel": "presence-room"})
        with contextlib.suppress(asyncio.TimeoutError):
            while True:  # drop the join events seen so far
                await observer.recv(timeout=0.3)

        prober.start()
        await asyncio.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(wait_for, lambda: not is_running(victim), "the victim to die")
        dead_at = time.monotonic()
        await asyncio.to_thread(
            wait_for,
            lambda: len(child_pids(node.pid) - {victim}) == 2,
            "a replacement worker",
            5.0,
        )
        replaced_in = time.monotonic() - dead_at
        replacement = (child_pids(node.pid) - workers).pop()

        # The dead worker's users leave, through the other nodes' liveness sweep.
        left: list[str] = []
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + PRESENCE_TTL * 4 + 5
        with contextlib.suppress(asyncio.TimeoutError):
            while len(left) < len(gone):
                event = await observer.recv(timeout=max(0.1, deadline - time.monotonic()))
                seen.append(event)
                if event.get("event") == "leave":
                    left.append(event["client"]["id"])
        assert sorted(left) == gone, (gone, seen, node.log_text())

        await asyncio.sleep(0.5)
        await prober.stop()
        after = [ok for started, ok in prober.results if started > dead_at]
        assert len(after) >= 20 and all(after), prober.results

        code = node.terminate(timeout=20)
        assert code == 0, node.log_text()
        assert not is_running(replacement) and not any(is_running(pid) for pid in workers)
    finally:
        await prober.stop()
        for client, _ in clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        node.stop()
        redis.close()
    log = node.log_text()
    assert replaced_in < 3.0, replaced_in
    lines = [line for line in log.splitlines() if "replaces worker" in line]
    assert len(lines) == 1, log
    assert f"worker {replacement} replaces worker {victim}, which was killed by SIGKILL" in lines[0]
    assert "Traceback" not in log

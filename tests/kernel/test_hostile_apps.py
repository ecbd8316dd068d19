"""A hostile app, over real HTTP: it cannot starve other apps' handlers, flood or forge
the log, set headers that reach beyond itself, or stall the IOLoop with big bodies."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.harness import FaztProcess, make_app, running_kernel
from tests.kernel.util import fetch, json_body

SPIN = "module.exports = () => { for (;;) {} };"
COUNT_FOREVER = "module.exports = async () => { for (;;) await fazt.realtime.count(); };"
PING = "module.exports = () => ({ json: 'pong' });"
SANDBOX = {"timeLimitSeconds": 2, "wallTimeLimitSeconds": 3}
#: A starved request waits for whole hog jobs (each runs to its 2 s CPU limit), so
#: any p99 above half a hog job means the calm app queued behind the hog. On a
#: quiet machine the p99 is about 10 ms (docs/js-handlers.md); the bound leaves
#: room for a CI machine busy with other work.
STARVED_P99_SECONDS = SANDBOX["timeLimitSeconds"] / 2


async def latencies_meanwhile(url: str, hog_url: str, hogs: int, samples: int) -> list[float]:
    """Fire ``hogs`` requests at ``hog_url``; while they run, time ``samples`` requests."""
    client = AsyncHTTPClient(force_instance=True, max_clients=hogs + 2)
    try:
        flood = [
            asyncio.ensure_future(client.fetch(hog_url, raise_error=False, request_timeout=30))
            for _ in range(hogs)
        ]
        await asyncio.sleep(0.3)  # the hog holds its share of the workers now
        times: list[float] = []
        for _ in range(samples):
            started = time.monotonic()
            response = await client.fetch(url, raise_error=False)
            times.append(time.monotonic() - started)
            assert response.code == 200, response.body
        assert not all(task.done() for task in flood), "the hog finished too early to count"
        for response in await asyncio.gather(*flood):
            assert response.code == 503, response.body
            assert json.loads(response.body)["error"]
        return sorted(times)
    finally:
        client.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_spinning_app_does_not_slow_another_apps_handlers(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "hog", files={"api/spin.js": SPIN})
    make_app(apps, "calm", files={"api/ping.js": PING})
    config = {"plugins": [], "sandbox": SANDBOX}
    async with running_kernel(apps, data_dir=tmp_path / "d", config=config) as k:
        times = await latencies_meanwhile(
            k.url("calm", "/api/ping"), k.url("hog", "/api/spin"), hogs=6, samples=100
        )
    assert times[98] < STARVED_P99_SECONDS, f"p99 {times[98]:.3f} s while another app spins"


@pytest.mark.gen_test(timeout=60)
async def test_an_app_looping_on_host_calls_does_not_hold_every_worker(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "hog", files={"api/count.js": COUNT_FOREVER})
    make_app(apps, "calm", files={"api/ping.js": PING})
    config = {"sandbox": SANDBOX, "realtime": {"shutdownGraceSeconds": 0.1}}
    async with running_kernel(apps, data_dir=tmp_path / "d", config=config) as k:
        times = await latencies_meanwhile(
            k.url("calm", "/api/ping"), k.url("hog", "/api/count"), hogs=12, samples=100
        )
    assert times[98] < STARVED_P99_SECONDS, (
        f"p99 {times[98]:.3f} s while another app loops on host calls"
    )


@pytest.mark.gen_test(timeout=30)
async def test_headers_that_reach_beyond_the_app_are_dropped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handler = """module.exports = () => ({
      json: 'ok',
      headers: {
        'Service-Worker-Allowed': '/',
        'Set-Cookie': 'sid=1; Path=/; Domain=localhost',
        'X-Kept': 'yes',
      },
    });"""
    cookie = "module.exports = () => ({ json: 1, headers: { 'Set-Cookie': 'sid=2; HttpOnly' } });"
    apps = tmp_path / "apps"
    make_app(apps, "evil", files={"api/h.js": handler, "api/cookie.js": cookie})
    caplog.set_level(logging.WARNING, logger="fazt.app.evil")
    async with running_kernel(apps, data_dir=tmp_path / "d", config={"plugins": []}) as k:
        response = await fetch(k.url("evil", "/api/h"))
        assert response.code == 200 and json_body(response) == "ok"
        assert response.headers["X-Kept"] == "yes"
        assert "Service-Worker-Allowed" not in response.headers
        assert "Set-Cookie" not in response.headers
        fine = await fetch(k.url("evil", "/api/cookie"))
        assert fine.headers["Set-Cookie"] == "sid=2; HttpOnly"
    lines = [r.getMessage() for r in caplog.records if r.name == "fazt.app.evil"]
    assert len(lines) == 2
    assert lines[0].startswith("api/h.js: dropped the Service-Worker-Allowed header")
    assert lines[1].startswith("api/h.js: dropped the Set-Cookie header")


def test_console_cannot_flood_or_forge_the_server_log(tmp_path: Path) -> None:
    forged = "2026-11-30 10:00:00,000 INFO fazt.kernel: fazt stopped"
    flood = (
        "module.exports = async () => {\n"
        "  const line = 'x'.repeat(100000);\n"
        # a host call between lines: a cap per stretch between host calls would reset
        "  for (let i = 0; i < 2000; i++) {\n"
        "    console.log(line);\n"
        "    await fazt.auth.issueToken({sub: 'a'});\n"
        "  }\n"
        "  return 'done';\n"
        "};"
    )
    forge = f"module.exports = () => {{ console.log('hi\\n{forged}'); return 'ok'; }};"
    apps = tmp_path / "apps"
    make_app(apps, "evil", files={"api/flood.js": flood, "api/forge.js": forge})
    process = FaztProcess(apps, data_dir=tmp_path / "d", config={"plugins": []})
    with process:
        import urllib.request

        for path in ("/api/flood", "/api/forge"):
            with urllib.request.urlopen(process.url("evil", path), timeout=30) as response:
                assert response.status == 200
    log = process.log_text()
    assert len(log.encode()) < 200_000, f"{len(log)} characters of log for two requests"
    lines = log.splitlines()
    stopped = [
        line for line in lines if re.match(r"^\S+ \S+ INFO fazt\.kernel: fazt stopped$", line)
    ]
    assert len(stopped) == 1  # the real one, at SIGTERM
    (hello,) = [line for line in lines if "fazt.app.evil: hi" in line]
    assert hello.endswith(f"hi\\n{forged}")
    assert sum("console output truncated" in line for line in lines) == 1

"""How the kernel gets its JS engine: the config's sandbox limits, or a 503 stand-in."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from fazt.config import ConfigError, KernelConfig
from fazt.js_bridge import JsEngine
from fazt.kernel.engine_factory import UnavailableEngine, create_engine
from tests.harness import make_app, running_kernel
from tests.kernel.util import fetch, json_body


def test_the_sandbox_section_reaches_the_engine() -> None:
    config = KernelConfig(
        {
            "sandbox": {
                "timeLimitSeconds": 1.5,
                "wallTimeLimitSeconds": 4,
                "memoryLimitMB": 32,
                "threads": 4,
                "maxConcurrentPerApp": 3,
                "maxQueuedPerApp": 7,
                "consoleLimitKB": 2,
            }
        }
    )
    engine = create_engine(config)
    try:
        assert isinstance(engine, JsEngine)
        assert engine.limits.time_limit_seconds == 1.5
        assert engine.limits.wall_time_limit_seconds == 4.0
        assert engine.limits.memory_limit_mb == 32
        assert engine.limits.console_limit_bytes == 2048
        assert engine._scheduler.max_running_per_app == 3
        assert engine._scheduler.max_queued_per_app == 7
    finally:
        engine.close()


def test_defaults() -> None:
    config = KernelConfig({})
    assert config.sandbox_wall_time_limit_seconds == 10.0
    assert config.sandbox_max_concurrent_per_app == 1  # half of the default 2 threads
    assert KernelConfig({"sandbox": {"threads": 6}}).sandbox_max_concurrent_per_app == 3
    assert config.sandbox_max_queued_per_app == 100
    assert config.sandbox_console_limit_bytes == 64 * 1024
    assert config.http_max_body_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("sandbox", "wallTimeLimitSeconds", 0),
        ("sandbox", "maxConcurrentPerApp", 0),
        ("sandbox", "maxQueuedPerApp", "10"),
        ("sandbox", "consoleLimitKB", 0),
        ("sandbox", "consoleLimitKb", 64),
        ("http", "maxBodyKB", 0),
        ("http", "maxBodyKB", 1.5),
    ],
)
def test_bad_values_are_refused_naming_the_key(section: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"\$\.{section}"):
        KernelConfig({section: {key: value}})


@pytest.mark.gen_test(timeout=10)
async def test_without_the_bridge_api_answers_503_and_the_rest_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A None entry makes the import fail, as a missing quickjs wheel would.
    monkeypatch.setitem(sys.modules, "fazt.js_bridge.engine", None)
    apps = tmp_path / "apps"
    make_app(apps, "chat", files={"index.html": "home", "api/x.js": "module.exports = () => 1;"})
    caplog.set_level(logging.ERROR, logger="fazt.kernel")
    async with running_kernel(apps, data_dir=tmp_path / "d", config={"plugins": []}) as k:
        assert isinstance(k.kernel.js, UnavailableEngine)
        assert (await fetch(k.url("chat"))).body == b"home"
        api = await fetch(k.url("chat", "/api/x"))
        assert api.code == 503
        assert json_body(api)["error"].startswith("JS engine not available: ")
    (line,) = [r.getMessage() for r in caplog.records if "cannot be imported" in r.getMessage()]
    assert line.endswith("/api/... calls will answer 503")

"""The plugin's kernel-config section and app.json parts are validated by the kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fazt.config import ConfigError
from fazt.kernel.kernel import Kernel
from fazt.realtime.channels import MAX_CHANNEL_LENGTH
from fazt.realtime.plugin import RealtimePlugin
from tests.harness import make_app, running_kernel


@pytest.mark.parametrize(
    "section",
    [
        {"pingIntervalSeconds": 0},
        {"pongTimeoutSeconds": -1},
        {"outgoingQueueSize": 0},
        {"outgoingQueueSize": 1.5},
        {"shutdownGraceSeconds": "5"},
        {"limits": {"maxConnectionsTotal": 0}},
        {"limits": {"maxConnectionsTotl": 10}},
        {"pingInterval": 30},
        {"history": {"maxSize": 0}},
        {"history": {"maxSize": 10001}},
        {"history": {"maxTtlSeconds": 86401}},
        {"history": {"maxTtlSeconds": 1.5}},
        {"history": {"size": 10}},
    ],
)
@pytest.mark.gen_test
async def test_bad_realtime_config_is_refused(tmp_path: Path, section: dict[str, Any]) -> None:
    make_app(tmp_path / "apps", "chat")
    kernel = Kernel(tmp_path / "apps", data_dir=tmp_path / "data", config={"realtime": section})
    with pytest.raises(ConfigError):
        await kernel.start(port=0)
    await kernel.stop()


@pytest.mark.parametrize(
    "manifest",
    [
        {"realtime": {"channels": {"chat": {"auth": "yes"}}}},
        {"realtime": {"channels": {"chat": {"role": 5}}}},
        {"realtime": {"channels": {"chat": {"publish": True, "extra": 1}}}},
        {"realtime": {"channels": {"bad name": {}}}},
        {"realtime": {"channelz": {}}},
        {"limits": {"realtime": {"maxMessageSizeKB": -1}}},
        {"limits": {"realtime": {"maxConnections": 5}}},
        {"realtime": {"channels": {"c": {"history": {"size": 0, "ttlSeconds": 10}}}}},
        {"realtime": {"channels": {"c": {"history": {"size": 10001, "ttlSeconds": 10}}}}},
        {"realtime": {"channels": {"c": {"history": {"size": 10, "ttlSeconds": 0}}}}},
        {"realtime": {"channels": {"c": {"history": {"size": 10, "ttlSeconds": 86401}}}}},
        {"realtime": {"channels": {"c": {"history": {"size": 10}}}}},
        {"realtime": {"channels": {"c": {"history": {"size": "10", "ttlSeconds": 5}}}}},
        {"realtime": {"channels": {"c": {"history": {"size": 1, "ttlSeconds": 5, "x": 1}}}}},
        {"realtime": {"channels": {"c": {"history": True}}}},
    ],
)
@pytest.mark.gen_test
async def test_bad_realtime_manifest_keeps_only_that_app_out(
    tmp_path: Path, manifest: dict[str, Any]
) -> None:
    make_app(tmp_path / "apps", "broken", manifest)
    make_app(tmp_path / "apps", "fine", {"realtime": {"channels": {"talk-*": {"publish": True}}}})
    async with running_kernel(tmp_path / "apps", data_dir=tmp_path / "data") as running:
        assert running.kernel.apps.by_slug("broken") is None
        assert running.kernel.apps.by_slug("fine") is not None
        assert len(running.kernel.manifest_errors) == 1


def test_defaults_and_schema_parts() -> None:
    plugin = RealtimePlugin()
    schema = plugin.config_schema()
    assert set(schema["properties"]) >= {
        "pingIntervalSeconds",
        "pongTimeoutSeconds",
        "shutdownGraceSeconds",
        "outgoingQueueSize",
        "limits",
    }
    assert set(plugin.manifest_properties()) == {"realtime"}
    limits = plugin.manifest_limits_schema()
    assert len(limits["properties"]) == 8
    assert plugin.name == "realtime"
    assert [route.path for route in plugin.routes()] == ["/_ws"]
    assert set(plugin.js_namespace()) == {
        "broadcast",
        "broadcastAll",
        "subscribers",
        "count",
        "kick",
        "history",
    }
    with pytest.raises(RuntimeError, match="not started"):
        _ = plugin.hub


def test_rule_patterns_are_as_long_as_a_channel_name_may_be() -> None:
    names = RealtimePlugin().manifest_properties()["realtime"]["properties"]["channels"]
    assert names["propertyNames"]["maxLength"] == MAX_CHANNEL_LENGTH

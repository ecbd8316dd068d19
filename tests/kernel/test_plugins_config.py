"""Plugins (routes, assets, JS namespaces, hooks) and config validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fazt.config import ConfigError, KernelConfig
from fazt.contracts.host_calls import HostCallContext
from fazt.kernel.kernel import Kernel, load_plugin
from fazt.kernel.plugin import PluginRoute
from tests.harness import make_app, running_kernel
from tests.kernel.sample_plugin import EchoRouteHandler, RecordingEngine, RecordingPlugin
from tests.kernel.util import fetch, json_body


@pytest.mark.gen_test(timeout=10)
async def test_plugin_route_asset_namespace_and_order(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat", files={"index.html": "home"})
    events: list[str] = []
    first, second = RecordingPlugin("first", events), RecordingPlugin("second", events)
    asset = tmp_path / "first.js"
    asset.write_text("console.log('asset')")
    first.asset_path = asset
    engine = RecordingEngine()
    async with running_kernel(
        tmp_path / "apps",
        data_dir=tmp_path / "d",
        config={"first": {"level": 3}},
        plugins=[first, second],
        js_engine=engine,
    ) as k:
        assert k.kernel.plugin("first") is first
        with pytest.raises(KeyError):
            k.kernel.plugin("nope")
        assert first.settings == {"level": 3} and second.settings == {}
        assert events == [
            "first.configure",
            "second.configure",
            "first.start",
            "second.start",
        ]
        route = await fetch(k.url("chat", "/_first"))
        assert json_body(route) == {"app": "chat", "greeting": "hello"}
        # Reserved even for an unknown app: the plugin answers, with app=None.
        unknown = await fetch(k.url("nosuch", "/_second"))
        assert json_body(unknown) == {"app": None, "greeting": "hello"}
        by_host = await fetch(f"{k.base_url}/_first", headers={"Host": "chat.localhost"})
        assert json_body(by_host)["app"] == "chat"
        served = await fetch(k.url("chat", "/_fazt/first.js"))
        assert served.code == 200 and served.body == b"console.log('asset')"
        assert served.headers["Content-Type"].startswith(
            ("application/javascript", "text/javascript")
        )
        head = await fetch(k.url("chat", "/_fazt/first.js"), method="HEAD")
        assert head.code == 200 and head.body == b""
        missing = await fetch(k.url("chat", "/_fazt/nope.js"))
        assert missing.code == 404 and json_body(missing) == {"error": "no such asset"}
        assert set(engine.namespaces) == {"auth", "first", "second"}
        ping = engine.namespaces["first"]["ping"]
        chat = k.kernel.apps.by_slug("chat")
        assert chat is not None
        assert await ping(HostCallContext(app=chat), [1]) == {
            "pong": [1],
            "app": "chat",
        }
    assert events[-2:] == ["second.stop", "first.stop"]


@pytest.mark.gen_test(timeout=10)
async def test_failed_plugin_start_stops_the_started_ones(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    events: list[str] = []
    good, bad = RecordingPlugin("good", events), RecordingPlugin("bad", events)
    bad.fail_start = True
    kernel = Kernel(tmp_path / "apps", data_dir=tmp_path / "d", config={"plugins": []})
    kernel.use(good).use(bad)
    with pytest.raises(RuntimeError, match="bad refuses to start"):
        await kernel.start(port=0)
    await kernel.stop()
    assert events == ["good.configure", "bad.configure", "good.start", "bad.start", "good.stop"]


def test_use_refuses_bad_plugins(tmp_path: Path) -> None:
    kernel = Kernel(tmp_path / "apps", data_dir=tmp_path / "d", config={"plugins": []})
    kernel.use(RecordingPlugin("one"))
    with pytest.raises(ValueError, match="already enabled"):
        kernel.use(RecordingPlugin("one"))
    with pytest.raises(ValueError, match="reserved"):
        kernel.use(RecordingPlugin("auth"))
    with pytest.raises(ValueError, match="identifier"):
        kernel.use(RecordingPlugin(""))
    kernel.js.close()


def test_load_plugin_errors() -> None:
    with pytest.raises(ConfigError, match="plugin 'nosuch' is not installed"):
        load_plugin("nosuch")
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_plugin("tests.kernel.nosuchmodule:Plugin")
    with pytest.raises(ConfigError, match="is not a fazt Plugin"):
        load_plugin("tests.kernel.sample_plugin:NotAPlugin")
    plugin = load_plugin("tests.kernel.sample_plugin:RecordingPlugin")
    assert isinstance(plugin, RecordingPlugin)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"prot": 8080}, None),  # unknown key: only refused once plugins are known
        ({"port": "8080"}, "$.port: '8080' is not of type 'integer'"),
        ({"port": 70000}, "$.port: 70000 is greater than the maximum of 65535"),
        ({"workers": 0}, "$.workers: 0 is less than the minimum of 1"),
        ({"plugins": "realtime"}, "$.plugins: 'realtime' is not of type 'array'"),
        ({"redis": "http://x"}, "$.redis: 'http://x' does not match"),
        ({"jwt": {"secret": "short"}}, "$.jwt.secret: 'short' is too short"),
        ({"jwt": {"secrets": "x"}}, "$.jwt: Additional properties are not allowed"),
        ({"sandbox": {"threads": 0}}, "$.sandbox.threads: 0 is less than the minimum of 1"),
    ],
)
def test_kernel_keys_are_checked_on_load(config: dict[str, object], message: str | None) -> None:
    if message is None:
        KernelConfig(config)
        return
    with pytest.raises(ConfigError) as raised:
        KernelConfig(config, source="fazt.json")
    assert str(raised.value).startswith("fazt.json: ")
    assert message in str(raised.value)


@pytest.mark.gen_test(timeout=10)
async def test_unknown_keys_and_bad_plugin_sections_refused_at_start(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    for config, message in [
        ({"prot": 1}, "Additional properties are not allowed ('prot' was unexpected)"),
        ({"recording": {"level": "high"}}, "$.recording.level: 'high' is not of type 'integer'"),
        ({"recording": {"nope": 1}}, "$.recording: Additional properties"),
    ]:
        kernel = Kernel(
            tmp_path / "apps", data_dir=tmp_path / "d", config={**config, "plugins": []}
        )
        kernel.use(RecordingPlugin())
        with pytest.raises(ConfigError, match=None) as raised:
            await kernel.start(port=0)
        assert message in str(raised.value)
        await kernel.stop()


def test_config_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "fazt.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"fazt.json: invalid JSON: .* line 1 column 2"):
        KernelConfig.from_file(path)
    path.write_text("[]")
    with pytest.raises(ConfigError, match=r"must be a JSON object"):
        KernelConfig.from_file(path)
    with pytest.raises(ConfigError, match="cannot read config"):
        KernelConfig.from_file(tmp_path / "missing.json")
    path.write_text(json.dumps({"port": 9000, "jwt": {"secret": "x" * 32}}))
    config = KernelConfig.from_file(path).with_overrides({"port": 9100, "domain": None})
    assert config.port == 9100 and config.domain == "localhost"
    assert config.jwt == {"secret": "x" * 32}
    assert config.plugins == ["realtime"] and config.redis_url is None and config.workers == 1


class _RoutePlugin(RecordingPlugin):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self._path = path

    def routes(self) -> list[PluginRoute]:
        return [PluginRoute(self._path, EchoRouteHandler, {"greeting": "x"})]


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["/ws"], "must start with '/_'"),
        (["/_fazt/x"], "not be under /_fazt or /_app"),
        (["/_app"], "not be under /_fazt or /_app"),
        (["/_ws", "/_ws"], "route '/_ws' is taken"),
    ],
)
@pytest.mark.gen_test(timeout=10)
async def test_bad_plugin_routes_refused_at_start(
    tmp_path: Path, paths: list[str], message: str
) -> None:
    kernel = Kernel(tmp_path / "apps", data_dir=tmp_path / "d", config={"plugins": []})
    for index, path in enumerate(paths):
        kernel.use(_RoutePlugin(f"p{index}", path))
    with pytest.raises(ValueError, match=message):
        await kernel.start(port=0)
    await kernel.stop()

"""The kernel's own hosts: the app index at ``/``, ``/_fazt/`` assets, and ``/_app/<slug>/``
answering only there (never under another app's origin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fazt.kernel.hosts import KernelHosts, host_name, host_port, host_slug
from tests.harness import make_app, running_kernel
from tests.kernel.util import fetch, json_body

EVIL_SW = "self.addEventListener('fetch', () => {});"


def build_apps(tmp_path: Path) -> Path:
    apps = tmp_path / "apps"
    make_app(apps, "chat", {"name": "Chat <room>"}, {"index.html": "<h1>chat</h1>"})
    make_app(
        apps,
        "evil",
        files={
            "index.html": "<h1>evil</h1>",
            "sw.js": EVIL_SW,
            "api/sw.js": f"module.exports = () => ({{body: {EVIL_SW!r}}});",
        },
    )
    make_app(apps, "broken", {"slug": "Not A Slug"})
    return apps


@pytest.mark.parametrize(
    ("host", "name", "port"),
    [
        ("chat.localhost:8080", "chat.localhost", 8080),
        ("CHAT.localhost.", "chat.localhost", None),
        ("127.0.0.1:9", "127.0.0.1", 9),
        ("[::1]:8080", "[::1]", 8080),
        ("[::1]", "[::1]", None),
        ("localhost:notaport", "localhost", None),
    ],
)
def test_host_name_and_port(host: str, name: str, port: int | None) -> None:
    assert host_name(host) == name
    assert host_port(host) == port


def test_kernel_hosts_and_app_hosts_do_not_overlap() -> None:
    hosts = KernelHosts("apps.example.org", ["fazt.internal"])
    for own in ("apps.example.org", "localhost:8080", "127.0.0.1", "[::1]:1", "10.0.0.7:80"):
        assert own in hosts, own
        assert host_slug(own, "apps.example.org") is None
    assert "FAZT.internal:8080" in hosts
    for app_host in ("chat.apps.example.org", "chat.localhost", "example.com", "1.2.3.4.nip.io"):
        assert app_host not in hosts, app_host
    assert host_slug("chat.apps.example.org:8080", "apps.example.org") == "chat"


@pytest.mark.gen_test(timeout=10)
async def test_index_page_lists_apps_in_both_styles(tmp_path: Path) -> None:
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}
    ) as k:
        for host in (f"127.0.0.1:{k.port}", f"localhost:{k.port}"):
            page = await fetch(f"{k.base_url}/", headers={"Host": host})
            assert page.code == 200, page.body
            assert page.headers["Content-Type"] == "text/html; charset=utf-8"
            html = page.body.decode()
            for slug in ("chat", "evil"):
                assert f'href="http://{slug}.localhost:{k.port}/"' in html
                assert f'href="/_app/{slug}/"' in html
            assert "Chat &lt;room&gt;" in html  # names are escaped
            # The refused app is named by its folder, and no path leaks.
            assert "broken" in html and "fazt check" in html
            assert str(tmp_path) not in html
        head = await fetch(f"{k.base_url}/", method="HEAD")
        assert head.code == 200 and head.body == b""


@pytest.mark.gen_test(timeout=10)
async def test_other_kernel_paths_answer_404_with_the_port(tmp_path: Path) -> None:
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}
    ) as k:
        missing = await fetch(f"{k.base_url}/nope")
        assert missing.code == 404
        message = json_body(missing)["error"]
        assert f"http://127.0.0.1:{k.port}/" in message
        assert f"http://<slug>.localhost:{k.port}/" in message
        assert f"http://127.0.0.1:{k.port}/_app/<slug>/" in message
        stranger = await fetch(f"{k.base_url}/", headers={"Host": "example.com"})
        assert stranger.code == 404 and "no app here" in json_body(stranger)["error"]


@pytest.mark.gen_test(timeout=20)
async def test_fazt_assets_are_served_on_the_kernel_host(tmp_path: Path) -> None:
    apps = build_apps(tmp_path)
    async with running_kernel(apps, data_dir=tmp_path / "d") as k:  # the realtime plugin
        absolute = await fetch(f"{k.base_url}/_fazt/realtime.min.js")
        assert absolute.code == 200 and b"FaztRealtime" in absolute.body
        in_app = await fetch(k.url("chat", "/_fazt/realtime.min.js"))
        on_host = await fetch(
            f"{k.base_url}/_fazt/realtime.min.js", headers={"Host": "chat.localhost"}
        )
        assert in_app.body == on_host.body == absolute.body
        missing = await fetch(f"{k.base_url}/_fazt/nope.js")
        assert missing.code == 404 and json_body(missing) == {"error": "no such asset"}


@pytest.mark.gen_test(timeout=10)
async def test_app_path_route_never_answers_on_an_app_host(tmp_path: Path) -> None:
    """``/_app/evil/`` under ``chat.localhost`` would run evil's files with chat's origin."""
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}
    ) as k:
        on_kernel_host = await fetch(k.url("evil", "/sw.js"))
        assert on_kernel_host.code == 200 and on_kernel_host.body.decode() == EVIL_SW
        for path in ("/_app/evil/api/sw", "/_app/evil/sw.js", "/_app/evil/", "/_app/evil"):
            for host in ("chat.localhost", f"chat.localhost:{k.port}", "evil.localhost"):
                response = await fetch(f"{k.base_url}{path}", headers={"Host": host})
                assert response.code == 404, (path, host, response.body)
                assert EVIL_SW.encode() not in response.body
                assert "only on the kernel's own host" in json_body(response)["error"]
            stranger = await fetch(f"{k.base_url}{path}", headers={"Host": "example.com"})
            assert stranger.code == 404
        # An app host still serves its own /_app/... path as a plain static path.
        own = await fetch(f"{k.base_url}/", headers={"Host": "chat.localhost"})
        assert own.code == 200 and own.body == b"<h1>chat</h1>"


@pytest.mark.gen_test(timeout=10)
async def test_configured_kernel_hosts(tmp_path: Path) -> None:
    config = {"plugins": [], "kernelHosts": ["fazt.internal"]}
    async with running_kernel(build_apps(tmp_path), data_dir=tmp_path / "d", config=config) as k:
        routed = await fetch(k.url("chat"), headers={"Host": "fazt.internal:8443"})
        assert routed.code == 200 and routed.body == b"<h1>chat</h1>"
        index = await fetch(f"{k.base_url}/", headers={"Host": "fazt.internal"})
        assert index.code == 200 and b'href="http://chat.localhost/"' in index.body
        ipv6 = await fetch(k.url("chat"), headers={"Host": f"[::1]:{k.port}"})
        assert ipv6.code == 200

"""Routing and static files over real sockets: apps by Host and /_app, reserved
paths, never-served files and traversal attempts (encoded forms and symlinks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness import make_app, running_kernel
from tests.kernel.util import fetch, json_body

SECRET = "TOP-SECRET-OUTSIDE"


def build_apps(tmp_path: Path) -> Path:
    apps = tmp_path / "apps"
    make_app(
        apps,
        "chat",
        {"name": "Chat"},
        {
            "index.html": "<h1>chat home</h1>",
            "style.css": "body{}",
            "docs/index.html": "<h1>docs</h1>",
            "docs/page.txt": "a page",
            "private/notes.txt": "private notes",
            "api/hello.js": "module.exports = () => ({json: 1})",
            ".env": "TOKEN=abc",
            ".git/config": "[core]",
        },
    )
    make_app(apps, "poll", {"name": "Poll"}, {"index.html": "<h1>poll home</h1>"})
    (tmp_path / "outside.txt").write_text(SECRET)
    os.symlink(tmp_path / "outside.txt", apps / "chat" / "link-out.txt")
    os.symlink(tmp_path, apps / "chat" / "dir-out")
    os.symlink(apps / "chat" / "private" / "notes.txt", apps / "chat" / "link-private.txt")
    os.symlink(apps / "chat" / "docs" / "page.txt", apps / "chat" / "link-ok.txt")
    return apps


@pytest.mark.gen_test(timeout=10)
async def test_static_files_and_index(tmp_path: Path) -> None:
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}
    ) as k:
        home = await fetch(k.url("chat"))
        assert home.code == 200 and home.body == b"<h1>chat home</h1>"
        assert home.headers["Content-Type"].startswith("text/html")
        css = await fetch(k.url("chat", "/style.css"))
        assert css.code == 200 and css.headers["Content-Type"].startswith("text/css")
        docs = await fetch(k.url("chat", "/docs/"))
        assert docs.code == 200 and docs.body == b"<h1>docs</h1>"
        # A folder without its slash redirects, so relative links in it work.
        folder = await fetch(k.url("chat", "/docs"))
        assert folder.code in (301, 302) and folder.headers["Location"].endswith("/docs/")
        bare = await fetch(f"{k.base_url}/_app/chat?x=1")
        assert bare.code == 302 and bare.headers["Location"] == "/_app/chat/?x=1"
        head = await fetch(k.url("poll"), method="HEAD")
        assert head.code == 200 and head.body == b""
        inside_link = await fetch(k.url("chat", "/link-ok.txt"))
        assert inside_link.code == 200 and inside_link.body == b"a page"
        missing = await fetch(k.url("chat", "/nope.html"))
        assert missing.code == 404 and json_body(missing) == {"error": "not found"}


NEVER_SERVED = [
    "/app.json",
    "/api/hello.js",
    "/api/",
    "/private/notes.txt",
    "/private/",
    "/.env",
    "/.git/config",
    "/%2eenv",
    "/docs/../app.json",
    "/docs/%2e%2e/app.json",
    "/docs/%2E%2E/private/notes.txt",
    "/docs%2f..%2fapp.json",
    "/docs%2F%2E%2E%2Fprivate%2Fnotes.txt",
    "/..%2f..%2foutside.txt",
    "/%2e%2e/%2e%2e/outside.txt",
    "/%252e%252e/app.json",
    "/..\\app.json",
    "/docs/..%5capp.json",
    "/%00/index.html",
    "/link-out.txt",
    "/dir-out/outside.txt",
    "/link-private.txt",
    "/PRIVATE/notes.txt",
]


@pytest.mark.gen_test(timeout=20)
async def test_never_served_and_traversal(tmp_path: Path) -> None:
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}
    ) as k:
        for path in NEVER_SERVED:
            response = await fetch(k.url("chat", path))
            assert response.code in (400, 404), (path, response.code, response.body)
            assert SECRET.encode() not in response.body, path
            assert b"private notes" not in response.body, path
            assert b"TOKEN" not in response.body, path
            assert b'"name"' not in response.body, path
        # Raw '..' the client does not normalise must not climb out of /_app/chat.
        escape = await fetch(f"{k.base_url}/_app/chat/../poll/")
        assert b"poll home" not in escape.body
        assert escape.code in (400, 404)


@pytest.mark.gen_test(timeout=10)
async def test_unknown_app_and_unknown_host(tmp_path: Path) -> None:
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}
    ) as k:
        unknown = await fetch(k.url("nosuch"))
        assert unknown.code == 404
        assert json_body(unknown) == {"error": "unknown app 'nosuch'"}
        unknown_api = await fetch(k.url("nosuch", "/api/hello"))
        assert unknown_api.code == 404 and "unknown app" in json_body(unknown_api)["error"]
        elsewhere = await fetch(f"{k.base_url}/elsewhere")
        assert elsewhere.code == 404 and "no app here" in json_body(elsewhere)["error"]
        posted = await fetch(k.url("nosuch"), method="POST", body="x")
        assert posted.code == 404


@pytest.mark.gen_test(timeout=10)
async def test_host_header_routing(tmp_path: Path) -> None:
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}
    ) as k:
        url = f"{k.base_url}/"
        chat = await fetch(url, headers={"Host": f"chat.localhost:{k.port}"})
        assert chat.code == 200 and chat.body == b"<h1>chat home</h1>"
        poll = await fetch(url, headers={"Host": "POLL.localhost"})
        assert poll.code == 200 and poll.body == b"<h1>poll home</h1>"
        docs = await fetch(f"{k.base_url}/docs/", headers={"Host": "chat.localhost"})
        assert docs.body == b"<h1>docs</h1>"
        secret = await fetch(f"{k.base_url}/app.json", headers={"Host": "chat.localhost"})
        assert secret.code == 404
        nested = await fetch(url, headers={"Host": "a.chat.localhost"})
        assert nested.code == 404 and "no app here" in json_body(nested)["error"]
        other_domain = await fetch(url, headers={"Host": "chat.example.com"})
        assert other_domain.code == 404
        unknown = await fetch(url, headers={"Host": "nosuch.localhost"})
        assert json_body(unknown) == {"error": "unknown app 'nosuch'"}
        # /_app/<slug>/ answers on the kernel's own hosts only (test_kernel_hosts.py).
        prefixed = await fetch(k.url("poll"), headers={"Host": "chat.localhost"})
        assert prefixed.code == 404
        kernel_host = await fetch(k.url("poll"), headers={"Host": f"localhost:{k.port}"})
        assert kernel_host.body == b"<h1>poll home</h1>"


@pytest.mark.gen_test(timeout=10)
async def test_custom_domain(tmp_path: Path) -> None:
    async with running_kernel(
        build_apps(tmp_path),
        data_dir=tmp_path / "d",
        config={"plugins": []},
        domain="apps.example.org",
    ) as k:
        hit = await fetch(f"{k.base_url}/", headers={"Host": "chat.apps.example.org"})
        assert hit.body == b"<h1>chat home</h1>"
        miss = await fetch(f"{k.base_url}/", headers={"Host": "chat.localhost"})
        assert miss.code == 404


@pytest.mark.gen_test(timeout=10)
async def test_edited_file_gets_a_new_etag(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    page = make_app(apps, "chat", files={"page.txt": "one"}) / "page.txt"
    async with running_kernel(apps, data_dir=tmp_path / "d", config={"plugins": []}) as k:
        first = await fetch(k.url("chat", "/page.txt"))
        etag = first.headers["Etag"]
        cached = await fetch(k.url("chat", "/page.txt"), headers={"If-None-Match": etag})
        assert cached.code == 304
        page.write_text("two, longer")
        os.utime(page, ns=(page.stat().st_atime_ns, page.stat().st_mtime_ns + 10**9))
        fresh = await fetch(k.url("chat", "/page.txt"), headers={"If-None-Match": etag})
        assert fresh.code == 200 and fresh.body == b"two, longer"
        assert fresh.headers["Etag"] != etag

"""The /api glue: handler lookup, the ``req`` dict, tokens, and the engine's answer.

The engine here is a recording double (the QuickJS bridge has its own tests);
these tests check what the kernel hands to it and how it writes the answer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fazt.contracts.js_engine import JsResponse
from fazt.kernel.tokens import TokenService, load_secret
from tests.harness import make_app, running_kernel
from tests.kernel.sample_plugin import RecordingEngine
from tests.kernel.util import fetch, json_body

HANDLER = "module.exports = async (req) => ({json: req})"


def build_apps(tmp_path: Path) -> Path:
    apps = tmp_path / "apps"
    make_app(
        apps,
        "chat",
        {},
        {
            "api/hello.js": HANDLER,
            "api/rooms/list.js": HANDLER,
            "api/admin/index.js": HANDLER,
            "api/lib/.hidden.js": HANDLER,
            "api/_lib/helper.js": HANDLER,
            "api/_private.js": HANDLER,
        },
    )
    make_app(apps, "poll", {}, {"api/vote.js": HANDLER})
    (tmp_path / "outside.js").write_text(HANDLER)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.js").write_text(HANDLER)
    os.symlink(tmp_path / "outside.js", apps / "chat" / "api" / "evil.js")
    os.symlink(tmp_path / "outside", apps / "chat" / "api" / "evildir")
    os.symlink(apps / "chat" / "api" / "hello.js", apps / "chat" / "api" / "alias.js")
    os.symlink(apps / "chat" / "api" / "rooms", apps / "chat" / "api" / "places")
    return apps


@pytest.mark.gen_test(timeout=10)
async def test_request_dict(tmp_path: Path) -> None:
    engine = RecordingEngine()
    apps = build_apps(tmp_path)
    async with running_kernel(
        apps, data_dir=tmp_path / "d", config={"plugins": []}, js_engine=engine
    ) as k:
        response = await fetch(
            k.url("chat", "/api/hello?a=1&a=2&b=%C3%A9"),
            method="POST",
            body=json.dumps({"text": "hi"}),
            headers={"Content-Type": "application/json", "X-Custom": "Yes"},
        )
        assert response.code == 200
        answer = json_body(response)
        assert answer["handler"] == "hello.js"
        request = answer["request"]
        assert request["method"] == "POST"
        assert request["path"] == "/api/hello"
        assert request["query"] == {"a": "1", "b": "é"}
        assert request["headers"]["x-custom"] == "Yes"
        assert request["headers"]["content-type"] == "application/json"
        assert answer["body"] == '{"text": "hi"}'  # raw bytes: the engine decodes and parses
        assert "body" not in request and "json" not in request
        assert request["user"] is None
        chat = k.kernel.apps.by_slug("chat")
        assert chat is not None
        assert request["app"] == {"slug": "chat", "uuid": chat.uuid}
        call = engine.calls[0]
        assert call.context.app == chat
        assert call.handler_file == chat.root / "api" / "hello.js"
        assert call.api_root == chat.root / "api"
        assert call.body == b'{"text": "hi"}'

        not_json = await fetch(k.url("chat", "/api/hello"), method="PUT", body="plain {")
        assert json_body(not_json)["request"]["method"] == "PUT"
        assert engine.calls[-1].body == b"plain {"


@pytest.mark.gen_test(timeout=10)
async def test_handler_lookup(tmp_path: Path) -> None:
    engine = RecordingEngine()
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}, js_engine=engine
    ) as k:
        nested = await fetch(k.url("chat", "/api/rooms/list"))
        assert json_body(nested)["handler"] == "list.js"
        index = await fetch(k.url("chat", "/api/admin"))
        assert json_body(index)["handler"] == "index.js"
        for path in [
            "/api/nope",
            "/api/hello.js",
            "/api/rooms",
            "/api",
            "/api/",
            "/api/../api/hello",
            "/api/%2e%2e/app",
            "/api/rooms%2f..%2fhello",
            "/api/lib/.hidden",
            "/api/_lib/helper",  # "_" folders hold require()-only modules
            "/api/_private",
            "/api/vote",  # poll's handler, not chat's
            "/api/evil",  # symlink to a file outside api/
            "/api/evildir/x",  # symlinked folder outside api/
        ]:
            response = await fetch(k.url("chat", path))
            assert response.code == 404, path
            assert json_body(response)["error"].startswith("no handler for /api"), path
        missing = await fetch(k.url("chat", "/api/nope"))
        assert json_body(missing) == {"error": "no handler for /api/nope"}
        other = await fetch(k.url("poll", "/api/vote"))
        assert json_body(other)["handler"] == "vote.js"
        # Symlinks that stay inside api/ are fine.
        alias = await fetch(k.url("chat", "/api/alias"))
        assert alias.code == 200 and json_body(alias)["handler"] == "alias.js"
        places = await fetch(k.url("chat", "/api/places/list"))
        assert places.code == 200 and json_body(places)["handler"] == "list.js"
        # Only rooms/list, admin, vote, alias and places/list reached the engine.
        assert len(engine.calls) == 5


@pytest.mark.gen_test(timeout=10)
async def test_tokens(tmp_path: Path) -> None:
    engine = RecordingEngine()
    data = tmp_path / "d"
    async with running_kernel(
        build_apps(tmp_path), data_dir=data, config={"plugins": []}, js_engine=engine
    ) as k:
        chat = k.kernel.apps.by_slug("chat")
        assert chat is not None
        tokens = TokenService(load_secret(None, data))
        token = tokens.issue("alice", name="Alice", role="admin", app=chat.uuid)
        by_header = await fetch(
            k.url("chat", "/api/hello"), headers={"Authorization": f"Bearer {token}"}
        )
        user = json_body(by_header)["request"]["user"]
        assert user["sub"] == "alice" and user["name"] == "Alice" and user["role"] == "admin"
        by_query = await fetch(k.url("chat", f"/api/hello?token={token}"))
        assert json_body(by_query)["request"]["user"]["sub"] == "alice"

        calls = len(engine.calls)
        other_app = await fetch(k.url("poll", f"/api/vote?token={token}"))
        assert other_app.code == 401
        assert json_body(other_app) == {"error": "invalid token: token is for another app"}
        garbage = await fetch(k.url("chat", "/api/hello"), headers={"Authorization": "Bearer x.y"})
        assert garbage.code == 401 and "invalid token" in json_body(garbage)["error"]
        expired = tokens.issue("bob", ttl_seconds=-10)
        old = await fetch(k.url("chat", f"/api/hello?token={expired}"))
        assert json_body(old) == {"error": "invalid token: token expired"}
        forged = TokenService(b"another-secret-of-enough-length-123").issue("eve")
        bad_sig = await fetch(k.url("chat", f"/api/hello?token={forged}"))
        assert json_body(bad_sig) == {"error": "invalid token: bad signature"}
        assert len(engine.calls) == calls  # refused before any JS ran


@pytest.mark.gen_test(timeout=10)
async def test_engine_answers_and_failures(tmp_path: Path) -> None:
    engine = RecordingEngine()
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}, js_engine=engine
    ) as k:
        # The engine's response is final: the kernel writes it as it is.
        engine.response = JsResponse(201, {"X-Made": "yes", "Content-Type": "text/x"}, b"made")
        made = await fetch(k.url("chat", "/api/hello"), method="POST", body="")
        assert made.code == 201 and made.body == b"made" and made.headers["X-Made"] == "yes"
        assert made.headers["Content-Type"] == "text/x"

        engine.response = JsResponse(204, {}, b"")
        empty = await fetch(k.url("chat", "/api/hello"))
        assert empty.code == 204 and empty.body == b""

        # An engine that breaks the contract (a header HTTP cannot carry) gets a 500.
        engine.response = JsResponse(200, {"X-Bad": "a\nb"}, b"")
        weird = await fetch(k.url("chat", "/api/hello"))
        assert weird.code == 500 and json_body(weird) == {"error": "internal server error"}

        engine.response = None
        engine.raise_error = RuntimeError("bridge exploded")
        broken = await fetch(k.url("chat", "/api/hello"))
        assert broken.code == 500
        assert json_body(broken) == {"error": "internal server error"}
        assert b"exploded" not in broken.body and b"Traceback" not in broken.body

        engine.raise_error = None
        fine = await fetch(k.url("chat", "/api/hello"))
        assert fine.code == 200
    assert engine.closed


@pytest.mark.gen_test(timeout=10)
async def test_auth_namespace_registered(tmp_path: Path) -> None:
    engine = RecordingEngine()
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}, js_engine=engine
    ):
        assert set(engine.namespaces["auth"]) == {"issueToken"}


@pytest.mark.gen_test(timeout=10)
async def test_handler_files_added_or_removed_are_seen_by_the_next_request(
    tmp_path: Path,
) -> None:
    # Handler lookups are shared within one IOLoop iteration only (handlers._memo).
    engine = RecordingEngine()
    apps = build_apps(tmp_path)
    async with running_kernel(
        apps, data_dir=tmp_path / "d", config={"plugins": []}, js_engine=engine
    ) as k:
        assert (await fetch(k.url("chat", "/api/fresh"))).code == 404
        fresh = apps / "chat" / "api" / "fresh.js"
        fresh.write_text(HANDLER)
        assert (await fetch(k.url("chat", "/api/fresh"))).code == 200
        assert engine.calls[-1].handler_file.name == "fresh.js"
        fresh.unlink()
        assert (await fetch(k.url("chat", "/api/fresh"))).code == 404


@pytest.mark.gen_test(timeout=10)
async def test_authorization_without_a_bearer_token_is_anonymous(tmp_path: Path) -> None:
    engine = RecordingEngine()
    async with running_kernel(
        build_apps(tmp_path), data_dir=tmp_path / "d", config={"plugins": []}, js_engine=engine
    ) as k:
        for value in ("Basic abc", "Bearer ", "Bearer"):
            response = await fetch(k.url("chat", "/api/hello"), headers={"Authorization": value})
            assert response.code == 200, value
            assert json_body(response)["request"]["user"] is None, value
        empty_query = await fetch(k.url("chat", "/api/hello?token="))
        assert json_body(empty_query)["request"]["user"] is None

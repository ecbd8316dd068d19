"""The kernel with the real QuickJS engine: handlers, req, fazt.auth, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import make_app, running_kernel
from tests.kernel.util import fetch, json_body

FILES = {
    "index.html": "home",
    "api/echo.js": """
module.exports = async (req) => ({
  json: {method: req.method, path: req.path, query: req.query, json: req.json,
         user: req.user && req.user.sub, app: req.app, agent: req.headers['x-agent']},
});
""",
    "api/rooms/list.js": "module.exports = () => ['lobby', 'games'];",
    "api/login.js": """
module.exports = async (req) => {
  const token = await fazt.auth.issueToken({sub: req.json.user, name: req.json.user});
  return {json: {token}};
};
""",
    "api/badlogin.js": """
module.exports = async () => {
  try { await fazt.auth.issueToken({sub: 7}); }
  catch (e) { return {status: 400, json: {error: e.message}}; }
};
""",
    "api/throws.js": "module.exports = () => { throw new Error('kaput'); };",
    "api/text.js": (
        "module.exports = () => ({body: 'plain', headers: {'Content-Type': 'text/plain'}});"
    ),
}


@pytest.mark.gen_test(timeout=20)
async def test_js_handlers_through_the_kernel(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "chat", {}, FILES)
    make_app(apps, "poll", {}, {"api/echo.js": FILES["api/echo.js"]})
    async with running_kernel(apps, data_dir=tmp_path / "d", config={"plugins": []}) as k:
        echo = await fetch(
            k.url("chat", "/api/echo?x=1&x=2"),
            method="POST",
            body=json.dumps({"a": [1]}),
            headers={"X-Agent": "pytest"},
        )
        assert echo.code == 200, echo.body
        chat = k.kernel.apps.by_slug("chat")
        assert chat is not None
        assert json_body(echo) == {
            "method": "POST",
            "path": "/api/echo",
            "query": {"x": "1"},
            "json": {"a": [1]},
            "user": None,
            "app": {"slug": "chat", "uuid": chat.uuid},
            "agent": "pytest",
        }
        rooms = await fetch(k.url("chat", "/api/rooms/list"))
        assert json_body(rooms) == ["lobby", "games"]
        text = await fetch(k.url("chat", "/api/text"))
        assert text.body == b"plain" and text.headers["Content-Type"].startswith("text/plain")

        login = await fetch(k.url("chat", "/api/login"), method="POST", body='{"user": "alice"}')
        token = json_body(login)["token"]
        me = await fetch(k.url("chat", "/api/echo"), headers={"Authorization": f"Bearer {token}"})
        assert json_body(me)["user"] == "alice"
        # A token minted by chat's handler is refused by poll.
        elsewhere = await fetch(k.url("poll", f"/api/echo?token={token}"))
        assert elsewhere.code == 401
        assert json_body(elsewhere) == {"error": "invalid token: token is for another app"}

        bad = await fetch(k.url("chat", "/api/badlogin"))
        assert bad.code == 400
        assert "fazt.auth.issueToken: sub must be a non-empty string" in json_body(bad)["error"]

        thrown = await fetch(k.url("chat", "/api/throws"))
        assert thrown.code == 500 and "kaput" in json_body(thrown)["error"]
        assert b"Traceback" not in thrown.body
        after = await fetch(k.url("chat", "/api/rooms/list"))
        assert after.code == 200
        head = await fetch(k.url("chat", "/api/rooms/list"), method="HEAD")
        assert head.code == 200 and head.body == b""

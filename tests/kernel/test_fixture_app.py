"""``fazt serve`` on the sample app in tests/fixtures/apps: a page and a JS handler."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness import FaztProcess

FIXTURE_APPS = Path(__file__).resolve().parent.parent / "fixtures" / "apps"


def test_fazt_serve_serves_a_page_and_a_js_handler(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    shutil.copytree(FIXTURE_APPS, apps)
    with FaztProcess(apps, data_dir=tmp_path / "d", config={"plugins": []}) as process:
        with urllib.request.urlopen(process.url("hello"), timeout=5) as response:
            assert b"<h1>Hello from fazt</h1>" in response.read()
        with urllib.request.urlopen(process.url("hello", "/api/greet?name=Ada"), timeout=5) as r:
            assert json.loads(r.read()) == {
                "message": "Hello, Ada!",
                "app": "hello",
                "method": "GET",
            }
        request = urllib.request.Request(
            f"{process.base_url}/api/greet", headers={"Host": f"hello.localhost:{process.port}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["message"] == "Hello, stranger!"
        # Editing a handler needs no restart.
        handler = apps / "hello" / "api" / "greet.js"
        handler.write_text("module.exports = () => ({json: {message: 'edited'}});\n")
        with urllib.request.urlopen(process.url("hello", "/api/greet"), timeout=5) as response:
            assert json.loads(response.read()) == {"message": "edited"}
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(process.url("hello", "/private/notes.txt"), timeout=5)
        with raised.value as error:
            assert error.code == 404

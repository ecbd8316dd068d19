"""``fazt new SLUG [APPS_DIR]``: a working app that passes ``fazt check`` and answers in
both routing styles; an existing folder is never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.binary import ServeProcess, run_fazt


def tree(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): path.read_text("utf-8")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_new_app_files_pass_check(tmp_path: Path) -> None:
    done = run_fazt("new", "hello", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "created apps/hello/ with app.json, index.html, api/hello.js and README.md",
        "serve it:  fazt serve apps",
        "open:      http://hello.localhost:8080/  or  http://127.0.0.1:8080/_app/hello/",
    ]
    files = tree(tmp_path / "apps" / "hello")
    assert set(files) == {"app.json", "index.html", "api/hello.js", "README.md"}
    manifest = json.loads(files["app.json"])
    assert manifest["slug"] == "hello"
    assert manifest["realtime"] == {"channels": {"messages": {"auth": False}}}
    assert '<script src="/_fazt/realtime.min.js"></script>' in files["index.html"]
    assert "subscribe('messages'" in files["index.html"]
    assert "fazt.realtime.broadcast('messages'" in files["api/hello.js"]
    check = run_fazt("check", cwd=tmp_path)  # the default APPS_DIR, apps
    assert check.returncode == 0, check.stdout
    assert check.stdout.splitlines() == ["1 app(s) ok (hello); 0 error(s); 0 warning(s)"]


def test_other_apps_dir(tmp_path: Path) -> None:
    assert run_fazt("new", "demo-2", "my apps", cwd=tmp_path).returncode == 0
    assert (tmp_path / "my apps" / "demo-2" / "api" / "hello.js").is_file()


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    assert run_fazt("new", "hello", cwd=tmp_path).returncode == 0
    folder = tmp_path / "apps" / "hello"
    (folder / "index.html").write_text("my own page")
    before = tree(folder)
    again = run_fazt("new", "hello", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        "fazt: error: apps/hello already exists; nothing was written (pick another name)"
    ]
    assert tree(folder) == before
    (tmp_path / "apps" / "file").write_text("not a folder")
    assert run_fazt("new", "file", cwd=tmp_path).returncode == 2
    assert (tmp_path / "apps" / "file").read_text() == "not a folder"


def test_bad_slug_writes_nothing(tmp_path: Path) -> None:
    done = run_fazt("new", "Hello World", cwd=tmp_path)
    assert done.returncode == 2
    assert "'Hello World' is not a valid slug" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_new_app_answers_in_both_routing_styles(tmp_path: Path) -> None:
    assert run_fazt("new", "hello", cwd=tmp_path).returncode == 0
    with ServeProcess(["apps", "--port", "0"], cwd=tmp_path) as serve:
        host = f"hello.localhost:{serve.port}"
        for path, header in (("/_app/hello/", None), ("/", host)):
            status, page = serve.get(path, host=header)
            assert status == 200 and b"/_fazt/realtime.min.js" in page
            status, sdk = serve.get("/_fazt/realtime.min.js", host=header)
            assert status == 200 and b"FaztRealtime" in sdk
        for path, header in (("/_app/hello/api/hello", None), ("/api/hello", host)):
            status, body = serve.get(path, host=header, data=b"{}")
            assert status == 200, body
            assert json.loads(body) == {"sent": True, "text": "hello from hello"}
            status, body = serve.get(path, host=header, data=b'{"text": " hi "}')
            assert (status, json.loads(body)) == (200, {"sent": True, "text": "hi"})

"""``fazt --version``, ``fazt serve``'s help, refusals and start-up log, run as a newcomer does."""

from __future__ import annotations

import socket
from pathlib import Path

from fazt import __version__
from tests.cli.binary import ServeProcess, run_fazt
from tests.harness import REPO_ROOT, make_app


def test_version(tmp_path: Path) -> None:
    done = run_fazt("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"fazt {__version__}"


def test_serve_help_explains_apps_dir(tmp_path: Path) -> None:
    done = run_fazt("serve", "--help", cwd=tmp_path)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "APPS_DIR is a folder whose sub-folders are the apps" in text
    assert "It defaults to ./apps" in text and "(default: ./apps)" in text
    assert "fazt serve examples" in text and "fazt new hello APPS_DIR" in text


def test_missing_apps_folder_suggests_the_examples_in_the_repository() -> None:
    done = run_fazt("serve", "no-such-folder", cwd=REPO_ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "fazt: error: apps folder 'no-such-folder' does not exist: serve this repository's "
        "examples with `fazt serve examples`, or create an app in it with "
        "`fazt new hello no-such-folder`"
    ]


def test_missing_apps_folder_elsewhere(tmp_path: Path) -> None:
    done = run_fazt("serve", cwd=tmp_path)  # the default: ./apps
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "fazt: error: apps folder 'apps' does not exist: create an app in it with "
        "`fazt new hello apps`"
    ]
    assert not (tmp_path / ".fazt").exists()


def test_busy_port_names_the_port_and_how_to_choose_another(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_fazt("serve", "--port", str(port), cwd=tmp_path)
    assert done.returncode == 2
    # One line and nothing else: no "fazt stopped", no start-up noise, no traceback.
    assert done.stderr.strip().splitlines() == [
        f"fazt: error: cannot listen on 127.0.0.1:{port}: port {port} is already in use "
        f"(another fazt serve?); choose another port with --port {port + 1} "
        f"(scripts/demo: PORT={port + 1} scripts/demo)"
    ]
    assert done.stdout == ""


def test_start_up_log_lists_every_app_with_the_real_port(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat", files={"index.html": "chat"})
    make_app(tmp_path / "apps", "live-poll", files={"index.html": "poll"})
    with ServeProcess(["--port", "0"], cwd=tmp_path) as serve:
        port = serve.port
        assert port > 0
        log = serve.log()
        assert f"chat      → http://chat.localhost:{port}/ and " in log
        assert f"http://127.0.0.1:{port}/_app/chat/" in log
        assert f"live-poll → http://live-poll.localhost:{port}/ and " in log
        assert f"http://127.0.0.1:{port}/_app/live-poll/" in log
        assert f"every app is listed at http://127.0.0.1:{port}/" in log
        assert serve.get("/_app/chat/") == (200, b"chat")
        assert serve.get("/", host=f"live-poll.localhost:{port}") == (200, b"poll")
        status, index = serve.get("/")
        assert status == 200 and f"http://chat.localhost:{port}/".encode() in index
        assert serve.stop() == 0
    assert "Traceback" not in serve.log()


def test_no_apps_says_how_to_make_one(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    with ServeProcess(["--port", "0"], cwd=tmp_path) as serve:
        assert "no apps in apps: create one with `fazt new hello apps`" in serve.log()

"""``fazt`` as a real subprocess (signals run stop hooks) and the CLI's refusals."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fazt.cli import main
from fazt.contracts.app import App
from fazt.kernel.tokens import TokenService
from tests.harness import FaztProcess, make_app

RECORDING = "tests.kernel.sample_plugin:RecordingPlugin"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_runs_stop_hooks_then_exits_0(tmp_path: Path, signum: int) -> None:
    make_app(tmp_path / "apps", "chat", files={"index.html": "hello"})
    record = tmp_path / "events.txt"
    config = {"plugins": [RECORDING], "recording": {"file": str(record)}}
    process = FaztProcess(tmp_path / "apps", data_dir=tmp_path / "d", config=config)
    with process:
        with urllib.request.urlopen(process.url("chat"), timeout=5) as response:
            assert response.read() == b"hello"
        with urllib.request.urlopen(process.url("chat", "/_recording"), timeout=5) as response:
            assert json.loads(response.read()) == {"app": "chat", "greeting": "hello"}
        process.send_signal(signum)
        code = process.wait(timeout=10)
        assert code == 0, process.log_text()
    assert record.read_text().split() == [
        "recording.configure",
        "recording.start",
        "recording.stop",
    ]
    log = process.log_text()
    assert "fazt serving 1 app(s) [chat] at http://127.0.0.1:" in log
    assert "fazt stopped" in log and "Traceback" not in log


def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    process = FaztProcess(
        tmp_path / "apps", data_dir=tmp_path / "d", config={"plugins": [], "prot": 1}
    )
    with pytest.raises(RuntimeError) as raised:
        process.start(timeout=10)
    assert "fazt exited with 2" in str(raised.value)
    assert "fazt: error:" in process.log_text()
    assert "Additional properties are not allowed ('prot' was unexpected)" in process.log_text()
    assert "Traceback" not in process.log_text()


def test_serve_flag_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "chat")
    assert main(["serve", str(tmp_path / "missing"), "--data", str(tmp_path / "d")]) == 2
    assert "apps folder" in capsys.readouterr().err
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"plugins": []}))
    code = main(["serve", str(apps), "--config", str(config), "--workers", "2"])
    assert code == 2
    assert "--workers 2 needs a Redis URL" in capsys.readouterr().err
    code = main(["serve", str(apps), "--config", str(tmp_path / "nope.json")])
    assert code == 2 and "cannot read config" in capsys.readouterr().err
    config.write_text(json.dumps({"plugins": ["nosuch"]}))
    args = ["--config", str(config), "--data", str(tmp_path / "d"), "--port", "0"]
    code = main(["serve", str(apps), *args])
    assert code == 2 and "plugin 'nosuch' is not installed" in capsys.readouterr().err


def test_unusable_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "chat")
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"plugins": []}))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    code = main(
        ["serve", str(apps), "--config", str(config), "--data", str(not_a_folder), "--port", "0"]
    )
    assert code == 2
    assert "fazt: error: cannot read or create the JWT secret in" in capsys.readouterr().err
    data = tmp_path / "d"
    data.mkdir()
    (data / "apps.json").write_text("[1, 2]")
    secret = ["--jwt-secret", "s" * 32, "--port", "0"]
    code = main(["serve", str(apps), "--config", str(config), "--data", str(data), *secret])
    assert code == 2
    assert "app uuid store must map slugs to uuid strings" in capsys.readouterr().err


def test_fazt_token_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "a-test-secret-of-32-characters!!"
    argv = ["token", "--sub", "alice", "--name", "Alice", "--role", "admin", "--role", "mod"]
    assert main([*argv, "--app", "chat", "--ttl", "60", "--jwt-secret", secret]) == 0
    token = capsys.readouterr().out.strip()
    chat = App(slug="chat", uuid="app_abcdef", root=tmp_path)
    claims = TokenService(secret.encode()).verify(token, chat)
    assert claims["sub"] == "alice" and claims["name"] == "Alice"
    assert claims["role"] == ["admin", "mod"] and claims["app"] == "chat"
    assert claims["exp"] - claims["iat"] == 60
    # Without --jwt-secret the data folder's existing secret is used; none is ever made.
    data = tmp_path / "d"
    assert main(["token", "--sub", "bob", "--data", str(data)]) == 2
    assert "no JWT secret" in capsys.readouterr().err and not data.exists()
    data.mkdir()
    (data / "jwt-secret").write_text(secret + "\n")
    assert main(["token", "--sub", "bob", "--data", str(data)]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenService(secret.encode()).verify(token)["sub"] == "bob"
    assert main(["token", "--sub", "bob", "--ttl", "0", "--data", str(data)]) == 2
    assert "--ttl must be a positive" in capsys.readouterr().err
    assert main(["token", "--sub", "bob", "--jwt-secret", "short-secret"]) == 2
    assert "the JWT secret must be at least 32 bytes long, got 12" in capsys.readouterr().err


def test_unknown_host_answers_while_serving(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    with FaztProcess(tmp_path / "apps", data_dir=tmp_path / "d", config={"plugins": []}) as p:
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(p.url("nosuch"), timeout=5)
        with raised.value as error:
            assert error.code == 404
            assert json.loads(error.read()) == {"error": "unknown app 'nosuch'"}


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    with FaztProcess(tmp_path / "apps", data_dir=tmp_path / "d", config={"plugins": []}) as first:
        second = FaztProcess(
            tmp_path / "apps", data_dir=tmp_path / "d2", config={"plugins": []}, port=first.port
        )
        second.config_path.write_text(json.dumps(second.config))
        done = subprocess.run(second.command(), capture_output=True, text=True, timeout=30)
        assert done.returncode == 2
        expected = f"fazt: error: cannot listen on 127.0.0.1:{first.port}: port {first.port} is"
        assert expected in done.stderr and "fazt stopped" not in done.stderr
        assert "Traceback" not in done.stderr


def test_workers_share_the_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat", files={"index.html": "hello"})
    record = tmp_path / "events.txt"
    config = {
        "plugins": [RECORDING],
        "recording": {"file": str(record)},
        # Not contacted: the recording plugin ignores it; the CLI only requires it.
        "redis": "redis://127.0.0.1:1/0",
    }
    process = FaztProcess(
        tmp_path / "apps", data_dir=tmp_path / "d", config=config, extra_args=["--workers", "2"]
    )
    with process:
        for _ in range(10):
            with urllib.request.urlopen(process.url("chat"), timeout=5) as response:
                assert response.read() == b"hello"
        code = process.terminate(timeout=15)
        assert code == 0, process.log_text()
    events = record.read_text().split()
    assert events.count("recording.start") == 2 and events.count("recording.stop") == 2
    assert "2 workers started" in process.log_text()

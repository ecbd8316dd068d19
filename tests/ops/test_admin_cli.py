"""``fazt admin`` against a live ``fazt serve --admin-port``: tables, JSON, every error."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import FaztProcess, free_port, make_app
from tests.realtime.wsclient import open_client

RULES = {"realtime": {"channels": {"room-*": {"publish": True}, "presence-*": {"auth": True}}}}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FaztProcess]:
    for slug in ("chat", "poll"):
        make_app(tmp_path / "apps", slug, RULES)
    process = FaztProcess(
        tmp_path / "apps", data_dir=tmp_path / "data", config={"admin": {"port": free_port()}}
    )
    with process:
        yield process


async def fazt_admin(
    server: FaztProcess, *args: str, env: dict[str, str] | None = None, defaults: bool = True
) -> tuple[int, str, str]:
    """Run ``fazt admin`` in a folder without a fazt.json; (exit status, stdout, stderr)."""
    where = ["--config", str(server.config_path), "--data", str(server.data_dir)]
    command = [sys.executable, "-m", "fazt", "admin", *(where if defaults else []), *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAZT_ADMIN_")}
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=server.data_dir,
        env={**clean, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def admin_url(server: FaztProcess) -> str:
    return f"http://127.0.0.1:{server.config['admin']['port']}"


@pytest.mark.gen_test(timeout=150)
async def test_status_channels_channel_kick_and_broadcast(server: FaztProcess) -> None:
    token = (server.data_dir / "admin-token").read_text().strip()
    assert (server.data_dir / "admin-token").stat().st_mode & 0o777 == 0o600
    alice = await open_client(server.ws_url("chat"))
    bob = await open_client(server.ws_url("chat"))
    for client in (alice, bob):
        await client.subscribe("room-a")
    await bob.subscribe("room-b")

    status, out, err = await fazt_admin(server, "status")
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "APP   CONNECTIONS  CHANNELS",
        "chat            2         2",
        "poll            0         0",
    ]
    # --url, --token and --json after the subcommand, and in the environment.
    status, out, _ = await fazt_admin(
        server, "status", "--json", "--url", admin_url(server), "--token", token, defaults=False
    )
    assert status == 0 and [app["connections"] for app in json.loads(out)] == [2, 0]
    env = {"FAZT_ADMIN_URL": admin_url(server), "FAZT_ADMIN_TOKEN": token}
    status, out, _ = await fazt_admin(server, "--json", "status", env=env, defaults=False)
    assert status == 0 and json.loads(out)[0]["slug"] == "chat"

    status, out, _ = await fazt_admin(server, "channels", "chat", "--limit", "1")
    assert (status, out.splitlines()) == (
        0,
        ["CHANNEL  SUBSCRIBERS  MEMBERS", "room-a             2"],
    )
    status, out, _ = await fazt_admin(server, "channel", "chat", "room-b", "--json")
    assert json.loads(out) == {"channel": "room-b", "subscribers": [{"clientId": bob.client_id}]}

    status, out, _ = await fazt_admin(server, "broadcast", "chat", "room-a", '{"n": 1}')
    assert (status, out.strip()) == (0, "sent to channel room-a")
    assert (await alice.recv())["data"] == {"n": 1}
    status, out, _ = await fazt_admin(server, "broadcast", "chat", '"to all"')
    assert (status, out.strip()) == (0, "sent to every connection of the app")
    assert (await alice.recv())["data"] == "to all"

    status, out, _ = await fazt_admin(server, "kick", "chat", "--client", alice.client_id)
    assert (status, out.strip()) == (0, "kicked 1 connection(s)")
    assert (await alice.expect_close())[0] == 4003
    await bob.close()


@pytest.mark.gen_test(timeout=150)
async def test_every_failure_is_one_line_and_a_non_zero_exit(server: FaztProcess) -> None:
    failures = [
        (("--url", f"http://127.0.0.1:{free_port()}", "status"), "connection refused"),
        (("--token", "wrong-token-wrong-token", "status"), "refused the token (401)"),
        (("channels", "nope"), "unknown app 'nope' (HTTP 404)"),
        (("kick", "nope", "--user", "x"), "unknown app 'nope' (HTTP 404)"),
        (("broadcast", "chat", "{not json"), "the message is not valid JSON"),
        (("channels", "chat", "--url", "ftp://x"), "bad admin URL"),
    ]
    for args, fragment in failures:
        status, out, err = await fazt_admin(server, *args)
        assert status == 1, (args, out, err)
        assert out == "" and err.count("\n") == 1 and err.startswith("fazt: error: "), err
        assert fragment in err, (args, err)
    # Nothing to go on: no URL anywhere.
    status, _, err = await fazt_admin(server, "status", defaults=False)
    assert status == 1 and "no admin URL" in err
    # A command line argparse refuses: status 2, its usage line.
    status, _, err = await fazt_admin(server, "kick", "chat")
    assert status == 2 and "one of the arguments --client --user is required" in err

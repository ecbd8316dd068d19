"""``fazt token`` signs with the secret ``fazt serve`` uses, and never makes a new one."""

from __future__ import annotations

from pathlib import Path

import pytest

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenService
from tests.cli.binary import run_fazt

SECRET = "a-test-secret-of-32-characters!!"


def verify(token: str, secret: str, app: App | None = None) -> dict[str, object]:
    return TokenService(secret.encode()).verify(token.strip(), app)


@pytest.mark.parametrize("data", [None, "served-data"])
def test_without_a_secret_it_fails_in_one_line_and_creates_nothing(
    tmp_path: Path, data: str | None
) -> None:
    args = ["token", "--sub", "alice"] + (["--data", data] if data else [])
    done = run_fazt(*args, cwd=tmp_path)
    assert done.returncode == 2
    missing = f"{data or '.fazt'}/jwt-secret"
    assert done.stderr.splitlines() == [
        f"fazt: error: no JWT secret: {missing} does not exist; pass --jwt-secret S, set "
        "FAZT_JWT_SECRET, or --data DIR with the data folder of `fazt serve`"
    ]
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no data folder, no secret file


def test_flag_environment_and_data_folder(tmp_path: Path) -> None:
    by_flag = run_fazt("token", "--sub", "alice", "--jwt-secret", SECRET, cwd=tmp_path)
    assert by_flag.returncode == 0 and verify(by_flag.stdout, SECRET)["sub"] == "alice"
    by_env = run_fazt("token", "--sub", "bob", cwd=tmp_path, env={"FAZT_JWT_SECRET": SECRET})
    assert by_env.returncode == 0 and verify(by_env.stdout, SECRET)["sub"] == "bob"
    data = tmp_path / "data"
    data.mkdir()
    (data / "jwt-secret").write_text(SECRET + "\n")
    by_data = run_fazt("token", "--sub", "carol", "--data", "data", cwd=tmp_path)
    assert by_data.returncode == 0 and verify(by_data.stdout, SECRET)["sub"] == "carol"
    # The default data folder of `fazt serve` (./.fazt) is used when it holds a secret.
    (tmp_path / ".fazt").mkdir()
    (tmp_path / ".fazt" / "jwt-secret").write_text(SECRET)
    default = run_fazt("token", "--sub", "dan", "--app", "chat", cwd=tmp_path)
    claims = verify(default.stdout, SECRET, App(slug="chat", uuid="app_chat00", root=tmp_path))
    assert (claims["sub"], claims["app"]) == ("dan", "chat")

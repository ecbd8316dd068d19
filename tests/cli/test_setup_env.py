"""``scripts/setup-env``: one line per step, the tools' output in ``.fazt-setup.log``,
one line naming the failed step and the log, idempotent, ``python3-venv`` when needed.

It runs the real script in a copy of the repository's layout. What it drives
(apt-get, python3 -m venv, pip, npm) are stand-ins on PATH that log their
arguments and print the kind of noise the real tools print: installing Debian
packages or reaching the package registries cannot happen in a test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import REPO_ROOT

#: The kind of output the real tools print, a dozen lines of it.
NOISE = 'for ((i = 0; i < 12; i++)); do echo "noise line $i: Reading package lists... 42%"; done'

# The stand-ins. $CALLS collects every call; $FAIL_<TOOL>=1 makes a tool fail.
APT_GET = (
    """#!/bin/bash
echo "apt-get $*" >>"$CALLS"
"""
    + NOISE
    + """
[ -z "$FAIL_APT" ] || exit 100
for package in "$@"; do
  case "$package" in
    python3-venv) touch "$STATE/python3-venv";;
    npm) cp "$STATE/npm" "$BIN/npm";;
    nodejs) printf '#!/bin/bash\\n' >"$BIN/node"; chmod +x "$BIN/node";;
    redis-server|chromium) printf '#!/bin/bash\\n' >"$BIN/$package"; chmod +x "$BIN/$package";;
  esac
done
"""
)
PYTHON3 = """#!/bin/bash
echo "python3 $*" >>"$CALLS"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  if [ -n "$NEEDS_VENV_PACKAGE" ] && [ ! -e "$STATE/python3-venv" ]; then
    echo "The virtual environment was not created successfully because ensurepip is not"
    echo "available. On Debian/Ubuntu systems, you need to install the python3-venv package"
    exit 1
  fi
  cp "$STATE/venv-python" "$3/bin/python"
fi
"""
VENV_PYTHON = (
    """#!/bin/bash
echo "venv-python $*" >>"$CALLS"
if [ "$1 $2" = "-m pip" ]; then
  [ "$3" = "--version" ] && exit 0
"""
    + NOISE
    + """
  echo "WARNING: setuptools editable install: 10 lines of advice follow" >&2
  [ -z "$FAIL_PIP" ] || [[ " $* " != *" -e "* ]] || exit 1
fi
exit 0
"""
)
NPM = (
    """#!/bin/bash
echo "npm $* in ${PWD##*/}" >>"$CALLS"
"""
    + NOISE
    + """
echo "npm warn deprecated something" >&2
[ -z "$FAIL_NPM" ] || exit 1
mkdir -p node_modules
"""
)
#: What the script needs from the machine, found on the real PATH.
TOOLS = ["bash", "cat", "cut", "sha256sum", "rm", "mkdir", "id", "env", "dirname", "cp", "touch"]


class SetupEnv:
    """A repository-shaped folder with scripts/setup-env and stand-ins on PATH."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        (self.repo / "scripts").mkdir(parents=True)
        shutil.copy(REPO_ROOT / "scripts" / "setup-env", self.repo / "scripts" / "setup-env")
        for name in ("setup.py", "pyproject.toml"):
            shutil.copy(REPO_ROOT / name, self.repo / name)
        for folder in ("sdk", "bench"):
            (self.repo / folder).mkdir()
            (self.repo / folder / "package-lock.json").write_text('{"lockfileVersion": 3}')
        self.bin = root / "bin"
        self.bin.mkdir()
        self.state = root / "state"
        self.state.mkdir()
        self.calls = root / "calls.txt"
        self.calls.touch()
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found, tool
            (self.bin / tool).symlink_to(found)
        for name, text in (("apt-get", APT_GET), ("python3", PYTHON3)):
            self._script(self.bin / name, text)
        self._script(self.state / "venv-python", VENV_PYTHON)
        self._script(self.state / "npm", NPM)  # apt-get "installs" it
        self.log = self.repo / ".fazt-setup.log"

    @staticmethod
    def _script(path: Path, text: str) -> None:
        path.write_text(text)
        path.chmod(0o755)

    def provide_debian_packages(self) -> None:
        """As if redis-server, chromium, node and npm were installed already."""
        for tool in ("redis-server", "chromium", "node"):
            self._script(self.bin / tool, "#!/bin/bash\n")
        shutil.copy(self.state / "npm", self.bin / "npm")

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "scripts/setup-env", *args],
            cwd=self.repo,
            env={
                "PATH": str(self.bin),
                "BIN": str(self.bin),
                "CALLS": str(self.calls),
                "STATE": str(self.state),
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls_made(self) -> list[str]:
        return self.calls.read_text().splitlines()


@pytest.fixture
def setup_env(tmp_path: Path) -> SetupEnv:
    if os.geteuid() != 0:
        pytest.skip("the stand-in apt-get is called directly only as root (else through sudo)")
    return SetupEnv(tmp_path)


def test_fresh_machine_one_line_per_step_then_nothing_to_do(setup_env: SetupEnv) -> None:
    done = setup_env.run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "setup-env: Debian packages (redis-server chromium nodejs npm): done",
        "setup-env: virtualenv .venv: done",
        "setup-env: pip in .venv (pip install -U pip): done",
        "setup-env: fazt in .venv (pip install -e '.[test,redis]'): done",
        "setup-env: npm packages in sdk/ (npm ci): done",
        "setup-env: npm packages in bench/ (npm ci): done",
    ]
    assert done.stderr == ""
    log = setup_env.log.read_text()
    assert "noise line 11" in log and "setuptools editable install" in log
    assert "npm warn deprecated" in log
    calls = setup_env.calls_made()
    assert "apt-get update -q" in calls
    assert "apt-get install -y -q --no-install-recommends redis-server chromium nodejs npm" in calls
    assert "venv-python -m pip install --disable-pip-version-check -e .[test,redis]" in calls
    assert "npm ci --no-audit --no-fund in sdk" in calls

    setup_env.calls.write_text("")
    again = setup_env.run()
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "setup-env: Debian packages: already installed",
        "setup-env: virtualenv .venv: already there",
        "setup-env: fazt in .venv (.[test,redis]): already installed",
        "setup-env: npm packages in sdk/: already installed",
        "setup-env: npm packages in bench/: already installed",
    ]
    installers = ("apt-get", "npm", "python3")
    assert not any(call.startswith(installers) for call in setup_env.calls_made())


def test_runtime_only_installs_just_fazt(setup_env: SetupEnv) -> None:
    done = setup_env.run("--runtime-only")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "setup-env: virtualenv .venv: done",
        "setup-env: pip in .venv (pip install -U pip): done",
        "setup-env: fazt in .venv (pip install -e '.'): done",
    ]
    assert not any(call.startswith(("apt-get", "npm")) for call in setup_env.calls_made())


@pytest.mark.parametrize(
    ("fail", "step"),
    [
        ("FAIL_APT", "Debian packages (redis-server chromium nodejs npm) failed (exit 100)"),
        ("FAIL_PIP", "fazt in .venv (pip install -e '.[test,redis]') failed (exit 1)"),
        ("FAIL_NPM", "npm packages in sdk/ (npm ci) failed (exit 1)"),
    ],
)
def test_a_failed_step_is_one_line_naming_it_and_the_log(
    setup_env: SetupEnv, fail: str, step: str
) -> None:
    done = setup_env.run(**{fail: "1"})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"setup-env: error: {step}; the full output is in {setup_env.log}"
    ]
    assert "noise line" not in done.stdout + done.stderr
    assert "noise line 11" in setup_env.log.read_text()


def test_python3_venv_is_installed_when_venv_cannot_be_made(setup_env: SetupEnv) -> None:
    setup_env.provide_debian_packages()
    done = setup_env.run(NEEDS_VENV_PACKAGE="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == [
        "setup-env: Debian packages: already installed",
        "setup-env: virtualenv .venv: python3 -m venv failed; installing python3-venv",
        "setup-env: virtualenv .venv: done",
    ]
    assert "ensurepip is not" in setup_env.log.read_text()
    assert "apt-get install -y -q --no-install-recommends python3-venv" in setup_env.calls_made()


def test_no_python3_venv_to_be_had_says_what_to_run(setup_env: SetupEnv) -> None:
    setup_env.provide_debian_packages()
    done = setup_env.run(NEEDS_VENV_PACKAGE="1", FAIL_APT="1")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "setup-env: error: virtualenv .venv: python3 -m venv failed and python3-venv could not "
        f"be installed; run: sudo apt-get install python3-venv; the full output is in "
        f"{setup_env.log}"
    ]

"""Shared test harness: a kernel in the test's loop, a kernel in a subprocess, app folders.

Used by the kernel, realtime, Redis, SDK-example and browser tests::

    @pytest.mark.gen_test(timeout=10)
    async def test_x(tmp_path: Path) -> None:
        make_app(tmp_path / "apps", "chat", files={"index.html": "<h1>hi</h1>"})
        async with running_kernel(tmp_path / "apps", data_dir=tmp_path / "data",
                                  config={"plugins": []}) as k:
            response = await AsyncHTTPClient().fetch(k.url("chat"))

    with FaztProcess(apps_dir, data_dir=tmp_path / "data", config={"plugins": []}) as proc:
        urllib.request.urlopen(proc.url("chat"))
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from fazt.contracts.js_engine import JsEngineLike
from fazt.kernel.kernel import Kernel
from fazt.kernel.plugin import Plugin

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (for subprocess servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_app(
    root: Path,
    slug: str,
    manifest: Mapping[str, Any] | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write ``root/<slug>/`` with ``app.json`` (``manifest``, default ``{}``) and ``files``.

    ``files`` maps relative paths (``"api/hello.js"``) to text contents.
    Returns the app folder.
    """
    folder = root / slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.json").write_text(json.dumps(dict(manifest or {}), indent=2), "utf-8")
    for relative, text in (files or {}).items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, "utf-8")
    return folder


@dataclass
class RunningKernel:
    """A started kernel on 127.0.0.1 and helpers to address its apps."""

    kernel: Kernel
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, slug: str, path: str = "/") -> str:
        """``http://127.0.0.1:PORT/_app/<slug><path>``."""
        return f"{self.base_url}/_app/{slug}{path}"

    def ws_url(self, slug: str, path: str = "/_ws") -> str:
        """``ws://127.0.0.1:PORT/_app/<slug>/_ws``."""
        return f"ws://127.0.0.1:{self.port}/_app/{slug}{path}"


@contextlib.asynccontextmanager
async def running_kernel(
    apps_dir: Path,
    *,
    data_dir: Path,
    config: Mapping[str, Any] | None = None,
    plugins: Sequence[Plugin] | None = None,
    domain: str = "localhost",
    js_engine: JsEngineLike | None = None,
) -> AsyncIterator[RunningKernel]:
    """Start a ``Kernel`` on a free port in the current loop; stop it on exit.

    When ``plugins`` is given, exactly those plugins are attached (the
    config's ``plugins`` list is ignored); otherwise the config's list is used
    (default ``["realtime"]``). ``js_engine`` replaces the QuickJS engine
    (for tests of the kernel's own glue).
    """
    settings = dict(config or {})
    if plugins is not None:
        settings["plugins"] = []
    kernel = Kernel(
        apps_dir, data_dir=data_dir, domain=domain, config=settings, js_engine=js_engine
    )
    for plugin in plugins or ():
        kernel.use(plugin)
    try:
        port = await kernel.start(port=0, address="127.0.0.1")
        yield RunningKernel(kernel=kernel, port=port)
    finally:
        await kernel.stop()


class FaztProcess:
    """``fazt serve`` as a real subprocess on a free port (log captured to a file).

    ``start(timeout)`` waits until the server answers HTTP; ``terminate()``
    sends SIGTERM and waits; ``kill()`` sends SIGKILL; ``stop()`` terminates
    and falls back to kill. Usable as a context manager (start/stop).
    """

    def __init__(
        self,
        apps_dir: Path,
        *,
        data_dir: Path,
        config: Mapping[str, Any] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.apps_dir = Path(apps_dir).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.config = dict(config or {})
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.port = port or free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"fazt-{self.port}.log"
        self.config_path = self.data_dir / f"fazt-{self.port}.json"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("FaztProcess not started")
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, slug: str, path: str = "/") -> str:
        return f"{self.base_url}/_app/{slug}{path}"

    def ws_url(self, slug: str, path: str = "/_ws") -> str:
        return f"ws://127.0.0.1:{self.port}/_app/{slug}{path}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "fazt",
            "serve",
            str(self.apps_dir),
            "--port",
            str(self.port),
            "--address",
            "127.0.0.1",
            "--data",
            str(self.data_dir),
            "--config",
            str(self.config_path),
            *self.extra_args,
        ]

    def start(self, timeout: float = 15.0) -> FaztProcess:
        """Launch and wait until it answers HTTP; raises with the log if it dies."""
        self.config_path.write_text(json.dumps(self.config), "utf-8")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._log_handle = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command(),
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._close_log()
                raise RuntimeError(
                    f"fazt exited with {self._process.returncode}:\n{self.log_text()}"
                )
            if self._answers():
                return self
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"fazt did not answer within {timeout}s:\n{self.log_text()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/", timeout=1):
                return True
        except urllib.error.HTTPError as error:
            error.close()  # its response holds the socket
            return True  # any HTTP answer (the root is a 404 JSON) means it serves
        except OSError:
            return False

    def wait(self, timeout: float = 15.0) -> int:
        if self._process is None:
            raise RuntimeError("FaztProcess not started")
        code = self._process.wait(timeout)
        self._close_log()
        return code

    def send_signal(self, signum: int) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait for exit; returns the exit code."""
        self.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (and reap)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        if self._process is not None:
            self._process.wait(10)
        self._close_log()

    def stop(self) -> None:
        """Terminate gracefully; kill if it does not exit in time."""
        if self._process is None:
            return
        try:
            self.terminate(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> FaztProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

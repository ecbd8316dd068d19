"""The installed ``fazt`` console script as a subprocess, as a newcomer runs it.

``FAZT`` is the ``fazt`` next to the test's Python (``.venv/bin/fazt``), so
these tests exercise the entry point that ``pip install -e .`` wrote, not
``python -m fazt``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

FAZT = Path(sys.executable).parent / "fazt"

#: Environment for every run: no secret from the developer's shell leaks in.
BASE_ENV = {key: value for key, value in os.environ.items() if key != "FAZT_JWT_SECRET"}


def run_fazt(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run ``fazt ARGS`` to completion in ``cwd``; stdout and stderr captured as text."""
    return subprocess.run(
        [str(FAZT), *args],
        cwd=cwd,
        env={**BASE_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServeProcess:
    """``fazt serve ARGS`` in the background; waits for the start-up log's URL lines.

    ``port`` is the real port, read from the log (so ``--port 0`` works).
    """

    def __init__(self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None):
        self.log_path = cwd / f"serve-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(FAZT), "--log-level", "INFO", "serve", *args],
            cwd=cwd,
            env={**BASE_ENV, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.port = 0

    def start(self, timeout: float = 20) -> ServeProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"every app is listed at http://[^:]+:(\d+)/", self.log())
            if found:
                self.port = int(found.group(1))
                return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"fazt serve exited with {self.process.returncode}:\n{self.log()}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"fazt serve did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def get(
        self, path: str, host: str | None = None, data: bytes | None = None
    ) -> tuple[int, bytes]:
        """Status and body of ``http://127.0.0.1:PORT<path>`` (Host header optional)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data)
        if host is not None:
            request.add_header("Host", host)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()

    def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit. Returns the exit status."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait(10)
        finally:
            self._log.close()

    def __enter__(self) -> ServeProcess:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

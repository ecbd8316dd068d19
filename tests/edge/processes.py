"""``fazt serve`` subprocesses for edge tests: a log level, a lowered open-file limit."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.harness import FaztProcess

PRLIMIT = shutil.which("prlimit")
needs_prlimit = pytest.mark.skipif(PRLIMIT is None, reason="prlimit (util-linux) is not installed")


class EdgeFaztProcess(FaztProcess):
    """``[prlimit --nofile=SOFT:HARD --] python -m fazt [--log-level L] serve ...``."""

    def __init__(
        self,
        apps_dir: Path,
        *,
        data_dir: Path,
        config: Mapping[str, Any] | None = None,
        extra_args: Sequence[str] = (),
        log_level: str | None = None,
        nofile: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(apps_dir, data_dir=data_dir, config=config, extra_args=extra_args)
        self.log_level = log_level
        self.nofile = nofile

    def command(self) -> list[str]:
        command = super().command()
        if self.log_level is not None:
            at = command.index("serve")
            command = [*command[:at], "--log-level", self.log_level, *command[at:]]
        if self.nofile is not None:
            assert PRLIMIT is not None
            soft, hard = self.nofile
            command = [PRLIMIT, f"--nofile={soft}:{hard}", "--", *command]
        return command

"""The open-file limit: raised at start; caps that do not fit it are lowered, in one line each."""

from __future__ import annotations

import contextlib
import resource
from pathlib import Path

import pytest

from fazt.edge.fd_limits import FD_RESERVE, FdBudget, fd_budget
from tests.edge.processes import EdgeFaztProcess, needs_prlimit
from tests.edge.procfs import open_files_limit
from tests.harness import make_app
from tests.realtime.wsclient import Client, open_client, upgrade_status

PENDING_LINE = "http.maxPendingConnections 1000 would leave too few descriptors"
REALTIME_LINE = "realtime.limits.maxConnectionsTotal 5000 plus"


def test_budget_on_this_machine_kind_leaves_every_default_alone() -> None:
    assert fd_budget(20_000, max_pending=1000, max_realtime=5000) == FdBudget(
        limit=20_000, reserve=FD_RESERVE, pending=1000, realtime=5000
    )


def test_budget_shares_a_small_limit_out() -> None:
    # A quarter for pending connections, a quarter kept back, the rest for realtime.
    assert fd_budget(300, max_pending=1000, max_realtime=5000) == FdBudget(300, 75, 75, 150)
    assert fd_budget(1024, max_pending=1000, max_realtime=5000) == FdBudget(1024, 256, 256, 512)
    # Caps that fit are kept as configured.
    assert fd_budget(1024, max_pending=10, max_realtime=100) == FdBudget(1024, 256, 10, 100)
    # Never below one connection.
    assert fd_budget(2, max_pending=1000, max_realtime=5000) == FdBudget(2, 0, 1, 1)
    unlimited = resource.RLIM_INFINITY
    assert fd_budget(unlimited, max_pending=7, max_realtime=9) == FdBudget(unlimited, 0, 7, 9)


@needs_prlimit
def test_serve_raises_the_soft_limit_to_the_hard_limit(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    process = EdgeFaztProcess(tmp_path / "apps", data_dir=tmp_path / "d", nofile=(100, 20_000))
    with process:
        assert open_files_limit(process.pid) == (20_000, 20_000)
    log = process.log_text()
    assert PENDING_LINE not in log and REALTIME_LINE not in log, log


@needs_prlimit
@pytest.mark.gen_test(timeout=60)
async def test_a_realtime_limit_that_does_not_fit_is_lowered_with_one_line(
    tmp_path: Path,
) -> None:
    make_app(tmp_path / "apps", "chat")
    process = EdgeFaztProcess(tmp_path / "apps", data_dir=tmp_path / "d", nofile=(200, 200))
    clients: list[Client] = []
    with process:
        try:
            # 200 descriptors: 50 for pending connections, 50 kept back, 100 for realtime.
            for _ in range(100):
                clients.append(await open_client(process.ws_url("chat")))
            assert await upgrade_status(process.ws_url("chat")) == 503
        finally:
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()
    log = process.log_text()
    assert log.count(PENDING_LINE) == 1, log
    assert log.count(REALTIME_LINE) == 1, log
    assert "so it is 50 (a quarter of the limit" in log
    assert "so maxConnectionsTotal is 100 (raise the hard limit" in log
    assert "Traceback" not in log

"""The 60-second runs carry the ``reliability`` marker and run only when asked for.

``pytest -m reliability`` (``scripts/reliability``) selects them; any other run
(``scripts/test``, ``pytest tests``) leaves them out, and keeps the short runs
that stop the suite from rotting.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "reliability" in (config.getoption("markexpr") or ""):
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("reliability") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept

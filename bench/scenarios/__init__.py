"""The scenarios of ``bench/run``, in the order they run and appear in the docs."""

from __future__ import annotations

from scenarios.base import Scenario
from scenarios.cluster import Cluster
from scenarios.connections import Connections
from scenarios.fanout import Burst, Http, Memory, Paced
from scenarios.rooms import Rooms
from scenarios.storm import Storm

SCENARIOS: list[Scenario] = [
    Burst(),
    Paced(),
    Memory(),
    Http(),
    Rooms(),
    Connections(),
    Storm(),
    Cluster(),
]
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}

"""Hooks across real ``fazt serve`` processes on a test-started Redis: each event on one node.

The app's hooks write one console line per event (``HOOK <name> <channel>
[<user>]``) to the log of the node that ran them, so a test counts every
event over every node: exactly one line, on exactly one node.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.test_cluster import APP_UUID, PRESENCE_TTL, ClusterRig
from tests.harness import FaztProcess, make_app
from tests.realtime.backplane.redis_server import needs_redis_server

pytestmark = [pytest.mark.redis, needs_redis_server]

VACATED_DELAY = 0.5

HOOKS = """
exports.onJoin = ({ channel, member }) => console.log('HOOK onJoin', channel, member.id);
exports.onLeave = ({ channel, member }) => console.log('HOOK onLeave', channel, member.id);
exports.onOccupied = ({ channel }) => console.log('HOOK onOccupied', channel);
exports.onVacated = ({ channel }) => console.log('HOOK onVacated', channel);
"""

CHANNELS = {
    "presence-room": {"hooks": ["presence", "occupancy"]},
    "occ-*": {"hooks": ["occupancy"]},
}

_HOOK_LINE = re.compile(r"HOOK (on\w+ [^\n]*)")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ClusterRig]:
    rig = ClusterRig(tmp_path)
    make_app(
        rig.apps_dir,
        "chat",
        {"uuid": APP_UUID, "realtime": {"channels": CHANNELS}},
        {"api/_realtime.js": HOOKS},
    )
    rig.realtime = {"hooks": {"vacatedDelaySeconds": VACATED_DELAY}}
    try:
        yield rig
    finally:
        rig.close()


def events(node: FaztProcess) -> list[str]:
    return [match.group(1).strip() for match in _HOOK_LINE.finditer(node.log_text())]


async def wait_for_events(nodes: list[FaztProcess], expected: list[str], timeout: float) -> None:
    """Until every expected event was logged somewhere, then a while longer: nothing twice."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = sorted(event for node in nodes for event in events(node))
        if all(seen.count(event) >= expected.count(event) for event in expected):
            break
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {expected}: saw {seen}")
        await asyncio.sleep(0.1)
    await asyncio.sleep(VACATED_DELAY + 1.0)
    seen = sorted(event for node in nodes for event in events(node))
    assert seen == sorted(expected), seen


@pytest.mark.gen_test(timeout=90)
async def test_each_event_fires_on_exactly_one_node(rig: ClusterRig) -> None:
    one, two = rig.start_node(), rig.start_node()
    try:
        # Two tabs of alice, one on each node; bob on the second.
        alice1 = await rig.client(one, "alice")
        alice2 = await rig.client(two, "alice")
        bob = await rig.client(two, "bob")
        for client in (alice1, alice2, bob):
            await client.subscribe("presence-room")
        await wait_for_events(
            [one, two],
            [
                "onJoin presence-room alice",
                "onJoin presence-room bob",
                "onOccupied presence-room",
            ],
            timeout=20,
        )
        # alice closes the tab on node one: she is still there (node two), no leave.
        await alice1.close()
        await bob.close()
        await wait_for_events(
            [one, two],
            [
                "onJoin presence-room alice",
                "onJoin presence-room bob",
                "onOccupied presence-room",
                "onLeave presence-room bob",
            ],
            timeout=20,
        )
        await alice2.close()
        await wait_for_events(
            [one, two],
            [
                "onJoin presence-room alice",
                "onJoin presence-room bob",
                "onOccupied presence-room",
                "onLeave presence-room bob",
                "onLeave presence-room alice",
                "onVacated presence-room",
            ],
            timeout=20,
        )
    finally:
        await rig.close_clients()


@pytest.mark.gen_test(timeout=90)
async def test_a_subscriber_back_on_another_node_within_the_delay_fires_nothing(
    rig: ClusterRig,
) -> None:
    one, two = rig.start_node(), rig.start_node()
    try:
        first = await rig.client(one, "alice")
        await first.subscribe("occ-poll")
        await wait_for_events([one, two], ["onOccupied occ-poll"], timeout=20)
        # The page reloads and lands on the other node, well within the delay.
        await first.close()
        second = await rig.client(two, "alice")
        await second.subscribe("occ-poll")
        await asyncio.sleep(VACATED_DELAY * 2)
        await wait_for_events([one, two], ["onOccupied occ-poll"], timeout=5)
    finally:
        await rig.close_clients()


@pytest.mark.gen_test(timeout=120)
async def test_the_survivors_fire_the_leaves_and_vacancies_of_a_killed_node_once(
    rig: ClusterRig,
) -> None:
    one, two, doomed = rig.start_node(), rig.start_node(), rig.start_node()
    try:
        bob = await rig.client(one, "bob")
        await bob.subscribe("presence-room")
        ghost = await rig.client(doomed, "ghost")
        await ghost.subscribe("presence-room")
        await ghost.subscribe("occ-ghost")
        before = [
            "onJoin presence-room bob",
            "onJoin presence-room ghost",
            "onOccupied presence-room",
            "onOccupied occ-ghost",
        ]
        await wait_for_events([one, two, doomed], before, timeout=20)
        doomed.kill()  # SIGKILL: the survivors' sweep must clean up after it
        rig.clients.remove(ghost)
        after = ["onLeave presence-room ghost", "onVacated occ-ghost"]
        survivors = [one, two]
        await wait_for_events([*survivors, doomed], before + after, timeout=PRESENCE_TTL * 4 + 15)
        # Both reported by the one survivor whose sweep claimed the dead node.
        reporters = [node for node in survivors if any(e in events(node) for e in after)]
        assert len(reporters) == 1
        assert all(event in events(reporters[0]) for event in after)
        # bob is still in the room: the presence channel was not vacated.
        assert not any("onVacated presence-room" in e for node in survivors for e in events(node))
    finally:
        await rig.close_clients()

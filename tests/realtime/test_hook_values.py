"""What an app's hooks return is an edge too: values strict JSON cannot carry are refused there.

A JS string may hold a lone surrogate, and it crosses into Python as one. A
hook that rewrites a message into such data, or refuses with such a reason,
must not leave the sender without an answer and a traceback in the log: the
rewrite fails closed (``rejected``, the usual text) and the reason falls back
to the usual text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop

from fazt.realtime import hook_verdicts
from fazt.realtime.hooks import HookSettings
from tests.realtime.backplane.support import eventually
from tests.realtime.fakes import FakeTransport
from tests.realtime.hooked import HookedNode, hooked_app, hooked_node
from tests.realtime.world import claims

pytestmark = pytest.mark.gen_test(timeout=30)

HOOKS = """
exports.onSubscribe = ({ channel }) =>
  channel === 'sub-odd' ? { allow: false, reason: 'no \\ud800 entry' } : true;

exports.onPublish = ({ data }) => {
  switch (data) {
    case 'odd-data': return { data: { name: 'x\\udc00' } };
    case 'odd-key': return { data: { ['k\\ud800']: 1 } };
    case 'odd-reason': return { reject: 'bad \\udbff' };
  }
  return undefined;
};
"""

CHANNELS: dict[str, dict[str, Any]] = {
    "sub-*": {"hooks": ["subscribe"]},
    "pub-*": {"publish": True, "hooks": ["publish"]},
}


@pytest.fixture
def node(io_loop: tornado.ioloop.IOLoop) -> Iterator[HookedNode]:
    node = io_loop.run_sync(lambda: hooked_node(HookSettings(time_limit_seconds=2)))
    yield node
    io_loop.run_sync(node.close, timeout=10)


async def arrivals(transport: FakeTransport, count: int) -> list[dict[str, Any]]:
    await eventually(lambda: len(transport.frames) >= count, f"{count} frames")
    return transport.take()


def fazt_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR and record.name.startswith("fazt.realtime")
    ]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("odd-data", hook_verdicts.PUBLISH_FAILED),
        ("odd-key", hook_verdicts.PUBLISH_FAILED),
        ("odd-reason", hook_verdicts.PUBLISH_REJECTED),
    ],
)
async def test_a_hook_answer_strict_json_cannot_carry_is_refused_with_the_usual_text(
    node: HookedNode,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    data: str,
    text: str,
) -> None:
    app = hooked_app(tmp_path, HOOKS, CHANNELS)
    sender, ts = await node.world.connect(app, claims("ann"))
    reader, tr = await node.world.connect(app, claims("bob"))
    for session in (sender, reader):
        await node.world.send(session, {"type": "subscribe", "channel": "pub-room"})
    ts.take()
    tr.take()
    await node.world.send(sender, {"type": "message", "channel": "pub-room", "data": data})
    assert await arrivals(ts, 1) == [
        {"type": "error", "code": "rejected", "error": text, "channel": "pub-room"}
    ]
    # The lane moved on, and the other subscriber got nothing but the next message.
    await node.world.send(sender, {"type": "message", "channel": "pub-room", "data": "fine"})
    assert [m["data"] for m in await arrivals(tr, 1)] == ["fine"]
    assert fazt_errors(caplog) == []


async def test_a_subscribe_refusal_reason_strict_json_cannot_carry_gets_the_usual_text(
    node: HookedNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = hooked_app(tmp_path, HOOKS, CHANNELS)
    session, transport = await node.world.connect(app, claims("ann"))
    transport.take()
    await node.world.send(session, {"type": "subscribe", "channel": "sub-odd"})
    assert transport.take() == [
        {
            "type": "error",
            "code": "forbidden",
            "error": hook_verdicts.SUBSCRIBE_REFUSED,
            "channel": "sub-odd",
        }
    ]
    assert fazt_errors(caplog) == []

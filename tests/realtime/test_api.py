"""The server API: every argument checked once, with the same words from Python and JS."""

from __future__ import annotations

import pytest

from fazt.realtime.api import RealtimeAPIError
from fazt.realtime.limits import Limits
from tests.realtime.world import make_app, make_world


@pytest.mark.gen_test
async def test_kick_sends_kicked_then_closes_4003() -> None:
    w = await make_world()
    app = make_app()
    s, t = await w.connect(app)
    t.take()
    api = w.core.api(app)
    assert await api.kick("nobody", "x") is False
    assert await api.kick(s.client_id, "bye") is True
    assert t.take() == [{"type": "kicked", "reason": "bye"}]
    assert t.closed_with == (4003, "kicked")


@pytest.mark.gen_test
async def test_a_kick_reason_is_cut_to_its_bound() -> None:
    w = await make_world()
    app = make_app()
    s, t = await w.connect(app)
    t.take()
    assert await w.core.api(app).kick(s.client_id, "r" * 500) is True
    assert t.take() == [{"type": "kicked", "reason": "r" * 200}]


@pytest.mark.gen_test
async def test_subscribers_list_public_entries() -> None:
    w = await make_world()
    app = make_app()
    a, _ = await w.connect(app)
    await w.send(a, {"type": "subscribe", "channel": "news"})
    api = w.core.api(app)
    assert await api.subscribers("news") == [
        {"clientId": a.client_id, "connectedAt": 42, "metadata": {}}
    ]
    assert await api.count("news") == 1
    assert await api.count() == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda api: api.broadcast(None, 1), "channel is required"),
        (lambda api: api.broadcast(5, 1), "channel must be a string"),
        (lambda api: api.broadcast("bad name", 1), "invalid channel name"),
        (lambda api: api.broadcast("c", "x" * 2000), "over the 1024-byte limit"),
        (
            lambda api: api.broadcast("c", {1, 2}),
            "data must be strict JSON: a set, which JSON has no form for at data",
        ),
        (lambda api: api.broadcast("c", float("nan")), "strict JSON: a number that is not finite"),
        (lambda api: api.broadcast_all(float("inf")), "strict JSON: a number that is not finite"),
        (
            lambda api: api.broadcast("c", {"user": {"name": "\ud800"}}),
            "data must be strict JSON: a string that is not valid Unicode (lone surrogate) "
            "at data.user.name",
        ),
        (
            lambda api: api.broadcast_all({"\udc00": 1}),
            "data must be strict JSON: a key that is not valid Unicode (lone surrogate) "
            'at data["\\udc00"]',
        ),
        (
            lambda api: api.broadcast("c", [float("-inf")]),
            "data must be strict JSON: a number that is not finite at data[0]",
        ),
        (lambda api: api.broadcast("c", 10**5000), "data must be JSON-serialisable"),
        (lambda api: api.subscribers(None), "channel is required"),
        (lambda api: api.count(""), "invalid channel name"),
        (lambda api: api.count(7), "channel must be a string"),
        (lambda api: api.kick(None, "r"), "clientId is required"),
        (lambda api: api.kick(3, "r"), "clientId must be a string"),
        (lambda api: api.kick("", "r"), "clientId must be a non-empty string"),
        (lambda api: api.kick("id", 5), "reason must be a string"),
        (
            lambda api: api.kick("id", "bye \ud83d"),
            "reason must be strict JSON: a string that is not valid Unicode "
            "(lone surrogate) at reason",
        ),
    ],
)
@pytest.mark.gen_test
async def test_bad_arguments_are_refused_with_a_clear_sentence(call: object, message: str) -> None:
    w = await make_world(Limits(maxMessageSizeKB=1))
    api = w.core.api(make_app())
    with pytest.raises(RealtimeAPIError) as refused:
        await call(api)  # type: ignore[operator]
    assert message in str(refused.value)

"""fazt's own read path over real sockets: what a client sees, and what the hub sees.

The framing rules themselves are in ``test_frames.py`` (no sockets) and the
Autobahn-style cases in ``test_autobahn.py``; here: per-app limits, rate
limits, ordering, binary messages, the closing handshake in both directions,
peers that half-close or reset, and commands that wait (the Task path).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from fazt.realtime import connection as connection_module
from fazt.realtime.connection import WebSocketConnection
from fazt.realtime.session import Session
from fazt.realtime.transport import WriteCoalescer
from tests.realtime.rawws import client_frame, close_payload, open_raw, text
from tests.realtime.streams import read_until, socket_pair
from tests.realtime.wsclient import parse_server_frames, realtime_kernel

CLOSE = 0x8
ROOMS = {"realtime": {"channels": {"room-*": {"publish": True}}}}


async def until(predicate: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def count_disconnects(rt: Any) -> list[str]:
    """Wrap the core's disconnect: the client ids it ran for, in order."""
    commands = rt.plugin.core.commands
    original = commands.disconnect
    seen: list[str] = []

    async def counted(session: Session) -> None:
        seen.append(session.client_id)
        await original(session)

    commands.disconnect = counted
    return seen


@pytest.mark.gen_test(timeout=30)
async def test_the_apps_own_message_size_limit_closes_1009(tmp_path: Path) -> None:
    apps = {"chat": {"limits": {"realtime": {"maxMessageSizeKB": 1}}}, "big": {}}
    async with realtime_kernel(tmp_path, apps=apps) as rt:
        client, _ = await open_raw(rt.running.port, "/_app/chat/_ws")
        await client.send(text(b'{"type":"ping"}' + b" " * (1024 - 15)))
        assert json.loads(await client.json_frame()) == {"type": "pong"}
        # Fragments count as they accumulate: the third one passes the limit.
        await client.send(client_frame(0x1, b" " * 500, fin=False))
        await client.send(client_frame(0x0, b" " * 500, fin=False))
        await client.send(client_frame(0x0, b" " * 25, fin=True))
        ending = await client.ending()
        assert ending.close is not None and ending.close.close_code == 1009
        assert ending.close.payload[2:] == b"message too big" and ending.eof
        await client.close()
        # Another app keeps the kernel's limit (64 KB).
        other, _ = await open_raw(rt.running.port, "/_app/big/_ws")
        await other.send(text(b'{"type":"ping"}' + b" " * 60_000))
        assert json.loads(await other.json_frame()) == {"type": "pong"}
        await other.close()


@pytest.mark.gen_test(timeout=30)
async def test_rate_limit_and_order_hold_for_many_frames_in_one_recv(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, realtime={"limits": {"maxMessagesPerSecond": 20}}) as rt:
        client, _ = await open_raw(rt.running.port, "/_app/chat/_ws")
        burst = b"".join(text(json.dumps({"type": "ping", "n": n})) for n in range(60))
        await client.send(burst)  # one write: most of it arrives in one recv
        replies = [json.loads(await client.json_frame()) for _ in range(21)]
        assert replies[:20] == [{"type": "pong"}] * 20
        assert replies[20]["type"] == "error" and replies[20]["code"] == "rate_limited"
        with pytest.raises(asyncio.TimeoutError):
            await client.frame(timeout=0.3)  # the rest were dropped, and warned about once
        await client.close()


@pytest.mark.gen_test(timeout=30)
async def test_client_publishes_arrive_in_order(tmp_path: Path) -> None:
    config = {"limits": {"maxMessagesPerSecond": 10_000}}
    async with realtime_kernel(tmp_path, apps={"chat": ROOMS}, realtime=config) as rt:
        sender = await rt.client("chat")
        receiver = await rt.client("chat")
        for client in (sender, receiver):
            await client.subscribe("room-1")
        for n in range(500):
            await sender.send({"type": "message", "channel": "room-1", "data": n})
        got = await receiver.recv_many(500, timeout=20)
        assert [message["data"] for message in got] == list(range(500))
        assert await sender.nothing_within(0.05)  # never echoed to its sender


@pytest.mark.gen_test(timeout=30)
async def test_the_server_closes_and_the_client_answers(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        seen = count_disconnects(rt)
        client, hello = await open_raw(rt.running.port, "/_app/chat/_ws")
        client_id = json.loads(hello)["clientId"]
        assert await rt.plugin.api(rt.app("chat")).kick(client_id, "bye")
        kicked = await client.frame()
        assert json.loads(kicked.payload) == {"type": "kicked", "reason": "bye"}
        ending = await client.ending()  # answers the close; the server then closes TCP
        assert ending.close is not None and ending.close.close_code == 4003 and ending.eof
        await until(lambda: seen == [client_id])
        await asyncio.sleep(0.05)
        assert seen == [client_id]  # once
        await client.close()


@pytest.mark.parametrize("how", ["half-close", "reset", "close"])
@pytest.mark.gen_test(timeout=30)
async def test_a_peer_that_goes_away_is_released_once(tmp_path: Path, how: str) -> None:
    async with realtime_kernel(tmp_path) as rt:
        seen = count_disconnects(rt)
        client, hello = await open_raw(rt.running.port, "/_app/chat/_ws")
        client_id = json.loads(hello)["clientId"]
        await client.send(text(b'{"type":"subscribe","channel":"news"}'))
        assert json.loads(await client.json_frame())["type"] == "subscribed"
        session = rt.plugin.hub.session(rt.app("chat").uuid, client_id)
        assert session is not None and isinstance(session.transport, WebSocketConnection)
        connection = session.transport
        sock: socket.socket = client.writer.get_extra_info("socket")
        if how == "half-close":
            sock.shutdown(socket.SHUT_WR)  # EOF for the server; the client still reads
        elif how == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.writer.transport.abort()
        else:
            client.writer.close()
        await until(lambda: connection.released)
        await until(lambda: rt.plugin.hub.session(rt.app("chat").uuid, client_id) is None)
        api = rt.plugin.api(rt.app("chat"))
        await until(lambda: seen == [client_id])
        assert await api.count("news") == 0
        await api.broadcast("news", "nobody")  # a fan-out after the release: nothing breaks
        connection.close(1000, "")  # late calls on a released connection are no-ops
        connection.send_frame(b"\x81\x00")
        await asyncio.sleep(0.05)
        assert seen == [client_id]
        await client.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_client_that_never_answers_the_close_is_dropped(tmp_path: Path) -> None:
    class Quick(WebSocketConnection):
        close_timeout = 0.2

    original = connection_module.WebSocketConnection
    import fazt.realtime.direct_upgrade as direct_upgrade
    import fazt.realtime.upgrade as upgrade

    # Both ways in build the connection: fazt's own upgrade and the Tornado handler's.
    upgrade.WebSocketConnection = Quick  # type: ignore[misc]
    direct_upgrade.WebSocketConnection = Quick  # type: ignore[misc]
    try:
        async with realtime_kernel(tmp_path) as rt:
            client, hello = await open_raw(rt.running.port, "/_app/chat/_ws")
            client_id = json.loads(hello)["clientId"]
            await rt.plugin.api(rt.app("chat")).kick(client_id, "bye")
            ending = await client.ending(answer=False)
            assert ending.close is not None and ending.close.close_code == 4003
            assert ending.eof  # after close_timeout, without the client's answer
            await client.close()
    finally:
        upgrade.WebSocketConnection = original  # type: ignore[misc]
        direct_upgrade.WebSocketConnection = original  # type: ignore[misc]


# -- commands that wait: the Task path, without a server ---------------------------------------
class Recorder:
    """A ``receive`` whose commands wait (``asyncio.sleep``) and record their order."""

    def __init__(self, wait: float = 0.0, fail_on: str | None = None) -> None:
        self.wait = wait
        self.fail_on = fail_on
        self.started: list[str | bytes] = []
        self.finished: list[str | bytes] = []
        self.running = 0
        self.most_running = 0

    def __call__(self, session: Session, message: str | bytes) -> Coroutine[Any, Any, None]:
        return self.command(message)

    async def command(self, message: str | bytes) -> None:
        self.started.append(message)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.wait:
                await asyncio.sleep(self.wait)
            if message == self.fail_on:
                raise RuntimeError("boom")
        finally:
            self.running -= 1
        self.finished.append(message)


def attached(
    recorder: Recorder, inline: bool
) -> tuple[WebSocketConnection, socket.socket, list[Session]]:
    server, peer = socket_pair(sndbuf=1 << 16)
    connection = WebSocketConnection(server, 16, WriteCoalescer(), 1 << 16)
    gone: list[Session] = []
    session: Session = object()  # type: ignore[assignment]
    connection.attach(session, recorder, gone.append, inline)
    connection.start()
    return connection, peer, gone


@pytest.mark.parametrize("inline", [True, False])
@pytest.mark.gen_test(timeout=30)
async def test_waiting_commands_run_one_at_a_time_in_order(inline: bool) -> None:
    recorder = Recorder(wait=0.001)
    connection, peer, gone = attached(recorder, inline)
    messages = [f"m{n}" for n in range(200)]
    peer.sendall(b"".join(text(message) for message in messages))
    await until(lambda: len(recorder.finished) == 200)
    assert recorder.finished == messages and recorder.most_running == 1
    assert connection._reading  # paused past MAX_WAITING, resumed once drained
    peer.sendall(client_frame(CLOSE, close_payload(1000)))
    frames, _ = parse_server_frames(await read_until(peer, 4))
    assert frames == [(CLOSE, close_payload(1000))]
    await until(lambda: connection.released)
    assert len(gone) == 1
    peer.close()


@pytest.mark.gen_test(timeout=30)
async def test_inline_commands_that_finish_at_once_need_no_task() -> None:
    recorder = Recorder()
    connection, peer, gone = attached(recorder, inline=True)
    tasks_before = len(asyncio.all_tasks())
    peer.sendall(b"".join(text(f"m{n}") for n in range(100)))
    await until(lambda: len(recorder.finished) == 100)
    assert len(asyncio.all_tasks()) == tasks_before and connection._busy is None
    connection.abort()
    assert connection.released and len(gone) == 1
    peer.close()


@pytest.mark.parametrize("inline", [True, False])
@pytest.mark.gen_test(timeout=30)
async def test_a_command_that_raises_drops_the_connection(inline: bool, caplog: Any) -> None:
    recorder = Recorder(wait=0.001 if not inline else 0.0, fail_on="bad")
    connection, peer, gone = attached(recorder, inline)
    peer.sendall(text("ok") + text("bad") + text("never"))
    with caplog.at_level("ERROR", logger="fazt.realtime"):
        await until(lambda: connection.released)
    assert "a command failed" in caplog.text
    assert recorder.finished == ["ok"] and len(gone) == 1
    assert await read_until(peer, 1, seconds=0.5) == b""  # dropped without a handshake
    peer.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_ping_flood_from_a_client_that_never_reads_is_a_slow_consumer() -> None:
    recorder = Recorder()
    server, peer = socket_pair(sndbuf=4096)
    connection = WebSocketConnection(server, 16, WriteCoalescer(), 1 << 16)
    connection.attach(object(), recorder, lambda _session: None, True)  # type: ignore[arg-type]
    connection.start()
    flood = client_frame(0x9, b"p" * 125) * 2000
    peer.setblocking(False)
    sent = 0
    for _ in range(500):
        try:
            sent += peer.send(flood[sent:])
        except BlockingIOError:
            await asyncio.sleep(0.001)
        if connection.closing or sent == len(flood):
            break
    await until(lambda: connection.closing)
    assert connection.queued <= 16
    connection.abort()
    peer.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_client_close_is_answered_and_released_without_arming_the_close_clock() -> None:
    connection, peer, gone = attached(Recorder(), inline=True)
    armed: list[float] = []
    loop = asyncio.get_running_loop()
    original_call_later = loop.call_later

    def spying_call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        armed.append(delay)
        return original_call_later(delay, callback, *args)

    loop.call_later = spying_call_later  # type: ignore[method-assign]
    try:
        peer.sendall(client_frame(CLOSE, close_payload(1001)))
        frames, _ = parse_server_frames(await read_until(peer, 4))
        await until(lambda: connection.released)
    finally:
        del loop.call_later  # the instance attribute goes; the loop's own method is back
    assert frames == [(CLOSE, close_payload(1001))]  # the handshake is answered
    assert len(gone) == 1 and connection.close_code == 1001
    # Its answer written, the handshake is complete: nothing to wait for.
    assert connection.close_timeout not in armed
    peer.close()

"""The Redis bus: channel, app and node topics on Redis pub/sub.

Each node holds one Redis pub/sub connection (owned by its ``RedisLink``) and
SUBSCRIBEs to exactly the topics it needs: one per channel that has local
subscribers, and per app with local clients the app topic (``broadcastAll``)
and its own kick topic. There is no pattern subscription, so a node never
receives traffic it would throw away, apart from the echo of its own publishes
(Redis delivers a PUBLISH to every subscriber of the topic, the publisher
included); each message carries its sender's node id in an envelope,
``<node id>\\n<payload>``, and a node skips its own.

A numbered publication of a history channel has a longer envelope,
``<node id> <offset> <epoch> <exclude>\\n<payload>`` (``exclude``: the client
that must not receive it, ``-`` for none), and every node delivers it, the
publisher included: all nodes then fan a channel's publications out in the one
order Redis gave them, the order of their offsets. The Redis history store
publishes this envelope from its Lua script (``publication_envelope`` is the
same format).

Every publish goes through the link's ordered lane (``redis_lane``), so
Redis receives a node's messages in the order of its ``publish_*`` calls. A
publish is queued there and not waited for: ``publish_*`` return without a
round trip to Redis (the lane sends one write per loop turn for all of them).
``subscribe_channel`` returns once Redis confirmed the SUBSCRIBE.

While Redis is unreachable publishes are dropped at once and counted
(``RedisLink.dropped_messages``): nothing is queued, so memory stays bounded.
A kick addressed to this node itself is delivered locally, Redis or not.

Hostile or garbage data on the topics (bad envelopes, non-UTF-8 or non-JSON
payloads, bad kicks) is dropped and counted (``RedisLink.note_invalid``); it
never reaches the hub or crashes the node. Topic layout: ``redis_scripts``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Final

from fazt.contracts.strict_json import loads_without_constants
from fazt.realtime.backplane.bus import Bus, BusHandler
from fazt.realtime.backplane.callbacks import run_callback
from fazt.realtime.backplane.history import StreamPosition
from fazt.realtime.backplane.key_safety import check_app_uuid
from fazt.realtime.backplane.redis_link import RedisLink

log = logging.getLogger("fazt.realtime.backplane.redis")

#: Payloads larger than this found on a topic are dropped as invalid; the hub's
#: own messages are bounded far below it by ``maxMessageSizeKB``.
MAX_PAYLOAD_BYTES: Final = 1024 * 1024

# Topic kinds, kept in the node's topic table.
_CHANNEL, _APP, _KICK, _CONTROL = range(4)

#: ``exclude`` of a publication envelope when no client is excluded.
NO_EXCLUDE: Final = "-"


def publication_envelope(node_id: str, position: StreamPosition, exclude: str | None) -> bytes:
    """The head of a numbered publication's message on a channel topic (before the payload)."""
    return f"{node_id} {position.offset} {position.epoch} {exclude or NO_EXCLUDE}\n".encode()


def _publication_header(header: bytes) -> tuple[StreamPosition, str | None] | None:
    """``<node> <offset> <epoch> <exclude>`` parsed, or None when malformed."""
    fields = header.split(b" ")
    if len(fields) != 4 or not fields[1].isdigit() or not fields[2] or not fields[3]:
        return None
    try:
        epoch, exclude = fields[2].decode("ascii"), fields[3].decode("ascii")
    except UnicodeDecodeError:
        return None
    if not epoch.isprintable() or not exclude.isprintable():
        return None
    position = StreamPosition(int(fields[1]), epoch)
    return position, (None if exclude == NO_EXCLUDE else exclude)


class RedisBus(Bus):
    """One node's bus over ``link``; ``prefix`` starts every topic (see ``redis_scripts``)."""

    def __init__(self, link: RedisLink, *, node_id: str, prefix: str) -> None:
        self.link = link
        self.node_id = node_id
        self._prefix = prefix
        self._envelope_head = node_id.encode() + b"\n"
        self._handler: BusHandler | None = None
        #: topic -> (kind, app uuid, channel): every topic this node subscribes to.
        self._topics: dict[bytes, tuple[int, str, str]] = {}

    # -- topics -----------------------------------------------------------------
    def _channel_topic(self, app_uuid: str, channel: str) -> bytes:
        return channel_topic(self._prefix, app_uuid, channel)

    def _app_topic(self, app_uuid: str) -> bytes:
        return f"{self._prefix}:app:{app_uuid}:all".encode()

    def _kick_topic(self, app_uuid: str, node_id: str) -> bytes:
        return f"{self._prefix}:app:{app_uuid}:kick:{node_id}".encode()

    def _subscribed_topics(self) -> list[bytes]:
        return list(self._topics)

    # -- life cycle ---------------------------------------------------------------
    async def start(self, handler: BusHandler) -> None:
        if self._handler is not None:
            raise RuntimeError("bus already started")
        # The node's control topic carries no traffic; it keeps the subscriber
        # connection subscribed (and so open) while the node has no other topic.
        self._topics[f"{self._prefix}:node:{self.node_id}:ctl".encode()] = (_CONTROL, "", "")
        await self.link.acquire()
        try:
            await self.link.listen(self._dispatch, self._subscribed_topics)
        except BaseException:
            await self.link.release()
            raise
        self._handler = handler

    async def stop(self) -> None:
        self._handler = None
        await self.link.release()

    async def crash(self) -> None:
        """Simulate ``kill -9``: drop every connection to Redis at once. For tests."""
        self._handler = None
        await self.link.crash()

    # -- receiving ------------------------------------------------------------------
    def _dispatch(self, topic: bytes, data: bytes) -> None:
        """Route one pub/sub message to the handler; drop anything malformed."""
        route = self._topics.get(topic)
        if route is None:
            return  # a topic we just left; its last messages are moot
        kind, app_uuid, channel = route
        if kind == _KICK:
            self._dispatch_kick(app_uuid, data)
            return
        if kind == _CONTROL:
            return
        header, sep, payload = data.partition(b"\n")
        if not sep or not header:
            self.link.note_invalid("a message without a sender envelope")
            return
        publication = None
        if b" " in header:
            publication = _publication_header(header)
            if publication is None or kind != _CHANNEL:
                self.link.note_invalid("a malformed publication envelope")
                return
        elif header == self._envelope_head[:-1]:
            return  # our own publish, echoed back by Redis
        if not _is_json_object(payload):
            self.link.note_invalid("a payload that is not a UTF-8 JSON object")
            return
        if publication is not None:
            position, exclude = publication
            self._call(
                lambda h: h.deliver_publication(app_uuid, channel, payload, position, exclude)
            )
        elif kind == _CHANNEL:
            self._call(lambda h: h.deliver_channel(app_uuid, channel, payload))
        else:
            self._call(lambda h: h.deliver_app(app_uuid, payload))

    def _dispatch_kick(self, app_uuid: str, data: bytes) -> None:
        try:
            kick = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            kick = None
        if (
            not isinstance(kick, dict)
            or not isinstance(kick.get("clientId"), str)
            or not isinstance(kick.get("reason"), str)
        ):
            self.link.note_invalid("a malformed kick")
            return
        client_id: str = kick["clientId"]
        reason: str = kick["reason"]
        self._call(lambda h: h.kick_local(app_uuid, client_id, reason))

    def _call(self, action: Callable[[BusHandler], None]) -> None:
        handler = self._handler
        if handler is not None:
            run_callback(lambda: action(handler), node_id=self.node_id)

    # -- subscribing ------------------------------------------------------------------
    async def _subscribe(self, topics: dict[bytes, tuple[int, str, str]]) -> None:
        fresh = [topic for topic in topics if topic not in self._topics]
        self._topics.update(topics)
        # Also waits for a SUBSCRIBE of these topics that another call sent.
        await self.link.subscribe(fresh, wait_for=list(topics))

    async def _unsubscribe(self, topics: list[bytes]) -> None:
        gone = [topic for topic in topics if self._topics.pop(topic, None) is not None]
        await self.link.unsubscribe(gone)

    async def subscribe_channel(self, app_uuid: str, channel: str) -> None:
        check_app_uuid(app_uuid)
        await self._subscribe(
            {self._channel_topic(app_uuid, channel): (_CHANNEL, app_uuid, channel)}
        )

    async def unsubscribe_channel(self, app_uuid: str, channel: str) -> None:
        check_app_uuid(app_uuid)
        await self._unsubscribe([self._channel_topic(app_uuid, channel)])

    async def watch_app(self, app_uuid: str) -> None:
        check_app_uuid(app_uuid)
        # Waited for too: ``connected`` promises that this node receives the app's
        # messages (``broadcastAll``, kicks).
        await self._subscribe(
            {
                self._app_topic(app_uuid): (_APP, app_uuid, ""),
                self._kick_topic(app_uuid, self.node_id): (_KICK, app_uuid, ""),
            }
        )

    async def unwatch_app(self, app_uuid: str) -> None:
        check_app_uuid(app_uuid)
        await self._unsubscribe(
            [self._app_topic(app_uuid), self._kick_topic(app_uuid, self.node_id)]
        )

    # -- publishing -------------------------------------------------------------------
    async def _publish(self, topic: bytes, envelope: bytes) -> None:
        # Queued, not awaited: the caller's next step (its next command, the next
        # publish) does not wait for Redis's answer, and the lane counts a publish
        # lost after it was queued.
        if not self.link.ordered.send(b"PUBLISH", topic, envelope):
            self.link.note_dropped()

    async def publish_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        topic = self._channel_topic(check_app_uuid(app_uuid), channel)
        await self._publish(topic, self._envelope_head + payload)

    async def publish_publication(
        self,
        app_uuid: str,
        channel: str,
        payload: bytes,
        position: StreamPosition,
        exclude: str | None = None,
    ) -> None:
        topic = self._channel_topic(check_app_uuid(app_uuid), channel)
        await self._publish(topic, publication_envelope(self.node_id, position, exclude) + payload)

    async def publish_app(self, app_uuid: str, payload: bytes) -> None:
        topic = self._app_topic(check_app_uuid(app_uuid))
        await self._publish(topic, self._envelope_head + payload)

    async def send_kick(self, app_uuid: str, node_id: str, client_id: str, reason: str) -> bool:
        check_app_uuid(app_uuid)
        if node_id == self.node_id:
            # Our own client: no round trip through Redis (and it works during an outage).
            if self._kick_topic(app_uuid, node_id) not in self._topics:
                return False
            asyncio.get_running_loop().call_soon(
                self._call, lambda h: h.kick_local(app_uuid, client_id, reason)
            )
            return True
        kick = json.dumps({"clientId": client_id, "reason": reason})
        topic = self._kick_topic(app_uuid, node_id)
        receivers = await self.link.call(lambda client: client.publish(topic, kick), 0)
        return isinstance(receivers, int) and receivers > 0


def channel_topic(prefix: str, app_uuid: str, channel: str) -> bytes:
    """The pub/sub topic of a channel (the Redis history store publishes on it too)."""
    return f"{prefix}:app:{app_uuid}:ch:{channel}".encode()


def _is_json_object(payload: bytes) -> bool:
    """True when ``payload`` is the UTF-8 text of a JSON object (what clients can parse)."""
    if len(payload) > MAX_PAYLOAD_BYTES or not payload.startswith(b"{"):
        return False
    try:
        return isinstance(loads_without_constants(payload.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False

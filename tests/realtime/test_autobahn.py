"""Autobahn|Testsuite fuzzing-client cases, re-implemented for ``/_ws`` (no echo needed).

The ``autobahntestsuite`` package is Python 2 only, so the cases that do not
need an echo server are written here with a raw client (``rawws``) that can
send any frame, malformed ones included. Where Autobahn expects an echo, fazt's
answer stands in: a text or binary message holding ``{"type":"ping"}``
(padded with JSON whitespace to the size the case needs) is answered with
``{"type":"pong"}``, an empty or non-JSON one with an ``invalid_json`` error.
Each case lists what the server must send back, then how the connection must
end: open (checked with one more ping, then a clean 1000 close), or a close
frame with the expected code followed by the server closing TCP once the
client answered. Case numbers follow Autobahn's; ``docs/protocol.md`` has the
table of results.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.realtime.rawws import RawClient, client_frame, close_payload, open_raw, text
from tests.realtime.wsclient import realtime_kernel

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
LIMIT = 64 * 1024  # maxMessageSizeKB: 64 (the default)
PONG_REPLY = ("json", "pong")
JSON_ERROR = ("json", "error")
REALTIME = {"limits": {"maxMessagesPerSecond": 100_000}}


def ping_message(size: int = 15, extra: str = "") -> bytes:
    """``{"type":"ping"...}`` padded with spaces to ``size`` bytes."""
    body = ('{"type":"ping"' + (f',"x":"{extra}"' if extra else "") + "}").encode()
    assert len(body) <= size, (len(body), size)
    return body + b" " * (size - len(body))


def reply_for(size: int) -> tuple[str, str]:
    return PONG_REPLY if size >= 15 else JSON_ERROR


@dataclass
class Case:
    number: str
    frames: Sequence[bytes]
    replies: Sequence[tuple[str, object]] = ()
    close: int | None = None  # None: the connection stays open
    split: int | None = None  # send in pieces of this many bytes


@dataclass
class Group:
    cases: list[Case] = field(default_factory=list)

    def add(self, *args: object, **kwargs: object) -> None:
        self.cases.append(Case(*args, **kwargs))  # type: ignore[arg-type]


async def run_case(port: int, case: Case) -> None:
    client, hello = await open_raw(port, "/_app/chat/_ws")
    try:
        assert json.loads(hello)["type"] == "connected"
        await client.send(*case.frames, split=case.split)
        if case.close is None:
            for expected in case.replies:
                await check_reply(client, expected, case)
            await client.send(text(ping_message()))
            await check_reply(client, PONG_REPLY, case)
            await client.send(client_frame(CLOSE, close_payload(1000)))
        ending = await client.ending()
        got = [(frame.opcode, frame.payload) for frame in ending.frames]
        if case.close is not None:
            want = list(case.replies)
            assert len(got) == len(want), (case.number, got, want)
            for (opcode, payload), expected in zip(got, want, strict=True):
                assert describe(opcode, payload) == expected, (case.number, payload, expected)
        else:
            assert got == [], (case.number, got)
        assert ending.close is not None, f"{case.number}: no close frame"
        assert ending.close.close_code == (case.close or 1000), (case.number, ending.close)
        assert ending.eof, f"{case.number}: the server did not close the TCP connection"
    finally:
        await client.close()


def describe(opcode: int, payload: bytes) -> tuple[str, object]:
    if opcode == PONG:
        return ("pong", payload)
    message = json.loads(payload)
    return ("json", message["type"])


async def check_reply(client: RawClient, expected: tuple[str, object], case: Case) -> None:
    frame = await client.frame()
    assert describe(frame.opcode, frame.payload) == expected, (case.number, frame, expected)


async def run_group(tmp_path: Path, group: Group) -> None:
    async with realtime_kernel(tmp_path, realtime=REALTIME) as rt:
        for case in group.cases:
            await run_case(rt.running.port, case)


# -- 1: framing (text and binary messages of every length class) -------------------------------
def framing() -> Group:
    group = Group()
    sizes = [0, 125, 126, 127, 128, 65535, LIMIT]
    for index, size in enumerate(sizes, 1):
        group.add(f"1.1.{index}", [text(ping_message(size) if size else b"")], [reply_for(size)])
        group.add(
            f"1.2.{index}",
            [client_frame(BINARY, ping_message(size) if size else b"")],
            [reply_for(size)],
        )
    group.add("1.1.8", [text(ping_message(LIMIT))], [PONG_REPLY], split=997)
    group.add("1.2.8", [client_frame(BINARY, ping_message(LIMIT))], [PONG_REPLY], split=997)
    return group


@pytest.mark.gen_test(timeout=60)
async def test_autobahn_1_framing(tmp_path: Path) -> None:
    await run_group(tmp_path, framing())


# -- 2: pings and pongs -----------------------------------------------------------------------
def pings() -> Group:
    group = Group()
    group.add("2.1", [client_frame(PING)], [("pong", b"")])
    group.add("2.2", [client_frame(PING, b"Hello, world!")], [("pong", b"Hello, world!")])
    group.add(
        "2.3",
        [client_frame(PING, bytes([0, 255, 254, 253]))],
        [("pong", bytes([0, 255, 254, 253]))],
    )
    group.add("2.4", [client_frame(PING, b"*" * 125)], [("pong", b"*" * 125)])
    group.add("2.5", [client_frame(PING, b"*" * 126)], close=1002)
    group.add("2.6", [client_frame(PING, b"*" * 125)], [("pong", b"*" * 125)], split=1)
    group.add("2.7", [client_frame(PONG)])  # unsolicited pong: ignored
    group.add("2.8", [client_frame(PONG, b"unsolicited")])
    group.add("2.9", [client_frame(PONG, b"x"), client_frame(PING, b"y")], [("pong", b"y")])
    group.add(
        "2.10",
        [client_frame(PING, b"%d" % i) for i in range(10)],
        [("pong", b"%d" % i) for i in range(10)],
    )
    group.add(
        "2.11",
        [client_frame(PING, b"%d" % i) for i in range(10)],
        [("pong", b"%d" % i) for i in range(10)],
        split=1,
    )
    return group


@pytest.mark.gen_test(timeout=60)
async def test_autobahn_2_pings(tmp_path: Path) -> None:
    await run_group(tmp_path, pings())


# -- 3: reserved bits ---------------------------------------------------------------------------
def reserved_bits() -> Group:
    group = Group()
    group.add("3.1", [text(ping_message(), rsv=1)], close=1002)
    group.add(
        "3.2",
        [text(ping_message()), text(ping_message(), rsv=2), client_frame(PING)],
        [PONG_REPLY],
        close=1002,
    )
    group.add(
        "3.3",
        [text(ping_message()), text(ping_message(), rsv=3), client_frame(PING)],
        [PONG_REPLY],
        close=1002,
        split=1,
    )
    group.add(
        "3.4",
        [text(ping_message()), text(ping_message(), rsv=4), client_frame(PING)],
        [PONG_REPLY],
        close=1002,
        split=1,
    )
    group.add("3.5", [client_frame(BINARY, b"\x00\xff", rsv=5)], close=1002)
    group.add("3.6", [client_frame(PING, b"x", rsv=6)], close=1002)
    group.add("3.7", [client_frame(CLOSE, close_payload(1000), rsv=7)], close=1002)
    return group


@pytest.mark.gen_test(timeout=60)
async def test_autobahn_3_reserved_bits(tmp_path: Path) -> None:
    await run_group(tmp_path, reserved_bits())


# -- 4: reserved opcodes ------------------------------------------------------------------------
def opcodes() -> Group:
    group = Group()
    for index, opcode in enumerate((3, 4, 5, 6, 7), 1):
        group.add(
            f"4.1.{index}", [client_frame(opcode, b"" if index == 1 else b"reserved")], close=1002
        )
    for index, opcode in enumerate((0xB, 0xC, 0xD, 0xE, 0xF), 1):
        group.add(
            f"4.2.{index}", [client_frame(opcode, b"" if index == 1 else b"reserved")], close=1002
        )
    group.add(
        "4.1.3b",
        [text(ping_message()), client_frame(5), client_frame(PING)],
        [PONG_REPLY],
        close=1002,
    )
    group.add(
        "4.2.3b",
        [text(ping_message()), client_frame(0xD), client_frame(PING)],
        [PONG_REPLY],
        close=1002,
    )
    return group


@pytest.mark.gen_test(timeout=60)
async def test_autobahn_4_opcodes(tmp_path: Path) -> None:
    await run_group(tmp_path, opcodes())


# -- 5: fragmentation ---------------------------------------------------------------------------
def fragmentation() -> Group:
    group = Group()
    msg = ping_message(40)
    first, second = client_frame(TEXT, msg[:20], fin=False), client_frame(CONT, msg[20:])
    bfirst, bsecond = client_frame(BINARY, msg[:20], fin=False), client_frame(CONT, msg[20:])
    group.add("5.1", [client_frame(PING, b"a", fin=False), client_frame(CONT, b"b")], close=1002)
    group.add("5.2", [client_frame(PONG, b"a", fin=False), client_frame(CONT, b"b")], close=1002)
    group.add("5.3", [first, second], [PONG_REPLY])
    group.add("5.4", [first, second], [PONG_REPLY], split=1)
    group.add("5.5", [bfirst, bsecond], [PONG_REPLY], split=3)
    group.add("5.6", [first, client_frame(PING, b"p"), second], [("pong", b"p"), PONG_REPLY])
    group.add(
        "5.7", [first, client_frame(PING, b"p"), second], [("pong", b"p"), PONG_REPLY], split=1
    )
    group.add("5.8", [first, client_frame(PONG, b"q"), second], [PONG_REPLY], split=2)
    for index, fin in enumerate((False, True), 9):
        group.add(
            f"5.{index}", [client_frame(CONT, b"x", fin=fin), text(ping_message())], close=1002
        )
        group.add(
            f"5.{index}b",
            [client_frame(CONT, b"x", fin=fin), text(ping_message())],
            close=1002,
            split=1,
        )
    group.add(
        "5.15",
        [first, second, client_frame(CONT, b"x", fin=False), client_frame(CONT, b"y")],
        [PONG_REPLY],
        close=1002,
    )
    group.add(
        "5.16",
        [
            client_frame(CONT, b"a", fin=False),
            client_frame(TEXT, b"b", fin=False),
            client_frame(CONT, b"c"),
        ],
        close=1002,
    )
    group.add(
        "5.17",
        [client_frame(CONT, b"a"), client_frame(TEXT, b"b", fin=False), client_frame(CONT, b"c")],
        close=1002,
    )
    group.add("5.18", [first, client_frame(TEXT, msg[20:])], close=1002)
    pieces = [client_frame(TEXT, msg[:5], fin=False)]
    pieces += [client_frame(CONT, msg[i : i + 5], fin=False) for i in range(5, 35, 5)]
    with_pings = [
        pieces[0],
        client_frame(PING, b"1"),
        *pieces[1:],
        client_frame(PING, b"2"),
        client_frame(CONT, msg[35:]),
    ]
    group.add("5.19", with_pings, [("pong", b"1"), ("pong", b"2"), PONG_REPLY])
    group.add("5.20", with_pings, [("pong", b"1"), ("pong", b"2"), PONG_REPLY], split=4)
    return group


@pytest.mark.gen_test(timeout=60)
async def test_autobahn_5_fragmentation(tmp_path: Path) -> None:
    await run_group(tmp_path, fragmentation())


# -- 6: UTF-8 handling --------------------------------------------------------------------------
VALID = [
    "κόσμε",
    "\u0080",
    "\u07ff",
    "\u0800",
    "\uffff",
    "\U00010000",
    "\U0010ffff",
    "\ufffe",
    "\ue000",
]
INVALID = [
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",  # 6.3
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\x80",  # lone continuation byte
    b"\xbf",
    b"\xc0\xaf",  # overlong "/"
    b"\xe0\x80\xaf",
    b"\xf0\x80\x80\xaf",
    b"\xf8\x88\x80\x80\x80",  # five-byte form
    b"\xfc\x84\x80\x80\x80\x80",  # six-byte form
    b"\xed\xa0\x80",  # a surrogate
    b"\xed\xbf\xbf",
    b"\xc0",  # truncated
    b"\xe0\x80",
    b"\xfe",
    b"\xff",
]


def utf8() -> Group:
    group = Group()
    group.add(
        "6.1.1",
        [
            client_frame(TEXT, b"", fin=False),
            client_frame(CONT, b"", fin=False),
            client_frame(CONT, b""),
        ],
        [JSON_ERROR],
    )
    for index, sample in enumerate(VALID, 1):
        payload = ping_message(60, sample)
        group.add(f"6.2.{index}", [text(payload)], [PONG_REPLY])
        split = [
            client_frame(TEXT, payload[: 21 + index % 3], fin=False),
            client_frame(CONT, payload[21 + index % 3 :]),
        ]
        group.add(f"6.2.{index}f", split, [PONG_REPLY])
        group.add(f"6.2.{index}c", [text(payload)], [PONG_REPLY], split=1)
    for index, sample in enumerate(INVALID, 1):
        payload = b'{"type":"ping","x":"' + sample + b'"}'
        group.add(f"6.3.{index}", [text(payload)], close=1007)
        group.add(f"6.3.{index}c", [text(payload)], close=1007, split=1)
        fragments = [client_frame(TEXT, payload[:21], fin=False), client_frame(CONT, payload[21:])]
        group.add(f"6.3.{index}f", fragments, close=1007)
    # 6.4: fail fast, on the fragment where the bad bytes arrive, before the message ends.
    fail_fast = [
        client_frame(TEXT, "κόσμε".encode(), fin=False),
        client_frame(CONT, b"\xf4\x90\x80\x80", fin=False),
    ]
    group.add("6.4.1", fail_fast, close=1007)
    group.add("6.4.2", fail_fast, close=1007, split=1)
    return group


@pytest.mark.gen_test(timeout=60)
async def test_autobahn_6_utf8(tmp_path: Path) -> None:
    await run_group(tmp_path, utf8())


@pytest.mark.gen_test(timeout=30)
async def test_autobahn_6_4_fails_before_the_message_ends(tmp_path: Path) -> None:
    """The close comes while the fragmented message is still open (no final frame sent)."""
    async with realtime_kernel(tmp_path, realtime=REALTIME) as rt:
        client, _ = await open_raw(rt.running.port, "/_app/chat/_ws")
        await client.send(client_frame(TEXT, b'{"type":"ping","x":"', fin=False))
        await client.send(client_frame(CONT, b"\xce\xba\xed\xa0\x80", fin=False))
        ending = await client.ending()
        assert ending.close is not None and ending.close.close_code == 1007 and ending.eof
        await client.close()


# -- 7: close handling ----------------------------------------------------------------------------
def closing() -> Group:
    group = Group()
    bye = client_frame(CLOSE, close_payload(1000))
    group.add("7.1.1", [text(ping_message()), bye], [PONG_REPLY], close=1000)
    group.add("7.1.2", [bye, bye], close=1000)
    group.add("7.1.3", [bye, client_frame(PING, b"late")], close=1000)
    group.add("7.1.4", [bye, text(ping_message())], close=1000)
    group.add(
        "7.1.5",
        [client_frame(TEXT, b'{"type":', fin=False), bye, client_frame(CONT, b'"ping"}')],
        close=1000,
    )
    group.add(
        "7.1.6", [text(ping_message(60_000)), bye, client_frame(PING)], [PONG_REPLY], close=1000
    )
    group.add("7.3.2", [client_frame(CLOSE, b"\x03")], close=1002)
    group.add("7.3.3", [client_frame(CLOSE, close_payload(1000))], close=1000)
    group.add("7.3.4", [client_frame(CLOSE, close_payload(1000, b"Hello World!"))], close=1000)
    group.add("7.3.5", [client_frame(CLOSE, close_payload(1000, b"*" * 123))], close=1000)
    group.add("7.3.6", [client_frame(CLOSE, close_payload(1000, b"*" * 124))], close=1002)
    group.add(
        "7.5.1",
        [
            client_frame(
                CLOSE,
                close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
            )
        ],
        close=1007,
    )
    for index, code in enumerate(
        (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999), 1
    ):
        group.add(f"7.7.{index}", [client_frame(CLOSE, close_payload(code))], close=code)
    for index, code in enumerate((0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999), 1):
        group.add(f"7.9.{index}", [client_frame(CLOSE, close_payload(code))], close=1002)
    for index, code in enumerate((5000, 65535), 1):
        group.add(f"7.13.{index}", [client_frame(CLOSE, close_payload(code))], close=1002)
    return group


@pytest.mark.gen_test(timeout=60)
async def test_autobahn_7_closing(tmp_path: Path) -> None:
    await run_group(tmp_path, closing())


@pytest.mark.gen_test(timeout=30)
async def test_autobahn_7_3_1_an_empty_close_is_answered_with_an_empty_close(
    tmp_path: Path,
) -> None:
    async with realtime_kernel(tmp_path) as rt:
        client, _ = await open_raw(rt.running.port, "/_app/chat/_ws")
        await client.send(client_frame(CLOSE))
        ending = await client.ending(answer=False)
        assert ending.close is not None and ending.close.payload == b"" and ending.eof
        await client.close()


# -- 9: limits (maxMessageSizeKB, many messages) ---------------------------------------------
def limits() -> Group:
    group = Group()
    big = ping_message(LIMIT)
    group.add("9.1.1", [text(big)], [PONG_REPLY])
    group.add("9.1.2", [text(ping_message(LIMIT + 1))], close=1009)
    group.add("9.1.3", [text(b" " * (1 << 20))], close=1009)
    group.add("9.2.1", [client_frame(BINARY, big)], [PONG_REPLY])
    group.add("9.2.2", [client_frame(BINARY, b" " * (4 << 20))], close=1009)
    fragments = [client_frame(TEXT, big[:64], fin=False)]
    fragments += [client_frame(CONT, big[i : i + 64], fin=False) for i in range(64, LIMIT - 64, 64)]
    fragments.append(client_frame(CONT, big[LIMIT - 64 :]))
    group.add("9.3.1", fragments, [PONG_REPLY])
    group.add("9.4.1", [*fragments[:-1], client_frame(CONT, big[LIMIT - 64 :] + b" ")], close=1009)
    group.add("9.5.1", [text(big)], [PONG_REPLY], split=64)
    group.add("9.6.1", [client_frame(BINARY, big)], [PONG_REPLY], split=4096)
    group.add("9.7.1", [text(ping_message()) for _ in range(1000)], [PONG_REPLY] * 1000)
    group.add(
        "9.8.1", [client_frame(BINARY, ping_message(1000)) for _ in range(300)], [PONG_REPLY] * 300
    )
    return group


@pytest.mark.gen_test(timeout=90)
async def test_autobahn_9_limits(tmp_path: Path) -> None:
    await run_group(tmp_path, limits())


# -- and one that Autobahn leaves to the server side --------------------------------------------
def unmasked() -> Group:
    group = Group()
    group.add("unmasked.1", [text(ping_message(), masked=False)], close=1002)
    group.add(
        "unmasked.2",
        [text(ping_message()), client_frame(PING, masked=False)],
        [PONG_REPLY],
        close=1002,
    )
    return group


@pytest.mark.gen_test(timeout=30)
async def test_unmasked_client_frames_fail_with_1002(tmp_path: Path) -> None:
    await run_group(tmp_path, unmasked())

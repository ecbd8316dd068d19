"""The load clients' own logic: the SDK's reconnect policy and the frame reader.

The storm scenario is only honest if its clients come back exactly as the
browser SDK does, so the Python port is checked against ``sdk/src/policy.js``
itself (run by Node with the same random numbers). The frame reader is checked
against frames that ``websockets`` serialises, fed in every possible split.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import sdkpolicy
from websockets.frames import Frame, Opcode
from wsframes import CLOSE, PING, TEXT, FrameReader

POLICY_JS = Path(__file__).resolve().parents[2] / "sdk" / "src" / "policy.js"


def js_policy(randoms: list[float], attempts: list[int], codes: list[int]) -> dict:
    """backoff(attempt, {}, random) for each (attempt, random) and closePolicy(code), in Node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = f"""
import {{ backoff, closePolicy }} from {json.dumps(POLICY_JS.as_uri())};
const randoms = {json.dumps(randoms)}, attempts = {json.dumps(attempts)};
const delays = attempts.map((a, i) => backoff(a, {{}}, () => randoms[i]));
console.log(JSON.stringify({{ delays, policies: {json.dumps(codes)}.map(closePolicy) }}));
"""
    out = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict = json.loads(out.stdout)
    return result


def test_backoff_and_close_policy_match_the_sdk() -> None:
    rng = random.Random(7)
    attempts = [0, 0, 1, 2, 3, 5, 8, 10, 20, 31, 40, 1000] + [rng.randrange(12) for _ in range(40)]
    randoms = [0.0, 0.999999] + [rng.random() for _ in attempts[2:]]
    codes = [1000, 1006, 1009, 4000, 4001, 4003, 4099, 4100, 4101, 4199, 4200, 4201, 4299, 4300]
    js = js_policy(randoms, attempts, codes)
    mine = [sdkpolicy.backoff_ms(a, lambda r=r: r) for a, r in zip(attempts, randoms, strict=True)]
    assert mine == js["delays"]
    assert [sdkpolicy.close_policy(c) for c in codes] == js["policies"]


def test_backoff_bounds_and_first_reconnect() -> None:
    assert sdkpolicy.backoff_ms(0, lambda: 0.0) == 500
    assert sdkpolicy.backoff_ms(0, lambda: 0.999) == 999
    assert sdkpolicy.backoff_ms(50, lambda: 0.999) == 20000
    # "now" reconnects at once the first time only; "slow" starts two doublings up.
    assert sdkpolicy.reconnect_delay_ms(sdkpolicy.NOW, 0, lambda: 0.5) == 0
    assert sdkpolicy.reconnect_delay_ms(sdkpolicy.NOW, 1, lambda: 0.5) == 1000
    assert sdkpolicy.reconnect_delay_ms(sdkpolicy.SLOW, 0, lambda: 0.5) == 1500


def server_frames() -> tuple[bytes, list[tuple[int, bytes]]]:
    """Unmasked server frames of every length class, a fragmented text, control frames."""
    texts = [b"", b"x" * 125, b"y" * 126, b"z" * 65535, b"w" * 65536, '{"é":1}'.encode()]
    wire = b""
    expected: list[tuple[int, bytes]] = []
    for text in texts:
        wire += Frame(Opcode.TEXT, text).serialize(mask=False, extensions=[])
        expected.append((TEXT, text))
    parts = [b"frag", b"mented", b" text"]
    wire += Frame(Opcode.TEXT, parts[0], fin=False).serialize(mask=False, extensions=[])
    wire += Frame(Opcode.PING, b"are you there").serialize(mask=False, extensions=[])
    expected.append((PING, b"are you there"))  # a control frame may sit between fragments
    wire += Frame(Opcode.CONT, parts[1], fin=False).serialize(mask=False, extensions=[])
    wire += Frame(Opcode.CONT, parts[2]).serialize(mask=False, extensions=[])
    expected.append((TEXT, b"".join(parts)))
    close = Frame(Opcode.CLOSE, (4200).to_bytes(2, "big") + b"restart")
    wire += close.serialize(mask=False, extensions=[])
    expected.append((CLOSE, (4200).to_bytes(2, "big") + b"restart"))
    return wire, expected


def test_frame_reader_whole_and_split_at_random_points() -> None:
    wire, expected = server_frames()
    assert FrameReader().feed(wire) == expected
    rng = random.Random(3)
    for _ in range(20):
        reader, got, pos = FrameReader(), [], 0
        while pos < len(wire):
            step = rng.choice([3, 7, 100, 1000, 4096, 70000])
            got += reader.feed(wire[pos : pos + step])
            pos += step
        assert got == expected
        assert reader.buf == b""


def test_frame_reader_byte_by_byte_around_headers() -> None:
    wire, expected = server_frames()
    head = wire[: 2 * 1024]  # the small frames and the start of the big ones
    reader = FrameReader()
    got = [m for i in range(len(head)) for m in reader.feed(head[i : i + 1])]
    got += reader.feed(wire[len(head) :])
    assert got == expected


def test_the_paced_sender_sleeps_between_sends_on_uvloop() -> None:
    """Sub-millisecond intervals must not spin: uvloop fires shorter sleeps at once."""
    import time

    import uvloop
    from pacing import send_paced

    sends: list[tuple[int, float]] = []

    async def run() -> tuple[int, float, float]:
        cpu, wall = time.process_time(), time.monotonic()
        sent = await send_paced(2000, 4000.0, time.monotonic(), lambda i, t: sends.append((i, t)))
        return sent, time.process_time() - cpu, time.monotonic() - wall

    sent, cpu, wall = uvloop.run(run())
    assert sent == 2000
    assert [i for i, _ in sends] == list(range(2000))
    times = [t for _, t in sends]
    assert times == sorted(set(times))  # each send its own scheduled time, in order
    assert times[-1] - times[0] == pytest.approx(1999 / 4000)
    assert wall >= 0.45
    assert cpu < 0.5 * wall, f"the sender used {cpu:.2f} s of CPU in {wall:.2f} s"

"""No log line, at any level or status, holds the value of a ``token`` query parameter."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from fazt.edge.redaction import REDACTED, install_log_redaction, redact_query, redact_tokens
from fazt.kernel.tokens import TokenService
from tests.edge.processes import EdgeFaztProcess
from tests.harness import make_app, running_kernel
from tests.realtime.wsclient import open_client, upgrade_status

EDGE_PLUGIN = "tests.edge.edge_plugin:EdgeTestPlugin"
SECRET = "redaction-test-secret-0123456789abcdef"
#: Bad tokens: each a distinct string, so a leak names the request that leaked it.
BAD = [f"not-a-jwt-{n}-Zq9" for n in range(8)]
FILES = {
    "api/ok.js": "module.exports = async (req) => ({json: {x: req.query.x || null}});",
    "api/boom.js": "module.exports = async () => { throw new Error('the handler failed'); };",
}


def _apps(tmp_path: Path) -> Path:
    make_app(tmp_path / "apps", "chat", {}, FILES)
    return tmp_path / "apps"


def _config() -> dict[str, Any]:
    return {"plugins": ["realtime", EDGE_PLUGIN], "jwt": {"secret": SECRET}}


async def _exercise(base_url: str, ws_base: str, good: str) -> dict[str, int]:
    """Requests with tokens that end in 101, 200, 401, 404 and 500; returns the statuses."""
    client = AsyncHTTPClient()
    paths = {
        "ok": f"/_app/chat/api/ok?token={good}&x=1",
        "bad": f"/_app/chat/api/ok?token={BAD[0]}&x=2",
        "boom": f"/_app/chat/api/boom?token={good}",
        "missing": f"/_app/chat/nope?x=3&token={BAD[1]}",
        "raise": f"/_app/chat/_raise?token={BAD[2]}",
        "raise-encoded-name": f"/_app/chat/_raise?%74oken={BAD[3]}",
        "bad-jwt-shaped": f"/_app/chat/api/ok?token={good[:-4]}AAAA",
    }
    statuses: dict[str, int] = {}
    for name, path in paths.items():
        response = await client.fetch(base_url + path, raise_error=False)
        statuses[name] = response.code
    statuses["ws-bad"] = await upgrade_status(f"{ws_base}/_app/chat/_ws?token={BAD[4]}")
    statuses["ws-unknown-app"] = await upgrade_status(f"{ws_base}/_app/nope/_ws?token={BAD[5]}")
    ws = await open_client(f"{ws_base}/_app/chat/_ws?x=4&token={good}")
    await ws.close()
    statuses["ws-good"] = 101
    return statuses


EXPECTED = {
    "ok": 200,
    "bad": 401,
    "boom": 500,
    "missing": 404,
    "raise": 500,
    "raise-encoded-name": 500,
    "bad-jwt-shaped": 401,
    "ws-bad": 401,
    "ws-unknown-app": 101,
    "ws-good": 101,
}


def _secrets(good: str) -> list[str]:
    # The JWT-shaped bad token differs from the good one in its last 4 characters only.
    return [good, good[:-4], *BAD[:6]]


def _leaks(text: str, secrets: Sequence[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


@pytest.mark.gen_test(timeout=60)
async def test_no_log_record_holds_a_token_at_debug_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="tornado.access")
    async with running_kernel(_apps(tmp_path), data_dir=tmp_path / "d", config=_config()) as k:
        good = k.kernel.tokens.issue("alice")
        statuses = await _exercise(k.base_url, f"ws://127.0.0.1:{k.port}", good)
    assert statuses == EXPECTED
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = [formatter.format(record) for record in caplog.records]
    leaks = {text: _leaks(text, _secrets(good)) for text in texts if _leaks(text, _secrets(good))}
    assert not leaks, leaks
    joined = "\n".join(texts)
    # The access log keeps the path and the other parameters.
    assert f"200 GET /_app/chat/api/ok?token={REDACTED}&x=1 " in joined
    assert f"401 GET /_app/chat/api/ok?token={REDACTED}&x=2 " in joined
    assert f"404 GET /_app/chat/nope?x=3&token={REDACTED} " in joined
    assert f"101 GET /_app/chat/_ws?x=4&token={REDACTED} " in joined
    # Tornado's own report of the failing route, traceback included, is redacted too.
    assert "Uncaught exception GET /_app/chat/_raise?token=" in joined
    assert "RuntimeError: this route always fails" in joined


@pytest.mark.gen_test(timeout=90)
async def test_fazt_serve_at_debug_level_writes_no_token(tmp_path: Path) -> None:
    good = TokenService(SECRET.encode()).issue("alice")
    process = EdgeFaztProcess(
        _apps(tmp_path), data_dir=tmp_path / "d", config=_config(), log_level="DEBUG"
    )
    with process:
        statuses = await _exercise(process.base_url, f"ws://127.0.0.1:{process.port}", good)
    log = process.log_text()
    assert statuses == EXPECTED
    assert not _leaks(log, _secrets(good)), log
    assert f"GET /_app/chat/api/ok?token={REDACTED}&x=1 " in log
    assert f"101 GET /_app/chat/_ws?x=4&token={REDACTED} " in log
    assert " DEBUG " in log  # the level really was DEBUG


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /a?token=abc&x=1 (1.2.3.4)", f"GET /a?token={REDACTED}&x=1 (1.2.3.4)"),
        ("GET /a?x=1&token=abc", f"GET /a?x=1&token={REDACTED}"),
        ("GET /a?%74oken=abc&x=1", f"GET /a?%74oken={REDACTED}&x=1"),
        ("GET /a?TOKEN=abc", f"GET /a?TOKEN={REDACTED}"),
        (
            "uri='/a?token=ab\"c', version='HTTP/1.1'",
            f"uri='/a?token={REDACTED} version='HTTP/1.1'",
        ),
        ("token=abc", f"token={REDACTED}"),
        ("GET /a?mytoken=abc&tokens=def", "GET /a?mytoken=abc&tokens=def"),
        ("GET /a?token=", "GET /a?token="),
        ("no secrets here: a=b", "no secrets here: a=b"),
        ("bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl!", f"bearer {REDACTED}!"),
    ],
)
def test_redact_tokens(text: str, expected: str) -> None:
    assert redact_tokens(text) == expected


def test_redact_query_keeps_the_other_parameters_as_sent() -> None:
    assert redact_query("a=%20b&token=xyz&c") == f"a=%20b&token={REDACTED}&c"
    assert redact_query("token=x&token=y") == f"token={REDACTED}&token={REDACTED}"
    assert redact_query("") == ""


def test_records_are_redacted_whatever_the_logger_and_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("some.library")
    logger.debug("fetching %s", "/x?token=s3cret-1")
    try:
        raise ValueError("bad url /y?token=s3cret-2")
    except ValueError:
        logger.exception("failed")
    logger.warning("%s %s", "too few arguments")  # unformattable: arguments are dropped
    # The stack text quotes this very line, token and all.
    logger.info("stack", stack_info=True, extra={"quoted": "token=s3cret-3"})
    assert "s3cret" not in caplog.text
    assert f"/x?token={REDACTED}" in caplog.text
    assert f"bad url /y?token={REDACTED}" in caplog.text
    assert "log arguments dropped" in caplog.text

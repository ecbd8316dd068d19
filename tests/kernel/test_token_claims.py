"""Token claims are strict JSON, and time claims are numbers: where tokens enter and leave.

A claim value that strict UTF-8 JSON cannot carry (a lone surrogate, a number
that is not finite), or a time claim that is not a JSON number, is refused like
any invalid token: by ``TokenService.verify``, by ``/api`` (401), at the
``/_ws`` upgrade (401) and by an ``auth`` message (``unauthorized``); minting
one is refused naming the claim.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from fazt.contracts.app import App
from fazt.contracts.host_calls import HostCallContext, HostCallError
from fazt.kernel.auth_api import auth_namespace
from fazt.kernel.tokens import TokenError, TokenService
from tests.kernel.util import fetch, json_body
from tests.realtime.wsclient import realtime_kernel, upgrade_status

SECRET = b"k" * 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: str, secret: bytes = SECRET) -> str:
    """A well-signed HS256 token whose payload is exactly ``payload`` (JSON text)."""
    header = _b64(b'{"alg":"HS256","typ":"JWT"}')
    body = _b64(payload.encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def _exp() -> int:
    return int(time.time()) + 600


def bad_payloads() -> dict[str, str]:
    exp = _exp()
    return {
        "lone surrogate in name": f'{{"sub":"a","exp":{exp},"name":"\\ud800"}}',
        "lone surrogate in sub": f'{{"sub":"a\\udc80","exp":{exp}}}',
        "lone surrogate in a key": f'{{"sub":"a","exp":{exp},"info":{{"\\ud800":1}}}}',
        "1e400 in info": f'{{"sub":"a","exp":{exp},"info":{{"x":1e400}}}}',
        "NaN in info": f'{{"sub":"a","exp":{exp},"info":{{"x":NaN}}}}',
        "Infinity as a claim": f'{{"sub":"a","exp":{exp},"score":Infinity}}',
        "exp as a string": f'{{"sub":"a","exp":"{exp}"}}',
        "exp too large for a number": '{"sub":"a","exp":1e400}',
        "nbf as a string": f'{{"sub":"a","exp":{exp},"nbf":"1"}}',
        "nbf as a list": f'{{"sub":"a","exp":{exp},"nbf":[1]}}',
        "iat as a string": f'{{"sub":"a","exp":{exp},"iat":"x"}}',
        "iat as a boolean": f'{{"sub":"a","exp":{exp},"iat":true}}',
        # Deeper than Python's JSON decoder recurses (some pyjwt releases let that out).
        "claims nested 2,000 deep": f'{{"sub":"a","exp":{exp},"info":{"[" * 2000}{"]" * 2000}}}',
    }


@pytest.mark.parametrize("name", sorted(bad_payloads()))
def test_verify_refuses_claims_strict_json_cannot_carry(name: str) -> None:
    token = signed(bad_payloads()[name])
    with pytest.raises(TokenError) as raised:
        TokenService(SECRET).verify(token)
    str(raised.value).encode("ascii")  # the reason is safe to send to a client


def test_numbers_and_unicode_that_are_fine_pass() -> None:
    payload = json.dumps(
        {"sub": "zoë 😀", "exp": _exp() + 0.5, "iat": 1, "nbf": 1.5, "info": {"x": 1e300}}
    )
    claims = TokenService(SECRET).verify(signed(payload))
    assert claims["sub"] == "zoë 😀" and claims["info"] == {"x": 1e300}


@pytest.mark.parametrize(
    ("options", "claim"),
    [
        ({"name": "\ud800"}, "name"),
        ({"info": {"x": float("inf")}}, "info"),
        ({"info": {"nested": ["ok", "\udfff"]}}, "info"),
        ({"role": ["admin", "\ud83d"]}, "role"),
    ],
)
def test_issue_refuses_and_names_the_claim(options: dict[str, object], claim: str) -> None:
    with pytest.raises(TokenError, match=f"claim '{claim}' cannot be encoded as strict UTF-8 JSON"):
        TokenService(SECRET).issue("alice", **options)  # type: ignore[arg-type]


@pytest.mark.gen_test(timeout=10)
async def test_issue_token_from_js_rejects_naming_the_claim(tmp_path: Path) -> None:
    issue = auth_namespace(TokenService(SECRET))["issueToken"]
    context = HostCallContext(app=App("chat", "app_chat0001", tmp_path))
    with pytest.raises(HostCallError) as raised:
        # What JS sends for {sub: "a", info: {note: "\ud800"}}: JSON with the escape.
        await issue(context, json.loads('[{"sub": "a", "info": {"note": "\\ud800"}}]'))
    message = str(raised.value)
    assert message.startswith("fazt.auth.issueToken: claim 'info' cannot be encoded")
    assert "$.info.note" in message


@pytest.mark.gen_test(timeout=30)
async def test_such_tokens_are_refused_by_api_ws_upgrade_and_auth(tmp_path: Path) -> None:
    files = {"chat": {"api/me.js": "module.exports = (req) => ({ json: req.user });"}}
    config = {"jwt": {"secret": SECRET.decode()}}
    async with realtime_kernel(tmp_path, files=files, extra_config=config) as rt:
        anonymous = await rt.client("chat")
        api = rt.running.url("chat", "/api/me")
        for name, payload in bad_payloads().items():
            token = signed(payload)
            response = await fetch(api, headers={"Authorization": f"Bearer {token}"})
            assert response.code == 401, name
            assert json_body(response)["error"].startswith("invalid token: "), name
            assert await upgrade_status(f"{rt.url('chat')}?token={token}") == 401, name
            reply = await anonymous.request({"type": "auth", "token": token})
            assert reply["type"] == "error" and reply["code"] == "unauthorized", (name, reply)
        # A good token still works everywhere.
        good = signed(json.dumps({"sub": "alice", "exp": _exp()}))
        ok = await fetch(api, headers={"Authorization": f"Bearer {good}"})
        assert ok.code == 200 and json_body(ok)["sub"] == "alice"
        assert await upgrade_status(f"{rt.url('chat')}?token={good}") == 101
        reply = await anonymous.request({"type": "auth", "token": good})
        assert reply == {"type": "authenticated", "user": {"id": "alice"}}

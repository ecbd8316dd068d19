"""JWT attacks at the upgrade (HTTP 401) and through ``auth`` messages, and token expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.realtime.wsclient import Realtime, realtime_kernel, upgrade_status

APPS = {"chat": {}, "other": {}}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "mallory", "exp": int(time.time()) + 600, **extra}


def _hs256_with_key(key: bytes, claims: dict[str, Any]) -> str:
    """Hand-made HS256 token (pyjwt refuses to HMAC-sign with a PEM key)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


class Keys:
    def __init__(self, tmp_path: Path) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.pem_path = tmp_path / "public.pem"
        self.pem_path.write_bytes(self.public_pem)
        self.intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def attacks(rt: Realtime, keys: Keys) -> dict[str, str]:
    none_token = jwt.encode(_claims(), None, algorithm="none")  # type: ignore[arg-type]
    return {
        "alg none": none_token,
        "alg none, no signature part": none_token.rstrip("."),
        "wrong HS key": jwt.encode(_claims(), b"w" * 32, algorithm="HS256"),
        "wrong RS key": jwt.encode(_claims(), keys.intruder, algorithm="RS256"),
        "expired": rt.token("mallory", ttl_seconds=-30),
        "HS256 signed with the RS public key": _hs256_with_key(keys.public_pem, _claims()),
        "token for another app": rt.token("mallory", app="other"),
        "no sub": jwt.encode({"exp": int(time.time()) + 60}, b"w" * 32, algorithm="HS256"),
        "garbage": "a.b.c",
        "tampered payload": _tamper(rt.token("mallory")),
    }


def _tamper(token: str) -> str:
    header, _body, signature = token.split(".")
    body = _b64(json.dumps(_claims(sub="admin", role="admin")).encode())
    return f"{header}.{body}.{signature}"


def kernel_with_keys(tmp_path: Path, keys: Keys) -> Any:
    return realtime_kernel(
        tmp_path, APPS, extra_config={"jwt": {"publicKeyFiles": [str(keys.pem_path)]}}
    )


@pytest.mark.gen_test(timeout=30)
async def test_jwt_attacks_are_refused_at_the_upgrade_and_by_auth(tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    async with kernel_with_keys(tmp_path, keys) as rt:
        chat = rt.url("chat")
        anonymous = await rt.client("chat")
        for name, token in attacks(rt, keys).items():
            assert await upgrade_status(f"{chat}?token={token}") == 401, name
            reply = await anonymous.request({"type": "auth", "token": token})
            assert reply["type"] == "error" and reply["code"] == "unauthorized", (name, reply)
        # Still anonymous after every attempt.
        denied = await anonymous.request({"type": "subscribe", "channel": "private-x"})
        assert denied["code"] == "unauthorized"
        # The genuine tokens work: kernel HS256, configured RS256, this app's binding.
        good: list[str] = [
            rt.token("alice"),
            rt.token("alice", app="chat"),
            rt.token("alice", app=rt.app("chat").uuid),
            jwt.encode(_claims(sub="alice"), keys.private, algorithm="RS256"),
        ]
        for token in good:
            assert await upgrade_status(f"{chat}?token={token}") == 101
            reply = await anonymous.request({"type": "auth", "token": token})
            assert reply == {"type": "authenticated", "user": {"id": "alice"}}


@pytest.mark.gen_test(timeout=20)
async def test_token_expiry_on_an_open_connection(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, realtime={"pingIntervalSeconds": 60}) as rt:
        watcher = await rt.client("chat", rt.token("wat"))
        await watcher.subscribe("presence-room")
        token = rt.kernel.tokens.issue("eve", ttl_seconds=1)
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        eve = await rt.client("chat", token)
        for channel in ("private-eve", "presence-room", "public-news"):
            await eve.subscribe(channel)
        assert (await watcher.recv())["event"] == "join"
        # exp is whole seconds: wait for it (plus a sweep) without a fixed sleep.
        expiry = await eve.recv_many(3, timeout=exp - time.time() + 3)
        assert expiry == [
            {"type": "unsubscribed", "channel": "private-eve", "reason": "token_expired"},
            {"type": "unsubscribed", "channel": "presence-room", "reason": "token_expired"},
            {"type": "error", "code": "unauthorized", "error": "token expired"},
        ]
        assert await watcher.recv() == {
            "type": "presence",
            "channel": "presence-room",
            "event": "leave",
            "client": {"id": "eve"},
        }
        # Still connected, anonymous, public subscription intact.
        await rt.plugin.api(rt.app("chat")).broadcast("public-news", "still here")
        assert (await eve.recv())["data"] == "still here"
        denied = await eve.request({"type": "subscribe", "channel": "private-eve"})
        assert denied["code"] == "unauthorized"
        fresh = await eve.request({"type": "auth", "token": rt.token("eve")})
        assert fresh["type"] == "authenticated"
        await eve.subscribe("private-eve")


@pytest.mark.gen_test(timeout=20)
async def test_switching_user_drops_the_old_identity_subscriptions(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        client = await rt.client("chat", rt.token("ann"))
        await client.subscribe("private-ann")
        await client.subscribe("lobby")
        reply = await client.request({"type": "auth", "token": rt.token("ann")})
        assert reply["type"] == "authenticated"  # same user: nothing dropped
        await client.send({"type": "auth", "token": rt.token("ben")})
        assert await client.recv_many(2) == [
            {"type": "unsubscribed", "channel": "private-ann", "reason": "reauthenticated"},
            {"type": "authenticated", "user": {"id": "ben"}},
        ]
        assert await rt.plugin.api(rt.app("chat")).count("lobby") == 1

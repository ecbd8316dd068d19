"""``TokenService.verify`` with only the kernel secret (one ``jwt.decode``) answers as with
public keys configured too (the header read first): same claims, same refusals."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fazt.contracts.app import App
from fazt.kernel.tokens import PublicKey, TokenError, TokenService
from tests.kernel.test_token_claims import SECRET, signed

NOW = int(time.time())


def _unrelated_key() -> PublicKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey("ES256", pem)


def _answer(service: TokenService, token: str, app: App | None) -> object:
    try:
        return service.verify(token, app)
    except TokenError as error:
        return f"refused: {error}"


def _hs(claims: dict[str, object], secret: bytes = SECRET, **header: object) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=header or None)


CHAT = App(slug="chat", uuid="u-chat", root=Path("/nonexistent"))
TOKENS = [
    _hs({"sub": "alice", "exp": NOW + 60}),
    _hs({"sub": "alice", "exp": NOW + 60, "app": "chat", "role": ["a"]}, kid="k1"),
    _hs({"sub": "alice", "exp": NOW + 60, "app": "other"}),
    _hs({"sub": "alice", "exp": NOW - 60}),
    _hs({"sub": "alice"}),
    _hs({"exp": NOW + 60}),
    _hs({"sub": "alice", "exp": NOW + 60, "nbf": NOW + 600}),
    _hs({"sub": "alice", "exp": NOW + 60}, secret=b"x" * 32),
    _hs({"sub": 7, "exp": NOW + 60}),
    signed('{"sub":"alice","exp":1e400}'),
    signed('{"sub":"alice","exp":' + str(NOW + 60) + ',"name":"\\ud800"}'),
    "e30.e30.",
    "not a token",
    base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=") + ".e30.",
    jwt.encode({"sub": "alice", "exp": NOW + 60}, "k" * 48, algorithm="HS384"),
]


@pytest.mark.parametrize("token", TOKENS)
def test_only_the_secret_and_with_public_keys_give_the_same_answer(token: str) -> None:
    secret_only = TokenService(SECRET)
    with_keys = TokenService(SECRET, [_unrelated_key()])
    for app in (CHAT, None):
        assert _answer(secret_only, token, app) == _answer(with_keys, token, app)

"""JWT issuing and verification for the whole kernel (HTTP handlers and realtime).

Tokens are checked with pyjwt. HS256 tokens are signed with the kernel secret;
RS256/ES256 tokens are checked against configured public keys (PEM or JWKS).
The algorithm a token may use is decided by *which key would check it*, never
by the token alone, which rules out ``alg: none`` and the HS256-with-a-public-key
mix-up.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from fazt.contracts.app import App
from fazt.contracts.strict_json import StrictJsonError, check_strict_json

SECRET_ENV_VAR = "FAZT_JWT_SECRET"
SECRET_FILE_NAME = "jwt-secret"
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
REQUIRED_CLAIMS = ["exp", "sub"]
#: Registered claims that are times: JSON numbers (seconds since the epoch), nothing else.
TIME_CLAIMS = ("exp", "nbf", "iat")


class TokenError(Exception):
    """A token was refused. ``str(error)`` is a short reason safe to show clients."""


@dataclass(frozen=True)
class PublicKey:
    """A configured asymmetric verification key."""

    algorithm: str  # "RS256" or "ES256"
    key: Any  # what pyjwt accepts: PEM bytes or a PyJWK's key object
    kid: str | None = None


def load_secret(explicit: str | None, data_dir: Path) -> bytes:
    """The HS256 kernel secret: ``explicit``, else ``$FAZT_JWT_SECRET``, else a random
    secret created once in ``data_dir/jwt-secret`` (mode 0600). Never hard-coded."""
    if explicit:
        return explicit.encode()
    from_env = os.environ.get(SECRET_ENV_VAR)
    if from_env:
        return from_env.encode()
    return secret_file(data_dir / SECRET_FILE_NAME).encode()


def secret_file(path: Path) -> str:
    """The secret kept in ``path``: a random one (64 hex digits) written there once,
    mode 0600, then read back on every later call. Raises ``OSError``."""
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
    return secret


def load_public_keys(
    pem_files: Iterable[Path] = (), jwks_files: Iterable[Path] = ()
) -> list[PublicKey]:
    """Read PEM public keys and JWKS files into verification keys."""
    keys: list[PublicKey] = []
    for pem_path in pem_files:
        pem = pem_path.read_bytes()
        algorithm = "ES256" if b"BEGIN PUBLIC KEY" in pem and _is_ec_pem(pem) else "RS256"
        keys.append(PublicKey(algorithm=algorithm, key=pem))
    for jwks_path in jwks_files:
        document = json.loads(jwks_path.read_text(encoding="utf-8"))
        for jwk in jwt.PyJWKSet.from_dict(document).keys:
            algorithm = (
                jwk.algorithm_name
                if jwk.algorithm_name in ASYMMETRIC_ALGORITHMS
                else ("ES256" if jwk.key_type == "EC" else "RS256")
            )
            keys.append(PublicKey(algorithm=algorithm, key=jwk.key, kid=jwk.key_id))
    return keys


def _is_ec_pem(pem: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return isinstance(load_pem_public_key(pem), EllipticCurvePublicKey)


class TokenService:
    """Verifies tokens for an app and mints HS256 tokens with the kernel secret."""

    def __init__(
        self, secret: bytes, public_keys: Iterable[PublicKey] = (), leeway_seconds: float = 0
    ) -> None:
        self._secret = secret
        self._public_keys = list(public_keys)
        self._leeway = leeway_seconds

    def verify(self, token: str, app: App | None = None) -> dict[str, Any]:
        """Return the token's claims, or raise ``TokenError``.

        Checks: signature with the key matching the header's algorithm, ``exp``
        and ``sub`` present, ``exp`` in the future, claim types (``exp``, ``nbf``
        and ``iat`` JSON numbers; every claim strict UTF-8 JSON, see
        ``fazt.contracts.strict_json``), and when the token carries ``app``, that
        it names this app (slug or uuid).
        """
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise TokenError("malformed token")
        if not self._public_keys:
            # Only the kernel secret can check a token here, so a valid token is one
            # ``jwt.decode`` takes with HS256 alone: one pass over the token instead of
            # reading its header first. Whatever it refuses goes through the full
            # check below, which names the reason.
            try:
                claims = self._decode(token, self._secret, "HS256")
            except Exception:
                pass
            else:
                return self._accepted(claims, app)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise TokenError("malformed token") from error
        algorithm = header.get("alg")
        candidates = self._keys_for(algorithm, header.get("kid"))
        if not candidates:
            raise TokenError(f"algorithm not accepted: {algorithm!s:.20}")
        last_error: Exception | None = None
        for key in candidates:
            try:
                claims = self._decode(token, key, str(algorithm))
                break
            except jwt.ExpiredSignatureError as error:
                raise TokenError("token expired") from error
            except jwt.InvalidSignatureError as error:
                last_error = error
            except jwt.MissingRequiredClaimError as error:
                raise TokenError(f"token lacks the {error.claim!r} claim") from error
            except jwt.InvalidTokenError as error:
                raise TokenError(f"invalid token: {error}") from error
            except (TypeError, ValueError, OverflowError) as error:
                # Some pyjwt releases raise these for a time claim such as [1] or 1e400.
                raise TokenError("invalid token: malformed time claim") from error
            except RecursionError as error:
                # pyjwt before 2.9 lets json.loads' RecursionError out for claims
                # nested thousands of levels deep.
                raise TokenError("invalid token: claims nested too deeply") from error
        else:
            raise TokenError("bad signature") from last_error
        return self._accepted(claims, app)

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            options={"require": REQUIRED_CLAIMS, "verify_aud": False},
            leeway=self._leeway,
        )
        return claims

    @staticmethod
    def _accepted(claims: dict[str, Any], app: App | None) -> dict[str, Any]:
        """Claims with a valid signature and times: checked for types and the app."""
        _check_claim_types(claims)
        bound_app = claims.get("app")
        if bound_app is not None and (app is None or bound_app not in (app.slug, app.uuid)):
            raise TokenError("token is for another app")
        return claims

    def _keys_for(self, algorithm: object, kid: object) -> list[Any]:
        if algorithm == "HS256":
            return [self._secret]
        if algorithm in ASYMMETRIC_ALGORITHMS:
            return [
                key.key
                for key in self._public_keys
                if key.algorithm == algorithm and (kid is None or key.kid in (None, kid))
            ]
        return []

    def issue(
        self,
        sub: str,
        *,
        name: str | None = None,
        role: str | list[str] | None = None,
        info: Mapping[str, Any] | None = None,
        app: str | None = None,
        ttl_seconds: int = 3600,
        now: float | None = None,
    ) -> str:
        """Mint an HS256 token signed with the kernel secret.

        Raises ``TokenError`` naming the claim when a value is not strict UTF-8
        JSON (a lone surrogate, a non-finite number) or has the wrong type.
        """
        issued_at = int(time.time() if now is None else now)
        claims: dict[str, Any] = {"sub": sub, "iat": issued_at, "exp": issued_at + int(ttl_seconds)}
        if name is not None:
            claims["name"] = name
        if role is not None:
            claims["role"] = role
        if info is not None:
            claims["info"] = dict(info)
        if app is not None:
            claims["app"] = app
        _check_claim_types(claims)
        return jwt.encode(claims, self._secret, algorithm="HS256")


def roles_of(claims: Mapping[str, Any] | None) -> frozenset[str]:
    """The token's roles as a set (``role`` may be a string or a list)."""
    if not claims:
        return frozenset()
    role = claims.get("role")
    if isinstance(role, str):
        return frozenset([role])
    if isinstance(role, list):
        return frozenset(item for item in role if isinstance(item, str))
    return frozenset()


def _check_claim_types(claims: Mapping[str, Any]) -> None:
    for name, value in claims.items():
        try:
            check_strict_json({name: value})
        except StrictJsonError as error:
            raise TokenError(
                f"claim {name!r} cannot be encoded as strict UTF-8 JSON: {error}"
            ) from error
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TokenError(f"claim {name!r} must be a number")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 256:
        raise TokenError("claim 'sub' must be a non-empty string")
    if "name" in claims and not isinstance(claims["name"], str):
        raise TokenError("claim 'name' must be a string")
    role = claims.get("role")
    if role is not None and not (
        isinstance(role, str) or (isinstance(role, list) and all(isinstance(r, str) for r in role))
    ):
        raise TokenError("claim 'role' must be a string or a list of strings")
    if "info" in claims and not isinstance(claims["info"], dict):
        raise TokenError("claim 'info' must be an object")
    if "app" in claims and not isinstance(claims["app"], str):
        raise TokenError("claim 'app' must be a string")

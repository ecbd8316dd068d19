"""Presence members, pure: who a token says a client is.

A member is ``{"id": sub, "name": name, ...info}``; ``id`` and ``name`` always
come from the token's own claims, so ``info`` cannot impersonate another user.
Join/leave deduplication per user (several tabs, several nodes) is the
backplane registry's job (``Registry.presence_join``/``presence_leave``); the
``presence`` frame itself is built by ``protocol.presence_payload``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def member_from_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The presence member of an authenticated client."""
    info = claims.get("info")
    member: dict[str, Any] = dict(info) if isinstance(info, Mapping) else {}
    member["id"] = claims["sub"]
    name = claims.get("name")
    if isinstance(name, str):
        member["name"] = name
    else:
        member.pop("name", None)
    return member


def user_from_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The ``user`` object of ``connected``/``authenticated``: id, and name, role and
    info when the token has them."""
    user: dict[str, Any] = {"id": claims["sub"]}
    for key in ("name", "role", "info"):
        if key in claims:
            user[key] = claims[key]
    return user

"""The kernel's own JS namespace ``fazt.auth``: apps mint tokens for their users.

``fazt.auth.issueToken({sub, name?, role?, info?, ttlSeconds?})`` resolves to
an HS256 token signed with the kernel secret and *bound to the calling app*
(claim ``app`` = the caller's uuid), so one app can never mint a token that
another app accepts. The app decides who its users are (its own sign-in
handler); the kernel only signs. The namespace closes over the kernel's token
service, so a host call carries only the calling app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fazt.contracts.host_calls import HostCallContext, HostCallError, HostFunction
from fazt.kernel.tokens import TokenError, TokenService

DEFAULT_TTL_SECONDS = 3600
MAX_TTL_SECONDS = 30 * 24 * 3600
_ALLOWED_KEYS = frozenset({"sub", "name", "role", "info", "ttlSeconds"})


async def issue_token(tokens: TokenService, context: HostCallContext, args: list[Any]) -> str:
    """``fazt.auth.issueToken(options)``; rejects with a message naming the argument."""
    where = "fazt.auth.issueToken"
    if len(args) != 1 or not isinstance(args[0], dict):
        raise HostCallError(f"{where}: expects one options object {{sub, name?, role?, ...}}")
    options: dict[str, Any] = args[0]
    unknown = sorted(set(options) - _ALLOWED_KEYS)
    if unknown:
        raise HostCallError(f"{where}: unknown option {unknown[0]!r}")
    sub = options.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 256:
        raise HostCallError(f"{where}: sub must be a non-empty string (at most 256 characters)")
    name = options.get("name")
    if name is not None and not isinstance(name, str):
        raise HostCallError(f"{where}: name must be a string")
    role = options.get("role")
    if role is not None and not (
        isinstance(role, str) or (isinstance(role, list) and all(isinstance(r, str) for r in role))
    ):
        raise HostCallError(f"{where}: role must be a string or an array of strings")
    info = options.get("info")
    if info is not None and not isinstance(info, dict):
        raise HostCallError(f"{where}: info must be an object")
    ttl = options.get("ttlSeconds", DEFAULT_TTL_SECONDS)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_SECONDS:
        raise HostCallError(f"{where}: ttlSeconds must be an integer from 1 to {MAX_TTL_SECONDS}")
    try:
        return tokens.issue(
            sub, name=name, role=role, info=info, app=context.app.uuid, ttl_seconds=ttl
        )
    except TokenError as error:
        raise HostCallError(f"{where}: {error}") from error


def auth_namespace(tokens: TokenService) -> Mapping[str, HostFunction]:
    """The functions of ``fazt.auth``, signing with ``tokens``."""

    async def issue(context: HostCallContext, args: list[Any]) -> str:
        return await issue_token(tokens, context, args)

    return {"issueToken": issue}

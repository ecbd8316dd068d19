"""What a decision hook's return value means, pure: ``onSubscribe`` and ``onPublish``.

Both fail closed: a hook that threw, timed out, could not run, or returned
something that is not one of its answers refuses what it was asked about.

``onSubscribe({channel, clientId, user})``:

* ``true``, ``undefined`` or ``{allow: true}``: allowed;
* ``false`` or ``{allow: false, reason}``: refused (``forbidden``, with the
  reason when it is a non-empty string).

``onPublish({channel, clientId, user, data})``:

* ``undefined`` or ``true``: ``data`` is published as sent;
* ``{data: X}``: ``X`` is published instead;
* ``false`` or ``{reject: "reason"}``: refused (``rejected``, with the reason).

A reason is cut to ``MAX_HOOK_REASON`` characters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fazt.contracts.js_engine import ExportResult

#: The longest reason a hook can send a client (longer ones are cut).
MAX_HOOK_REASON: Final = 200

#: Texts a client gets when the hook gave no reason of its own.
SUBSCRIBE_REFUSED: Final = "the app does not allow this subscription"
SUBSCRIBE_FAILED: Final = "the app could not check this subscription"
PUBLISH_REJECTED: Final = "the app rejected this message"
PUBLISH_FAILED: Final = "the app could not check this message; it was not sent"
HOOKS_BUSY: Final = "too many hook calls are waiting for this app; try again later"


@dataclass(frozen=True)
class Verdict:
    """A decision hook's answer.

    ``allowed``: go ahead (for ``onPublish`` with ``data``); else ``reason`` is
    the text for the client. ``problem`` is set when the hook itself failed
    (threw, timed out, missing, a bad return value): what to log.
    """

    allowed: bool
    reason: str = ""
    data: Any = None
    problem: str | None = None


def _reason(value: object, default: str) -> str:
    if isinstance(value, str) and value.strip():
        return value[:MAX_HOOK_REASON]
    return default


def _shown(value: Any) -> str:
    """A short rendering of a bad return value, for the log."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _failed(result: ExportResult, reason: str) -> Verdict:
    return Verdict(False, reason, problem=result.error or result.outcome)


def subscribe_verdict(result: ExportResult | None) -> Verdict:
    """What ``onSubscribe`` answered; ``None`` means it could not be queued (busy)."""
    if result is None:
        return Verdict(False, HOOKS_BUSY, problem="too many hook calls waiting")
    if result.outcome != "returned":
        return _failed(result, SUBSCRIBE_FAILED)
    if result.undefined:
        return Verdict(True)
    value = result.value
    if isinstance(value, bool):
        return Verdict(True) if value else Verdict(False, SUBSCRIBE_REFUSED)
    if isinstance(value, Mapping) and isinstance(value.get("allow"), bool):
        if value["allow"]:
            return Verdict(True)
        return Verdict(False, _reason(value.get("reason"), SUBSCRIBE_REFUSED))
    return Verdict(
        False,
        SUBSCRIBE_FAILED,
        problem=f"returned {_shown(value)}; expected true, false, undefined or {{allow, reason}}",
    )


def publish_verdict(result: ExportResult | None, data: Any) -> Verdict:
    """What ``onPublish`` answered about ``data``; ``None`` means it could not be queued."""
    if result is None:
        return Verdict(False, HOOKS_BUSY, problem="too many hook calls waiting")
    if result.outcome != "returned":
        return _failed(result, PUBLISH_FAILED)
    if result.undefined:
        return Verdict(True, data=data)
    value = result.value
    if value is True:
        return Verdict(True, data=data)
    if value is False:
        return Verdict(False, PUBLISH_REJECTED)
    if isinstance(value, Mapping):
        if "reject" in value:
            return Verdict(False, _reason(value["reject"], PUBLISH_REJECTED))
        if "data" in value:
            return Verdict(True, data=value["data"])
    return Verdict(
        False,
        PUBLISH_FAILED,
        problem=f"returned {_shown(value)}; "
        "expected true, false, undefined, {data} or {reject}",
    )

"""Channel names, kinds and the per-channel rules of ``app.json``.

A channel name is 1 to ``MAX_CHANNEL_LENGTH`` (200) characters from
``CHANNEL_CHARACTERS``; this module is the one definition of both, quoted by the
protocol's error text, the manifest schema and ``docs/protocol.md``. A name is
only ever looked up inside its own app's state (the hub keeps one table per
app, and every backplane key and topic carries the app uuid), so a client name
containing ``:`` or another app's uuid only ever names a channel of its own app.

Rules come from ``app.json`` ``realtime.channels``: ``{PATTERN: {"auth": bool,
"role": str | [str], "publish": bool, "history": {"size": N, "ttlSeconds": T},
"hooks": [kind, ...]}}``. An exact name beats any glob; among globs (``*``
matches any run of characters) the longer pattern wins. Without a matching
rule, ``private-*`` and ``presence-*`` need authentication and every other
channel is public; clients may publish only where a rule says
``"publish": true``.

A pattern may contain one ``{sub}`` placeholder, e.g. ``private-user-{sub}``:
it matches like ``*`` (and ranks like a glob of its length), and then only a
client whose token ``sub`` equals the matched text may subscribe. That is how
an app gives every user a channel nobody else can read.

``history`` (opt-in) keeps the channel's recent publications, numbered, for
recovery and the ``history`` request: ``size`` 1-``MAX_HISTORY_SIZE``
publications for ``ttlSeconds`` 1-``MAX_HISTORY_TTL_SECONDS``. The kernel
config may cap both lower (``HistoryCaps``); a rule above a cap is clamped to
it and ``ChannelRules.clamped`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from fazt.kernel.tokens import roles_of

MAX_CHANNEL_LENGTH: Final = 200
#: The characters of a channel name, as a regular-expression character class body.
CHANNEL_CHARACTERS: Final = r"A-Za-z0-9_\-=@,.;:"
#: The same characters as the protocol's error text lists them.
CHANNEL_CHARACTERS_TEXT: Final = "A-Z a-z 0-9 _ - = @ , . ; :"
_NAME: Final = re.compile(f"[{CHANNEL_CHARACTERS}]{{1,{MAX_CHANNEL_LENGTH}}}")

#: The bounds of a rule's ``history`` (and the defaults of the kernel's caps).
MAX_HISTORY_SIZE: Final = 10_000
MAX_HISTORY_TTL_SECONDS: Final = 86_400

PRIVATE_PREFIX: Final = "private-"
PRESENCE_PREFIX: Final = "presence-"

#: What a rule's ``"hooks"`` may list: the kinds of ``api/_realtime.js`` hooks that
#: run for its channels (``hooks.HOOK_FUNCTIONS`` names their functions).
HOOK_KINDS: Final = ("subscribe", "publish", "presence", "occupancy")


def is_valid_channel_name(name: object) -> bool:
    """True for a string of 1 to ``MAX_CHANNEL_LENGTH`` allowed characters."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def rule_pattern_schema() -> dict[str, Any]:
    """JSON Schema of a rule pattern in ``app.json``: channel characters plus ``*``
    globs and at most one ``{sub}``, as long as a channel name may be."""
    part = f"[{CHANNEL_CHARACTERS}*]*"
    return {
        "minLength": 1,
        "maxLength": MAX_CHANNEL_LENGTH,
        "pattern": f"^{part}(\\{{sub\\}})?{part}$",
    }


def is_presence(name: str) -> bool:
    return name.startswith(PRESENCE_PREFIX)


def is_private(name: str) -> bool:
    return name.startswith(PRIVATE_PREFIX)


@dataclass(frozen=True, slots=True)
class HistoryRule:
    """A rule's ``history``: keep the newest ``size`` publications for ``ttl_seconds``."""

    size: int
    ttl_seconds: int


@dataclass(frozen=True, slots=True)
class HistoryCaps:
    """The kernel's caps on every rule's ``history`` (``realtime.history`` config)."""

    maxSize: int = MAX_HISTORY_SIZE
    maxTtlSeconds: int = MAX_HISTORY_TTL_SECONDS


def history_rule_schema() -> dict[str, Any]:
    """JSON Schema of a rule's ``history`` in ``app.json``."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["size", "ttlSeconds"],
        "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY_SIZE},
            "ttlSeconds": {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY_TTL_SECONDS},
        },
    }


def history_caps_schema() -> dict[str, Any]:
    """JSON Schema of the kernel config's ``realtime.history``."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "maxSize": {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY_SIZE},
            "maxTtlSeconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_HISTORY_TTL_SECONDS,
            },
        },
    }


@dataclass(frozen=True, slots=True)
class ChannelRule:
    """What it takes to subscribe to (and publish on) a channel, and its history."""

    auth: bool = False
    roles: frozenset[str] = frozenset()
    publish: bool = False
    #: For ``{sub}`` patterns: the user id the channel name belongs to.
    owner: str | None = None
    #: Keep the channel's publications (None: no history).
    history: HistoryRule | None = None
    #: The hook kinds (``HOOK_KINDS``) that run for the channel.
    hooks: frozenset[str] = frozenset()

    @property
    def needs_auth(self) -> bool:
        return self.auth or bool(self.roles) or self.owner is not None


# Rule decisions, returned as protocol error codes (None: allowed). Kept as plain
# strings so this module does not depend on the protocol module.
ALLOWED: Final = None


def check_access(rule: ChannelRule, claims: Mapping[str, Any] | None) -> str | None:
    """``None`` when a client with ``claims`` may subscribe, else ``"unauthorized"``
    (no token where one is needed) or ``"forbidden"`` (token lacks the role)."""
    if rule.needs_auth and not claims:
        return "unauthorized"
    if rule.roles and not (roles_of(claims) & rule.roles):
        return "forbidden"
    if rule.owner is not None and (claims or {}).get("sub") != rule.owner:
        return "forbidden"
    return ALLOWED


def access_refusal(rules: ChannelRules, name: str, claims: Mapping[str, Any] | None) -> str | None:
    """The one access decision for a channel, as ``check_access`` answers it, and
    presence channels always need a token (a member is a user).

    Used for a subscribe, and again for every subscription whenever the claims
    change (an ``auth``, a token expiry).
    """
    if is_presence(name) and not claims:
        return "unauthorized"
    return check_access(rules.rule_for(name), claims)


def _default_rule(name: str) -> ChannelRule:
    return ChannelRule(auth=is_private(name) or is_presence(name))


@dataclass(frozen=True, slots=True)
class _Glob:
    pattern: str
    regex: re.Pattern[str]
    rule: ChannelRule
    has_owner: bool


class ChannelRules:
    """The compiled rules of one app. ``rule_for`` is pure and cheap.

    ``clamped`` lists, one sentence each, the rules whose ``history`` went over
    ``caps`` and was lowered to them.
    """

    def __init__(
        self,
        rules: Mapping[str, Mapping[str, Any]] | None = None,
        caps: HistoryCaps | None = None,
    ) -> None:
        self._exact: dict[str, ChannelRule] = {}
        self.clamped: list[str] = []
        caps = caps or HistoryCaps()
        globs: list[_Glob] = []
        for pattern, spec in (rules or {}).items():
            if not isinstance(pattern, str) or not isinstance(spec, Mapping):
                continue  # the manifest schema refuses these; stay safe anyway
            rule = _rule_from(pattern, spec)
            history = _history_from(spec.get("history"))
            if history is not None:
                capped = HistoryRule(
                    min(history.size, caps.maxSize),
                    min(history.ttl_seconds, caps.maxTtlSeconds),
                )
                if capped != history:
                    self.clamped.append(
                        f"channel rule {pattern!r}: history size {history.size}, ttlSeconds "
                        f"{history.ttl_seconds} is over the kernel's realtime.history caps "
                        f"(maxSize {caps.maxSize}, maxTtlSeconds {caps.maxTtlSeconds}); "
                        f"using size {capped.size}, ttlSeconds {capped.ttl_seconds}"
                    )
                rule = replace(rule, history=capped)
            if "*" in pattern or OWNER_PLACEHOLDER in pattern:
                globs.append(
                    _Glob(pattern, _glob_regex(pattern), rule, OWNER_PLACEHOLDER in pattern)
                )
            else:
                self._exact[pattern] = rule
        # Longer globs first: "private-admin-*" beats "private-*" beats "*".
        globs.sort(key=lambda glob: len(glob.pattern), reverse=True)
        self._globs = tuple(globs)

    @classmethod
    def from_manifest(
        cls, realtime_section: Mapping[str, Any], caps: HistoryCaps | None = None
    ) -> ChannelRules:
        """Rules from an app's ``realtime`` manifest section (``{"channels": {...}}``)."""
        channels = realtime_section.get("channels")
        return cls(channels if isinstance(channels, Mapping) else None, caps)

    def rule_for(self, name: str) -> ChannelRule:
        rule = self._exact.get(name)
        if rule is not None:
            return rule
        for glob in self._globs:
            match = glob.regex.fullmatch(name)
            if match is not None:
                if glob.has_owner:
                    return replace(glob.rule, owner=match.group("owner"))
                return glob.rule
        return _default_rule(name)


OWNER_PLACEHOLDER: Final = "{sub}"


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` matches any run of characters; ``{sub}`` (at most once) a non-empty run
    captured as the channel's owner."""
    head, placeholder, tail = pattern.partition(OWNER_PLACEHOLDER)

    def star(text: str) -> str:
        return ".*".join(re.escape(part) for part in text.split("*"))

    if not placeholder:
        return re.compile(star(pattern))
    return re.compile(f"{star(head)}(?P<owner>.+?){star(tail)}")


def _history_from(spec: object) -> HistoryRule | None:
    """A rule's ``history`` (schema-checked by the manifest; garbage means none)."""
    if not isinstance(spec, Mapping):
        return None
    size, ttl = spec.get("size"), spec.get("ttlSeconds")
    for value in (size, ttl):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return None
    assert isinstance(size, int) and isinstance(ttl, int)
    return HistoryRule(min(size, MAX_HISTORY_SIZE), min(ttl, MAX_HISTORY_TTL_SECONDS))


def auth_false_never_holds(pattern: str, spec: Mapping[str, Any]) -> str | None:
    """Why ``"auth": false`` in this rule can never hold, or None.

    Presence needs a member (a user from a token), ``{sub}`` needs the token's
    ``sub`` and a role needs the token's roles, so such a rule needs a token
    whatever ``auth`` says.
    """
    if spec.get("auth") is not False:
        return None
    if is_presence(pattern):
        return "presence channels always need a token (each member is a signed-in user)"
    if OWNER_PLACEHOLDER in pattern:
        return "a {sub} pattern always needs a token (its sub names the channel's owner)"
    if spec.get("role"):
        return "a rule with a role always needs a token (the roles come from it)"
    return None


def _rule_from(pattern: str, spec: Mapping[str, Any]) -> ChannelRule:
    role = spec.get("role")
    roles: frozenset[str]
    if isinstance(role, str):
        roles = frozenset([role])
    elif isinstance(role, list):
        roles = frozenset(item for item in role if isinstance(item, str))
    else:
        roles = frozenset()
    auth = spec.get("auth")
    # A rule that does not say "auth" keeps the name's default (private-/presence-
    # need a token), so {"publish": true} on "private-*" does not open it up.
    needs = bool(auth) if isinstance(auth, bool) else (is_private(pattern) or is_presence(pattern))
    hooks = spec.get("hooks")
    kinds = frozenset(
        kind for kind in (hooks if isinstance(hooks, list) else ()) if kind in HOOK_KINDS
    )
    return ChannelRule(auth=needs, roles=roles, publish=spec.get("publish") is True, hooks=kinds)

"""``{sub}`` channel patterns: a channel only its owner (token ``sub``) may read."""

from fazt.realtime.channels import ChannelRules, check_access

RULES = ChannelRules(
    {
        "private-user-{sub}": {"auth": True},
        "private-*": {"auth": True},
        "inbox-{sub}-*": {},
    }
)


def test_owner_placeholder_admits_only_the_owner() -> None:
    rule = RULES.rule_for("private-user-alice")
    assert rule.owner == "alice"
    assert check_access(rule, {"sub": "alice"}) is None
    assert check_access(rule, {"sub": "bob"}) == "forbidden"
    assert check_access(rule, None) == "unauthorized"


def test_owner_placeholder_implies_auth_even_without_the_auth_key() -> None:
    rule = RULES.rule_for("inbox-bob-2024")
    assert rule.owner == "bob"
    assert rule.needs_auth
    assert check_access(rule, None) == "unauthorized"
    assert check_access(rule, {"sub": "bob"}) is None


def test_longer_pattern_wins_over_shorter_glob() -> None:
    # "private-user-{sub}" is longer than "private-*", so it decides.
    assert RULES.rule_for("private-user-x").owner == "x"
    assert RULES.rule_for("private-team").owner is None

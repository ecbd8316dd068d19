"""``fazt check``: every problem of every app, each with its JSON path and a reason in words."""

from __future__ import annotations

from pathlib import Path

from tests.cli.binary import run_fazt
from tests.harness import REPO_ROOT, make_app


def test_every_error_of_every_app_in_words(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "good", {"realtime": {"channels": {"room-*": {"auth": False}}}})
    make_app(
        apps,
        "typos",
        {
            "nmae": "Typos",
            "realtime": {
                "chanels": {},
                "channels": {"bad room": {}, "ok": {"auth": 1, "role": 5, "pubish": True}},
            },
        },
    )
    make_app(apps, "badslug", {"slug": "Not A Slug", "version": 3})
    done = run_fazt("check", "apps", cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    typos = Path("apps/typos/app.json")
    badslug = Path("apps/badslug/app.json")
    lines = done.stdout.splitlines()
    assert set(lines[:-1]) == {
        f"{badslug}: $.slug: the string 'Not A Slug' is not allowed: a slug is 1-63 lower-case "
        "letters, digits and '-', and does not start or end with '-'",
        f"{badslug}: $.version: must be a string, not the number 3",
        f"{typos}: $.nmae: unknown key 'nmae' (did you mean 'name'?); the keys allowed here: "
        "$schema, slug, uuid, name, description, version, limits, realtime",
        f"{typos}: $.realtime.chanels: unknown key 'chanels' (did you mean 'channels'?); "
        "the keys allowed here: channels",
        f"{typos}: $.realtime.channels['bad room']: the key 'bad room' is not allowed: a channel "
        "pattern may contain only letters, digits, _ - = @ , . ; : and the wildcard *, plus at "
        "most one {sub}",
        f"{typos}: $.realtime.channels.ok.auth: must be true or false, not the number 1",
        f"{typos}: $.realtime.channels.ok.role: must be a string or an array, not the number 5",
        f"{typos}: $.realtime.channels.ok.pubish: unknown key 'pubish' (did you mean "
        "'publish'?); the keys allowed here: auth, role, publish, history, hooks",
    }
    assert len(lines) == 9  # one line per problem, no repeats
    assert lines[-1] == "1 app(s) ok (good); 8 error(s) in 2 app(s) not served; 0 warning(s)"
    # No raw regex anywhere.
    assert "^[" not in done.stdout


def test_an_unknown_key_far_from_any_known_one_gets_no_guess(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "x", {"zzzz": 1})
    done = run_fazt("check", "apps", cwd=tmp_path)
    assert done.returncode == 1
    assert "$.zzzz: unknown key 'zzzz'; the keys allowed here:" in done.stdout
    assert "did you mean" not in done.stdout


def test_rules_that_can_never_hold_are_warnings(tmp_path: Path) -> None:
    channels = {
        "presence-*": {"auth": False},
        "private-user-{sub}": {"auth": False},
        "staff": {"auth": False, "role": "admin"},
        "room-*": {"auth": False},
    }
    make_app(tmp_path / "apps", "chat", {"realtime": {"channels": channels}})
    done = run_fazt("check", "apps", cwd=tmp_path)
    assert done.returncode == 0, done.stdout  # warnings do not fail the check
    manifest = Path("apps/chat/app.json")
    assert done.stdout.splitlines() == [
        f"{manifest}: $.realtime.channels['presence-*'].auth: warning: "
        '"auth": false never holds: presence channels always need a token (each member is a '
        "signed-in user)",
        f"{manifest}: $.realtime.channels['private-user-{{sub}}'].auth: warning: "
        '"auth": false never holds: a {sub} pattern always needs a token (its sub names the '
        "channel's owner)",
        f"{manifest}: $.realtime.channels.staff.auth: warning: "
        '"auth": false never holds: a rule with a role always needs a token (the roles come '
        "from it)",
        "1 app(s) ok (chat); 0 error(s); 3 warning(s)",
    ]


def test_broken_json_is_one_error_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "apps" / "broken").mkdir(parents=True)
    (tmp_path / "apps" / "broken" / "app.json").write_text('{"name": "x",,}')
    done = run_fazt("check", "apps", cwd=tmp_path)
    assert done.returncode == 1
    assert "$: invalid JSON: Expecting property name enclosed in double quotes at line 1" in (
        done.stdout
    )


def test_the_examples_pass(tmp_path: Path) -> None:
    done = run_fazt("check", str(REPO_ROOT / "examples"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines() == ["2 app(s) ok (chat, live-poll); 0 error(s); 0 warning(s)"]


def test_missing_folder(tmp_path: Path) -> None:
    done = run_fazt("check", "nowhere", cwd=tmp_path)
    assert done.returncode == 2
    assert "fazt: error: apps folder 'nowhere' does not exist" in done.stderr

"""``fazt check`` loads ``api/_realtime.js`` in the sandbox: every hook a rule names must exist."""

from __future__ import annotations

from pathlib import Path

from tests.cli.binary import run_fazt
from tests.harness import make_app

CHANNELS = {
    "room-*": {"publish": True, "hooks": ["subscribe", "publish"]},
    "presence-room-*": {"hooks": ["presence"]},
    "plain": {},
}


def test_a_hook_the_module_does_not_export_is_an_error_naming_it(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(
        apps,
        "chat",
        {"realtime": {"channels": CHANNELS}},
        {"api/_realtime.js": "exports.onSubscribe = () => true;\nexports.onJoin = () => {};\n"},
    )
    make_app(apps, "good", {"realtime": {"channels": {"plain": {}}}})
    done = run_fazt("check", "apps", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    manifest = Path("apps/chat/app.json")
    assert done.stdout.splitlines() == [
        f"{manifest}: $.realtime.channels['room-*'].hooks[1]: "
        "api/_realtime.js does not export onPublish",
        f"{manifest}: $.realtime.channels['presence-room-*'].hooks[0]: "
        "api/_realtime.js does not export onLeave",
        "1 app(s) ok (good); 2 error(s); 1 app(s) served with errors (chat); 0 warning(s)",
    ]


def test_every_named_hook_exported_is_ok(tmp_path: Path) -> None:
    source = (
        "module.exports = { onSubscribe() { return true; }, onPublish: async () => {},\n"
        "  onJoin() {}, onLeave() {} };\n"
    )
    make_app(
        tmp_path / "apps",
        "chat",
        {"realtime": {"channels": CHANNELS}},
        {"api/_realtime.js": source},
    )
    done = run_fazt("check", "apps", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["1 app(s) ok (chat); 0 error(s); 0 warning(s)"]


def test_a_module_that_fails_to_load_or_is_missing_is_an_error(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    manifest = {"realtime": {"channels": {"occ-*": {"hooks": ["occupancy"]}}}}
    make_app(apps, "broken", manifest, {"api/_realtime.js": "exports.onOccupied = (;"})
    make_app(apps, "throws", manifest, {"api/_realtime.js": "throw new Error('not today');"})
    make_app(apps, "absent", manifest)
    done = run_fazt("check", "apps", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert (
        f"{Path('apps/broken/app.json')}: $.realtime.channels: api/_realtime.js fails to load: "
        "api/_realtime.js:1:23: SyntaxError: unexpected token in expression: ';'"
    ) in lines
    assert (
        f"{Path('apps/throws/app.json')}: $.realtime.channels: api/_realtime.js fails to load: "
        "not today"
    ) in lines
    absent = Path("apps/absent/app.json")
    assert (
        f"{absent}: $.realtime.channels['occ-*'].hooks[0]: api/_realtime.js does not exist "
        "(it must export onOccupied)" in lines
    )
    assert (
        f"{absent}: $.realtime.channels['occ-*'].hooks[0]: api/_realtime.js does not exist "
        "(it must export onVacated)" in lines
    )
    assert lines[-1] == (
        "0 app(s) ok (none); 4 error(s); 3 app(s) served with errors (absent, broken, throws); "
        "0 warning(s)"
    )

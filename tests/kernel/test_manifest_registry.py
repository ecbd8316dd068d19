"""app.json validation, slugs and uuids: broken apps stay out, others keep running."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fazt.cli import main
from fazt.kernel.manifest import ManifestValidator, build_schema
from fazt.kernel.registry import UUID_STORE_NAME, AppStoreError, scan_apps
from tests.harness import make_app, running_kernel
from tests.kernel.sample_plugin import RecordingPlugin
from tests.kernel.util import fetch


def scan(apps: Path, data: Path) -> tuple[list[str], list[str]]:
    result = scan_apps(apps, data, ManifestValidator(build_schema()))
    errors = [f"{e.file.parent.name}|{e.json_path}|{e.reason}" for e in result.errors]
    return [app.slug for app in result.apps], errors


def test_bad_manifests_are_refused_one_by_one(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "good")
    make_app(apps, "typo", {"nmae": "x"})
    make_app(apps, "wrongtype", {"name": 42})
    make_app(apps, "badslug", {"slug": "Not A Slug"})
    make_app(apps, "badlimits", {"limits": {"nosuchplugin": {}}})
    (apps / "broken").mkdir()
    (apps / "broken" / "app.json").write_text('{"name": "x",,}')
    (apps / "array").mkdir()
    (apps / "array" / "app.json").write_text("[1]")
    (apps / "Upper Case").mkdir()
    (apps / "Upper Case" / "app.json").write_text("{}")
    (apps / "notanapp").mkdir()  # no app.json: silently not an app
    slugs, errors = scan(apps, tmp_path / "d")
    assert slugs == ["good"]
    by_folder = {line.split("|")[0]: line for line in errors}
    assert set(by_folder) == {
        "typo",
        "wrongtype",
        "badslug",
        "badlimits",
        "broken",
        "array",
        "Upper Case",
    }
    assert by_folder["typo"].startswith("typo|$.nmae|unknown key 'nmae' (did you mean 'name'?)")
    assert by_folder["wrongtype"] == "wrongtype|$.name|must be a string, not the number 42"
    assert by_folder["badslug"].startswith("badslug|$.slug|the string 'Not A Slug' is not allowed")
    assert by_folder["badlimits"].startswith(
        "badlimits|$.limits.nosuchplugin|unknown key 'nosuchplugin'"
    )
    assert by_folder["broken"].startswith("broken|$|invalid JSON: Expecting property name")
    assert "line 1 column" in by_folder["broken"]
    assert by_folder["array"] == "array|$|must be an object, not an array"
    assert "is not a valid slug" in by_folder["Upper Case"]


def test_uuid_is_stable_and_honours_app_json(tmp_path: Path) -> None:
    apps, data = tmp_path / "apps", tmp_path / "d"
    make_app(apps, "a")
    make_app(apps, "b", {"uuid": "app_FixedUuid123"})
    first = scan_apps(apps, data, ManifestValidator(build_schema()))
    uuids = {app.slug: app.uuid for app in first.apps}
    assert uuids["b"] == "app_FixedUuid123"
    assert uuids["a"].startswith("app_") and len(uuids["a"]) == 24
    stored = json.loads((data / UUID_STORE_NAME).read_text())
    assert stored == uuids
    again = scan_apps(apps, data, ManifestValidator(build_schema()))
    assert {app.slug: app.uuid for app in again.apps} == uuids
    # Another data folder: a new random uuid for a, the fixed one for b.
    elsewhere = scan_apps(apps, tmp_path / "other", ManifestValidator(build_schema()))
    other = {app.slug: app.uuid for app in elsewhere.apps}
    assert other["b"] == "app_FixedUuid123" and other["a"] != uuids["a"]


def test_duplicate_slug_refuses_the_second_and_a_uuid_pinned_twice_refuses_both(
    tmp_path: Path,
) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "alpha", {"uuid": "app_SameSame1"})
    make_app(apps, "beta", {"uuid": "app_SameSame1"})
    make_app(apps, "chat")
    make_app(apps, "zeta", {"slug": "chat"})
    slugs, errors = scan(apps, tmp_path / "d")
    # Neither owns the uuid, so load order must not pick one: both stay out.
    assert slugs == ["chat"]
    assert f"alpha|$.uuid|uuid 'app_SameSame1' is also pinned by {apps / 'beta'}" in "".join(errors)
    assert any(e.startswith("beta|$.uuid|uuid 'app_SameSame1' is also pinned by") for e in errors)
    assert any(e.startswith("zeta|$.slug|slug 'chat' is already used by") for e in errors)


def test_bad_uuid_pattern(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "a", {"uuid": "not-a-uuid"})
    _, errors = scan(tmp_path / "apps", tmp_path / "d")
    assert errors == [
        "a|$.uuid|the string 'not-a-uuid' is not allowed: an app uuid is 'app_' and 6-40 "
        "letters or digits"
    ]


def test_damaged_uuid_store_is_an_error(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "a")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / UUID_STORE_NAME).write_text("{oops")
    with pytest.raises(AppStoreError, match="unreadable app uuid store"):
        scan(tmp_path / "apps", tmp_path / "d")


@pytest.mark.gen_test(timeout=10)
async def test_kernel_logs_bad_app_and_serves_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "good", files={"index.html": "ok"})
    make_app(apps, "bad", {"name": ["x"]}, files={"index.html": "bad"})
    caplog.set_level(logging.ERROR, logger="fazt.kernel")
    async with running_kernel(apps, data_dir=tmp_path / "d", config={"plugins": []}) as k:
        assert (await fetch(k.url("good"))).body == b"ok"
        assert (await fetch(k.url("bad"))).code == 404
    lines = [r.getMessage() for r in caplog.records if "app not served" in r.getMessage()]
    assert lines == [
        f"app not served: {apps / 'bad' / 'app.json'}: $.name: must be a string, not an array"
    ]


@pytest.mark.gen_test(timeout=10)
async def test_uuid_stable_across_kernel_restarts(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    seen = []
    for _ in range(2):
        async with running_kernel(
            tmp_path / "apps", data_dir=tmp_path / "d", config={"plugins": []}
        ) as k:
            app = k.kernel.apps.by_slug("chat")
            assert app is not None
            seen.append(app.uuid)
    assert seen[0] == seen[1]


@pytest.mark.gen_test(timeout=10)
async def test_plugin_schema_parts(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(
        apps, "ok", {"recording": {"enabled": True}, "limits": {"recording": {"maxThings": 3}}}
    )
    make_app(apps, "badpart", {"recording": {"enabled": "yes"}})
    make_app(apps, "badlimit", {"limits": {"recording": {"maxThings": 0}}})
    async with running_kernel(
        apps, data_dir=tmp_path / "d", config={}, plugins=[RecordingPlugin()]
    ) as k:
        assert [app.slug for app in k.kernel.apps.all()] == ["ok"]
        ok = k.kernel.apps.by_slug("ok")
        assert ok is not None and ok.limits_for("recording") == {"maxThings": 3}
        assert ok.section("recording") == {"enabled": True}
        paths = {e.file.parent.name: e.json_path for e in k.kernel.manifest_errors}
        reasons = {e.file.parent.name: e.reason for e in k.kernel.manifest_errors}
        assert reasons == {
            "badpart": "must be true or false, not the string 'yes'",
            "badlimit": "must be at least 1, not the number 0",
        }
        assert paths == {
            "badpart": "$.recording.enabled",
            "badlimit": "$.limits.recording.maxThings",
        }


def test_fazt_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "good")
    config = tmp_path / "fazt.json"
    config.write_text(json.dumps({"plugins": []}))
    assert main(["check", str(apps), "--config", str(config)]) == 0
    assert "1 app(s) ok (good); 0 error(s)" in capsys.readouterr().out
    make_app(apps, "bad", {"slug": 7})
    assert main(["check", str(apps), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"{apps / 'bad' / 'app.json'}: $.slug: must be a string, not the number 7" in out
    assert "1 error(s)" in out
    assert main(["check", str(tmp_path / "missing"), "--config", str(config)]) == 2
    assert "does not exist" in capsys.readouterr().err

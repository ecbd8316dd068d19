"""An app cannot take another app's uuid by pinning it in app.json, whatever the load order.

The uuid is the identity tokens, channels and Redis keys are bound to: an app
that took a neighbour's uuid would accept the neighbour's tokens, and the
neighbour, silently given a new uuid, would refuse its own users' tokens.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fazt.cli import main
from fazt.kernel.manifest import ManifestValidator, build_schema
from fazt.kernel.registry import UUID_STORE_NAME, scan_apps
from tests.harness import make_app, running_kernel
from tests.kernel.util import fetch, json_body

ME = "module.exports = (req) => ({ json: { user: req.user && req.user.sub } });"


def remembered(data: Path) -> dict[str, str]:
    result: dict[str, str] = json.loads((data / UUID_STORE_NAME).read_text())
    return result


def first_run(tmp_path: Path) -> tuple[Path, Path, str]:
    """The victim, ``bank``, served once: its uuid is remembered in the data folder."""
    apps, data = tmp_path / "apps", tmp_path / "data"
    make_app(apps, "bank", files={"api/me.js": ME})
    scan_apps(apps, data, ManifestValidator(build_schema()))
    return apps, data, remembered(data)["bank"]


@pytest.mark.parametrize("attacker", ["aaa", "zzz"])  # loads before, or after, the victim
def test_a_pinned_uuid_remembered_for_another_slug_is_refused(
    tmp_path: Path, attacker: str
) -> None:
    apps, data, bank_uuid = first_run(tmp_path)
    make_app(apps, attacker, {"uuid": bank_uuid})
    result = scan_apps(apps, data, ManifestValidator(build_schema()))
    assert [(app.slug, app.uuid) for app in result.apps] == [("bank", bank_uuid)]
    (error,) = result.errors
    assert error.file == apps / attacker / "app.json" and error.json_path == "$.uuid"
    assert error.reason.startswith(
        f"uuid '{bank_uuid}' belongs to the app 'bank' ({data / UUID_STORE_NAME} remembers it)"
    )
    assert remembered(data) == {"bank": bank_uuid}  # the attacker's slug is not written


def test_renaming_an_app_that_pins_its_uuid_says_how_to_fix_it(tmp_path: Path) -> None:
    apps, data = tmp_path / "apps", tmp_path / "data"
    make_app(apps, "old", {"uuid": "app_Pinned0001"})
    scan_apps(apps, data, ManifestValidator(build_schema()))
    (apps / "old" / "app.json").write_text(json.dumps({"slug": "new", "uuid": "app_Pinned0001"}))
    result = scan_apps(apps, data, ManifestValidator(build_schema()))
    assert result.apps == []
    assert f"remove 'old' from {data / UUID_STORE_NAME}" in result.errors[0].reason
    # Once the operator does, the renamed app keeps its uuid.
    (data / UUID_STORE_NAME).write_text("{}")
    again = scan_apps(apps, data, ManifestValidator(build_schema()))
    assert [(app.slug, app.uuid) for app in again.apps] == [("new", "app_Pinned0001")]


def test_an_app_may_pin_the_uuid_remembered_for_itself(tmp_path: Path) -> None:
    apps, data, bank_uuid = first_run(tmp_path)
    (apps / "bank" / "app.json").write_text(json.dumps({"uuid": bank_uuid}))
    result = scan_apps(apps, data, ManifestValidator(build_schema()))
    assert [(app.slug, app.uuid) for app in result.apps] == [("bank", bank_uuid)]
    assert result.errors == []


@pytest.mark.gen_test(timeout=15)
async def test_the_victim_keeps_its_uuid_and_its_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    apps, data, bank_uuid = first_run(tmp_path)
    make_app(apps, "aaa", {"uuid": bank_uuid}, files={"api/me.js": ME})
    caplog.set_level(logging.ERROR, logger="fazt.kernel")
    async with running_kernel(apps, data_dir=data, config={"plugins": []}) as k:
        bank = k.kernel.apps.by_slug("bank")
        assert bank is not None and bank.uuid == bank_uuid
        assert k.kernel.apps.by_slug("aaa") is None
        token = k.kernel.tokens.issue("alice", app=bank_uuid)
        mine = await fetch(k.url("bank", "/api/me"), headers={"Authorization": f"Bearer {token}"})
        assert mine.code == 200 and json_body(mine) == {"user": "alice"}
        theirs = await fetch(k.url("aaa", "/api/me"), headers={"Authorization": f"Bearer {token}"})
        assert theirs.code == 404
    lines = [r.getMessage() for r in caplog.records if "app not served" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith(f"app not served: {apps / 'aaa' / 'app.json'}: $.uuid: uuid ")


def test_fazt_check_with_data_reports_it_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apps, data, bank_uuid = first_run(tmp_path)
    make_app(apps, "aaa", {"uuid": bank_uuid})
    make_app(apps, "fresh")  # a new app: check must not remember a uuid for it
    before = (data / UUID_STORE_NAME).read_bytes()
    assert main(["check", str(apps), "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{apps / 'aaa' / 'app.json'}: $.uuid: uuid '{bank_uuid}' belongs to the app 'bank'" in out
    )
    assert (data / UUID_STORE_NAME).read_bytes() == before
    # Without --data there is nothing to compare with: the pin is fine.
    assert main(["check", str(apps)]) == 0

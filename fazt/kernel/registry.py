"""The app registry: which folders are apps, their slugs and stable uuids.

Every folder directly under the apps root that holds an ``app.json`` is an
app. Its slug is ``app.json`` ``"slug"``, else the folder name; its uuid is
``app.json`` ``"uuid"`` when set (so nodes that share no data folder agree),
else the one remembered in ``<data_dir>/apps.json`` (slug -> uuid), else a new
``app_`` + random one that is written there before the app is served.

A uuid is an app's identity: its channels, its Redis keys and the tokens bound
to it. So a pinned ``"uuid"`` that ``apps.json`` remembers for another slug is
refused (that app is not served), whatever the order the folders load in, and
the app that owns it keeps it; so is a uuid that two apps pin and neither owns.
Folders are visited in name order; when two apps claim the same slug, the first
keeps it and the second is refused with a clear error. A refused app never
stops the others from loading.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import string
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fazt.contracts.app import App
from fazt.kernel.manifest import MANIFEST_NAME, ManifestError, ManifestValidator

log = logging.getLogger("fazt.kernel")

UUID_STORE_NAME = "apps.json"
SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
UUID_PATTERN = re.compile(r"^app_[A-Za-z0-9]{6,40}$")
_UUID_ALPHABET = string.ascii_letters + string.digits


class AppStoreError(Exception):
    """``<data_dir>/apps.json`` cannot be read or written; the kernel must not start."""


def new_app_uuid() -> str:
    """A fresh app uuid: ``app_`` + 20 random alphanumerics (~119 bits)."""
    return "app_" + "".join(secrets.choice(_UUID_ALPHABET) for _ in range(20))


@dataclass
class LoadResult:
    """What one scan of the apps root produced."""

    apps: list[App] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)


class UuidStore:
    """``<data_dir>/apps.json``: slug -> uuid, rewritten atomically on change."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / UUID_STORE_NAME

    def read(self) -> dict[str, str]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            # A damaged store must not silently hand out new uuids: that would
            # orphan every app's data. Refuse to start instead.
            raise AppStoreError(f"{self.path}: unreadable app uuid store: {error}") from error
        if not isinstance(document, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in document.items()
        ):
            raise AppStoreError(f"{self.path}: app uuid store must map slugs to uuid strings")
        return dict(document)

    def write(self, mapping: dict[str, str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".apps.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(mapping, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.replace(tmp, self.path)
        except OSError as error:
            raise AppStoreError(f"{self.path}: cannot write app uuid store: {error}") from error


@dataclass(frozen=True)
class _Candidate:
    """A folder with a valid manifest and a slug of its own, before its uuid is settled."""

    folder: Path
    manifest_path: Path
    manifest: dict[str, Any]
    slug: str

    @property
    def pinned_uuid(self) -> str | None:
        uuid = self.manifest.get("uuid")
        return uuid if isinstance(uuid, str) else None


def scan_apps(
    apps_dir: Path, data_dir: Path, validator: ManifestValidator, *, remember: bool = True
) -> LoadResult:
    """Load every app under ``apps_dir``; broken ones land in ``errors``.

    ``remember=False`` reads ``<data_dir>/apps.json`` but never writes it (for
    ``fazt check``).
    """
    result = LoadResult()
    if not apps_dir.is_dir():
        path = apps_dir
        result.errors.append(ManifestError(path, "$", "apps folder does not exist"))
        return result
    store = UuidStore(data_dir)
    known = store.read()
    candidates: list[_Candidate] = []
    slugs: dict[str, Path] = {}
    for folder in sorted(apps_dir.iterdir(), key=lambda p: p.name):
        manifest_path = folder / MANIFEST_NAME
        if folder.name.startswith(".") or not folder.is_dir() or not manifest_path.is_file():
            continue
        try:
            manifest = validator.load(manifest_path)
            slug = _slug_of(folder, manifest_path, manifest, slugs)
        except ManifestError as error:
            result.errors.append(error)
            continue
        slugs[slug] = folder
        candidates.append(_Candidate(folder, manifest_path, manifest, slug))

    uuids = _settle_uuids(candidates, known, store.path)
    remembered = dict(known)
    for candidate in candidates:
        uuid = uuids[candidate.slug]
        if isinstance(uuid, ManifestError):
            result.errors.append(uuid)
            continue
        remembered[candidate.slug] = uuid
        result.apps.append(
            App(
                slug=candidate.slug,
                uuid=uuid,
                root=candidate.folder.resolve(),
                manifest=candidate.manifest,
            )
        )
    if remember and remembered != known:
        store.write(remembered)
    return result


def _slug_of(
    folder: Path, manifest_path: Path, manifest: dict[str, Any], taken: dict[str, Path]
) -> str:
    slug = manifest.get("slug", folder.name)
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        raise ManifestError(
            manifest_path,
            "$.slug",
            f"folder name {folder.name!r} is not a valid slug (lower-case letters, digits and "
            "'-'); rename the folder or set \"slug\" in app.json",
        )
    if slug in taken:
        raise ManifestError(
            manifest_path, "$.slug", f"slug {slug!r} is already used by {taken[slug]}"
        )
    return slug


def _settle_uuids(
    candidates: list[_Candidate], known: dict[str, str], store_path: Path
) -> dict[str, str | ManifestError]:
    """Each candidate's uuid, or the error that keeps it out; independent of load order."""
    owners: dict[str, str] = {}  # uuid -> the slug apps.json remembers it for
    for slug, remembered_uuid in known.items():
        owners.setdefault(remembered_uuid, slug)
    pinned_by: dict[str, list[_Candidate]] = {}
    for candidate in candidates:
        if candidate.pinned_uuid is not None:
            pinned_by.setdefault(candidate.pinned_uuid, []).append(candidate)

    settled: dict[str, str | ManifestError] = {}
    taken: set[str] = set()
    for candidate in candidates:  # pinned uuids first: they are not negotiable
        uuid = candidate.pinned_uuid
        if uuid is None:
            continue
        owner = owners.get(uuid)
        if owner is not None and owner != candidate.slug:
            settled[candidate.slug] = ManifestError(
                candidate.manifest_path,
                "$.uuid",
                f"uuid {uuid!r} belongs to the app {owner!r} ({store_path} remembers it): an app "
                f"cannot take another app's uuid; if this app is {owner!r} renamed, remove "
                f"{owner!r} from {store_path}",
            )
        elif owner is None and len(pinned_by[uuid]) > 1:
            others = ", ".join(
                str(other.folder) for other in pinned_by[uuid] if other is not candidate
            )
            settled[candidate.slug] = ManifestError(
                candidate.manifest_path,
                "$.uuid",
                f"uuid {uuid!r} is also pinned by {others}: each app needs its own uuid",
            )
        else:
            settled[candidate.slug] = uuid
            taken.add(uuid)
    for candidate in candidates:
        if candidate.pinned_uuid is not None:
            continue
        kept = known.get(candidate.slug)
        fresh = kept if kept and UUID_PATTERN.match(kept) and kept not in taken else new_app_uuid()
        settled[candidate.slug] = fresh
        taken.add(fresh)
    return settled


class AppRegistry:
    """The loaded apps, looked up by slug or uuid. Replaced wholesale on reload."""

    def __init__(self, apps: list[App] | None = None) -> None:
        self._by_slug: dict[str, App] = {}
        self._by_uuid: dict[str, App] = {}
        self.replace(apps or [])

    def replace(self, apps: list[App]) -> None:
        """Swap in a new set of apps (the caller guarantees unique slugs/uuids)."""
        self._by_slug = {app.slug: app for app in apps}
        self._by_uuid = {app.uuid: app for app in apps}

    def by_slug(self, slug: str) -> App | None:
        return self._by_slug.get(slug)

    def by_uuid(self, uuid: str) -> App | None:
        return self._by_uuid.get(uuid)

    def all(self) -> list[App]:
        """Every served app, in slug order."""
        return [self._by_slug[slug] for slug in sorted(self._by_slug)]

    def __len__(self) -> int:
        return len(self._by_slug)

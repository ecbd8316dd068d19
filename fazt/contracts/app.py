"""The identity of one hosted app, as every layer of fazt sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class App:
    """One app: a folder under the apps root holding a valid ``app.json``.

    ``uuid`` (``app_`` + random) is stable across restarts and unique per app; it
    namespaces everything an app owns (channels, Redis keys, tokens). ``slug``
    is what users see in host names (``<slug>.<domain>``).
    """

    slug: str
    uuid: str
    root: Path
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def limits_for(self, plugin: str) -> dict[str, Any]:
        """The per-app limit overrides a plugin declared under ``app.json`` ``limits``."""
        limits = self.manifest.get("limits", {})
        part = limits.get(plugin, {}) if isinstance(limits, dict) else {}
        return dict(part) if isinstance(part, dict) else {}

    def section(self, key: str) -> dict[str, Any]:
        """A plugin's own top-level manifest section (e.g. ``realtime``), or ``{}``."""
        value = self.manifest.get(key, {})
        return dict(value) if isinstance(value, dict) else {}

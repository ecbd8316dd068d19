"""``app.json``: the shipped JSON Schema, plugin extensions, and clear errors.

The kernel part of the schema ships as ``app.schema.json`` (Draft 2020-12).
Plugins add top-level properties (``manifest_properties()``) and a
``limits.<plugin>`` part (``manifest_limits_schema()``). Unknown top-level keys
are refused, so a typo is an error rather than a silently ignored setting.

An invalid manifest yields one ``ManifestError`` naming the file, the JSON
path of the most relevant failure (``jsonschema.exceptions.best_match``) and
the reason.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from fazt.kernel.plugin import Plugin

MANIFEST_NAME = "app.json"
#: Largest app.json the kernel reads; a manifest is a few hundred bytes.
MAX_MANIFEST_BYTES = 256 * 1024


class ManifestError(Exception):
    """An ``app.json`` that cannot be served: ``file``, ``json_path``, ``reason``."""

    def __init__(self, file: Path, json_path: str, reason: str) -> None:
        super().__init__(f"{file}: {json_path}: {reason}")
        self.file = file
        self.json_path = json_path
        self.reason = reason


@cache
def base_schema() -> dict[str, Any]:
    """The kernel's own manifest schema, as shipped in the package."""
    text = resources.files("fazt.kernel").joinpath("app.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def build_schema(plugins: Iterable[Plugin] = ()) -> dict[str, Any]:
    """The full manifest schema: kernel part plus every plugin's parts."""
    schema = copy.deepcopy(base_schema())
    properties: dict[str, Any] = schema["properties"]
    limits: dict[str, Any] = properties["limits"]["properties"]
    for plugin in plugins:
        for key, part in plugin.manifest_properties().items():
            if key in properties:
                raise ValueError(f"plugin {plugin.name!r} redefines app.json property {key!r}")
            properties[key] = part
        limits_part = plugin.manifest_limits_schema()
        if limits_part is not None:
            limits[plugin.name] = limits_part
    Draft202012Validator.check_schema(schema)
    return schema


class ManifestValidator:
    """Reads and validates ``app.json`` files against one built schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._validator = Draft202012Validator(
            schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def load(self, path: Path) -> dict[str, Any]:
        """Parse and validate ``path``; raise ``ManifestError`` when it is unusable."""
        try:
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                raise ManifestError(path, "$", f"file larger than {MAX_MANIFEST_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ManifestError(path, "$", f"not UTF-8 text ({error.reason})") from error
        except OSError as error:
            raise ManifestError(path, "$", f"cannot read: {error.strerror}") from error
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            reason = f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
            raise ManifestError(path, "$", reason) from error
        self.check(path, document)
        manifest: dict[str, Any] = document
        return manifest

    def check(self, path: Path, document: Any) -> None:
        """Validate an already-parsed manifest; raise ``ManifestError``."""
        error = best_match(self._validator.iter_errors(document))
        if error is not None:
            raise ManifestError(path, error.json_path, error.message)

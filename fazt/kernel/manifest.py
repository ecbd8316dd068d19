"""``app.json``: the shipped JSON Schema, plugin extensions, and clear errors.

The kernel part of the schema ships as ``app.schema.json`` (Draft 2020-12).
Plugins add top-level properties (``manifest_properties()``) and a
``limits.<plugin>`` part (``manifest_limits_schema()``). Unknown top-level keys
are refused, so a typo is an error rather than a silently ignored setting.

An invalid manifest yields one ``ManifestError`` naming the file and *every*
problem in it (``problems``), each with its JSON path and a reason in words: an
unknown key gets a "did you mean" when a known key is close, and a failed
``pattern`` is explained by the schema's ``patternDescription`` annotation (what
the pattern allows) instead of the raw regex. ``json_path`` and ``reason`` of
the error itself are those of the most relevant problem
(``jsonschema.exceptions.best_match``). Warnings (``manifest_warnings``) are
settings that are valid but can never take effect; plugins name them through
``Plugin.manifest_warnings``. Errors of a valid app (``app_errors``) are what
its code lacks for its manifest, as plugins find it (``Plugin.app_errors``).
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from fazt.contracts.app import App
from fazt.contracts.js_engine import JsEngineLike
from fazt.kernel.plugin import Plugin

MANIFEST_NAME = "app.json"
#: Largest app.json the kernel reads; a manifest is a few hundred bytes.
MAX_MANIFEST_BYTES = 256 * 1024


#: The schema annotation that says in words what a ``pattern`` allows.
PATTERN_DESCRIPTION = "patternDescription"


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong (or, as a warning, pointless) in a manifest."""

    json_path: str
    reason: str


class ManifestError(Exception):
    """An ``app.json`` that cannot be served: ``file``, ``json_path``, ``reason``.

    ``problems`` lists every problem found, the most relevant one included;
    ``json_path`` and ``reason`` are that most relevant one.
    """

    def __init__(
        self,
        file: Path,
        json_path: str,
        reason: str,
        problems: Sequence[ManifestProblem] = (),
    ) -> None:
        super().__init__(f"{file}: {json_path}: {reason}")
        self.file = file
        self.json_path = json_path
        self.reason = reason
        self.problems = list(problems) or [ManifestProblem(json_path, reason)]


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
        """Validate an already-parsed manifest; raise ``ManifestError`` naming every problem."""
        errors = sorted(
            self._validator.iter_errors(document), key=lambda e: [str(p) for p in e.path]
        )
        if not errors:
            return
        problems = [problem for error in errors for problem in describe_error(error)]
        first = describe_error(best_match(errors))[0]
        raise ManifestError(path, first.json_path, first.reason, problems)


def manifest_warnings(
    manifest: Mapping[str, Any], plugins: Iterable[Plugin] = ()
) -> list[ManifestProblem]:
    """Settings of a valid manifest that can never take effect, as the plugins see them."""
    return [
        ManifestProblem(json_path, reason)
        for plugin in plugins
        for json_path, reason in plugin.manifest_warnings(manifest)
    ]


async def app_errors(
    app: App, js: JsEngineLike, plugins: Iterable[Plugin] = ()
) -> list[ManifestProblem]:
    """What keeps a valid app from working as its manifest says, as the plugins see it
    (``Plugin.app_errors``)."""
    return [
        ManifestProblem(json_path, reason)
        for plugin in plugins
        for json_path, reason in await plugin.app_errors(app, js)
    ]


# -- errors in words ------------------------------------------------------------------

#: What jsonschema's json_path writes as ``.key`` (anything else is ``['key']``).
_PLAIN_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")

_TYPE_WORDS = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def child_path(parent: str, key: str | int) -> str:
    """The JSON path of ``key`` under ``parent``, written as jsonschema writes it."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _PLAIN_KEY.match(key):
        return f"{parent}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{parent}['{escaped}']"


def json_type(value: Any) -> str:
    """The JSON type of a parsed value, in words (``the number 1``, ``a string``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return "an array" if isinstance(value, list) else "an object"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'channels'?)`` when a choice is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _expected_types(schema_type: Any) -> str:
    names = schema_type if isinstance(schema_type, list) else [schema_type]
    return " or ".join(_TYPE_WORDS.get(str(name), str(name)) for name in names)


def describe_error(error: ValidationError) -> list[ManifestProblem]:
    """One validation error as problems with a JSON path and a reason in words.

    An ``additionalProperties`` error becomes one problem per unknown key, at
    that key's path.
    """
    schema: Any = error.schema
    value = error.instance
    where = error.json_path
    validator = error.validator
    if validator == "additionalProperties" and isinstance(value, dict):
        known = list(schema.get("properties", {})) if isinstance(schema, dict) else []
        patterns = schema.get("patternProperties", {}) if isinstance(schema, dict) else {}
        unknown = [
            key
            for key in value
            if key not in known and not any(re.search(p, key) for p in patterns)
        ]
        allowed = ", ".join(known) if known else "none"
        return [
            ManifestProblem(
                child_path(where, key),
                f"unknown key {key!r}{did_you_mean(key, known)}; the keys allowed here: {allowed}",
            )
            for key in unknown
        ] or [ManifestProblem(where, str(error.message))]
    if "propertyNames" in error.relative_schema_path and isinstance(value, str):
        return [ManifestProblem(child_path(where, value), _name_reason(error, value))]
    return [ManifestProblem(where, _reason(error))]


def _name_reason(error: ValidationError, name: str) -> str:
    """Why a key (a ``propertyNames`` failure) is refused."""
    schema: Any = error.schema
    description = schema.get(PATTERN_DESCRIPTION) if isinstance(schema, dict) else None
    if error.validator == "pattern":
        if description:
            return f"the key {name!r} is not allowed: {description}"
        return f"the key {name!r} does not match the pattern {error.validator_value}"
    if error.validator in ("minLength", "maxLength"):
        return f"the key {name!r} must be {_length_words(error)}"
    return f"the key {name!r}: {error.message}"


def _length_words(error: ValidationError) -> str:
    limit = error.validator_value
    if error.validator == "minLength":
        return f"at least {limit} character(s) long"
    return f"at most {limit} characters long"


def _reason(error: ValidationError) -> str:
    schema: Any = error.schema
    value = error.instance
    validator = error.validator
    limit: Any = error.validator_value
    if validator == "type":
        return f"must be {_expected_types(limit)}, not {json_type(value)}"
    if validator == "pattern":
        description = schema.get(PATTERN_DESCRIPTION) if isinstance(schema, dict) else None
        if description:
            return f"{json_type(value)} is not allowed: {description}"
        return f"{json_type(value)} does not match the pattern {limit}"
    if validator in ("minLength", "maxLength"):
        return f"must be {_length_words(error)}, not {json_type(value)}"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "more than",
            "exclusiveMaximum": "less than",
        }[str(validator)]
        return f"must be {words} {limit}, not {json_type(value)}"
    if validator == "enum":
        return f"must be one of {', '.join(json.dumps(v) for v in limit)}, not {json_type(value)}"
    if validator == "required":
        missing = [key for key in limit if not isinstance(value, dict) or key not in value]
        return "missing required key(s): " + ", ".join(repr(key) for key in missing)
    if validator in ("oneOf", "anyOf") and error.context:
        types = [e.validator_value for e in error.context if e.validator == "type"]
        if len(types) == len(error.context):
            return f"must be {_expected_types(types)}, not {json_type(value)}"
        deepest = best_match(error.context)
        return _reason(deepest) if deepest is not None else str(error.message)
    return str(error.message)

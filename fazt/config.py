"""The kernel config file (JSON): load, validate, defaults.

Kernel keys are checked as soon as a config is loaded. Each enabled plugin's
section (``config[<plugin name>]``) is checked against that plugin's
``config_schema()`` when the kernel starts, because plugins attached with
``Kernel.use()`` are only known then. Unknown keys and bad values raise
``ConfigError`` whose message names the file, the JSON path and the reason.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

DEFAULT_PLUGINS = ("realtime",)


class ConfigSection(Protocol):
    """A plugin as the config sees it: a name and the schema of its section."""

    name: str

    def config_schema(self) -> dict[str, Any] | None: ...


_JWT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # pyjwt warns below 32 bytes for HS256 (RFC 7518 section 3.2).
        "secret": {"type": "string", "minLength": 32},
        "publicKeyFiles": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "jwksFiles": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "leewaySeconds": {"type": "number", "minimum": 0, "maximum": 300},
    },
    "additionalProperties": False,
}

_SANDBOX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "timeLimitSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
        "wallTimeLimitSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "memoryLimitMB": {"type": "integer", "minimum": 4, "maximum": 4096},
        "threads": {"type": "integer", "minimum": 1, "maximum": 64},
        "maxConcurrentPerApp": {"type": "integer", "minimum": 1, "maximum": 320},
        "maxQueuedPerApp": {"type": "integer", "minimum": 1, "maximum": 100_000},
        "consoleLimitKB": {"type": "integer", "minimum": 1, "maximum": 1_048_576},
    },
    "additionalProperties": False,
}

#: The HTTP edge: one key per limit, all optional.
#: The HTTP edge (``fazt.edge``): timeouts, the cap on connections that have not
#: finished their headers or upgrade, and the /api body limit. Defaults are the
#: ``KernelConfig.http_*`` properties.
_HTTP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # Bodies of /api requests; JSON is parsed in the sandbox, off the IOLoop.
        "maxBodyKB": {"type": "integer", "minimum": 1, "maximum": 65_536},
        "headerTimeoutSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "idleConnectionTimeoutSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
        "bodyTimeoutSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
        "maxPendingConnections": {"type": "integer", "minimum": 1, "maximum": 1000000},
    },
    "additionalProperties": False,
}

#: The kernel's own keys. Plugin sections are added by ``config_schema()``.
KERNEL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "address": {"type": "string", "minLength": 1},
        "domain": {"type": "string", "pattern": r"^[A-Za-z0-9.-]+$"},
        "data": {"type": "string", "minLength": 1},
        "plugins": {
            "type": "array",
            # An entry-point name, or "package.module:Class" for development.
            "items": {
                "type": "string",
                "pattern": r"^(?:[a-z][a-z0-9_]*|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$",
            },
            "uniqueItems": True,
        },
        "jwt": _JWT_SCHEMA,
        "sandbox": _SANDBOX_SCHEMA,
        "http": _HTTP_SCHEMA,
        "redis": {"type": ["string", "null"], "pattern": "^rediss?://"},
        "workers": {"type": "integer", "minimum": 1, "maximum": 256},
        # Host names that are the kernel's own (the app index, /_fazt/, /_app/<slug>/),
        # besides the bare domain, localhost and IP literals.
        "kernelHosts": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[A-Za-z0-9.-]+$"},
        },
    },
}


class ConfigError(Exception):
    """A config that the kernel refuses to start with; the message says why."""


def _validate(document: Any, schema: dict[str, Any], source: str) -> None:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    error = best_match(validator.iter_errors(document))
    if error is not None:
        raise ConfigError(f"{source}: {error.json_path}: {error.message}")


class KernelConfig:
    """A validated kernel config. Unset keys read as their defaults."""

    def __init__(self, data: Mapping[str, Any] | None = None, *, source: str = "config") -> None:
        raw = copy.deepcopy(dict(data or {}))
        self.source = source
        plugins = raw.get("plugins", list(DEFAULT_PLUGINS))
        # Kernel keys are checked now; any other key must name an enabled
        # plugin, checked against that plugin's schema in validate_plugins().
        schema = copy.deepcopy(KERNEL_SCHEMA)
        _validate(raw, schema, source)
        self._raw: dict[str, Any] = raw
        self.plugins: list[str] = list(plugins)

    @classmethod
    def from_file(cls, path: Path) -> KernelConfig:
        """Read a JSON config file; ``ConfigError`` for unreadable or invalid files."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{path}: cannot read config: {error.strerror}") from error
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{path}: invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
            ) from error
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: $: the config must be a JSON object")
        return cls(document, source=str(path))

    def with_overrides(self, overrides: Mapping[str, Any]) -> KernelConfig:
        """A new config with ``overrides`` (e.g. CLI flags) replacing keys; None is skipped."""
        merged = copy.deepcopy(self._raw)
        for key, value in overrides.items():
            if value is None:
                continue
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return KernelConfig(merged, source=self.source)

    def validate_plugins(self, plugins: Iterable[ConfigSection]) -> None:
        """Check the whole config with every enabled plugin's section schema.

        Refuses unknown top-level keys: anything that is neither a kernel key
        nor the name of an enabled plugin.
        """
        schema = copy.deepcopy(KERNEL_SCHEMA)
        schema["additionalProperties"] = False
        for plugin in plugins:
            part = plugin.config_schema()
            schema["properties"][plugin.name] = part if part is not None else {"type": "object"}
        _validate(self._raw, schema, self.source)

    def plugin_settings(self, name: str) -> dict[str, Any]:
        """The plugin's config section (validated at start), or ``{}``."""
        section = self._raw.get(name, {})
        return copy.deepcopy(section) if isinstance(section, dict) else {}

    @property
    def port(self) -> int:
        return int(self._raw.get("port", 8080))

    @property
    def address(self) -> str:
        return str(self._raw.get("address", "127.0.0.1"))

    @property
    def domain(self) -> str:
        return str(self._raw.get("domain", "localhost"))

    @property
    def data(self) -> Path:
        return Path(self._raw.get("data", ".fazt"))

    @property
    def redis_url(self) -> str | None:
        value = self._raw.get("redis")
        return str(value) if value else None

    @property
    def workers(self) -> int:
        return int(self._raw.get("workers", 1))

    @property
    def kernel_hosts(self) -> list[str]:
        return [str(host) for host in self._raw.get("kernelHosts", [])]

    @property
    def jwt(self) -> dict[str, Any]:
        return dict(self._raw.get("jwt", {}))

    def _setting(self, section: str, key: str, default: Any) -> Any:
        """``config[section][key]``, or ``default`` when either is unset."""
        return self._raw.get(section, {}).get(key, default)

    # -- sandbox: the JS engine (docs/js-handlers.md, Limits) --------------------

    @property
    def sandbox_time_limit_seconds(self) -> float:
        return float(self._setting("sandbox", "timeLimitSeconds", 5.0))

    @property
    def sandbox_wall_time_limit_seconds(self) -> float:
        return float(self._setting("sandbox", "wallTimeLimitSeconds", 10.0))

    @property
    def sandbox_memory_limit_mb(self) -> int:
        return int(self._setting("sandbox", "memoryLimitMB", 64))

    @property
    def sandbox_threads(self) -> int:
        return int(self._setting("sandbox", "threads", 2))

    @property
    def sandbox_max_concurrent_per_app(self) -> int:
        """Default: half the worker threads (at least one), so other apps keep the rest."""
        return int(
            self._setting("sandbox", "maxConcurrentPerApp", max(1, self.sandbox_threads // 2))
        )

    @property
    def sandbox_max_queued_per_app(self) -> int:
        return int(self._setting("sandbox", "maxQueuedPerApp", 100))

    @property
    def sandbox_console_limit_bytes(self) -> int:
        return int(self._setting("sandbox", "consoleLimitKB", 64)) * 1024

    # -- http: the HTTP edge --------------------------------------------------------

    @property
    def http_max_body_bytes(self) -> int:
        return int(self._setting("http", "maxBodyKB", 1024)) * 1024

    @property
    def http_header_timeout_seconds(self) -> float:
        return float(self._setting("http", "headerTimeoutSeconds", 10.0))

    @property
    def http_idle_connection_timeout_seconds(self) -> float:
        return float(self._setting("http", "idleConnectionTimeoutSeconds", 60.0))

    @property
    def http_body_timeout_seconds(self) -> float:
        return float(self._setting("http", "bodyTimeoutSeconds", 30.0))

    @property
    def http_max_pending_connections(self) -> int:
        return int(self._setting("http", "maxPendingConnections", 1000))

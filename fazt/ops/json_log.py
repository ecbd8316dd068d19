"""``--log-format json`` (config ``log.format``): one JSON object per log line.

Each line holds ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``,
``message`` and, where the record knows it, ``app`` (the app's slug: app logs
and the JS bridge pass it); an exception's traceback goes in ``exception``.
Tokens never reach the line: the process's log records are redacted when they
are made (``fazt.edge.redaction``), and the access log prints the query with
the token's value already replaced, so the JSON carries the redacted text.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        app = getattr(record, "app", None)
        if isinstance(app, str) and app:
            entry["app"] = app
        if record.exc_info and record.exc_info[0] is not None:
            # exc_text is set (and redacted) when the record was made with a token in it.
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json_logs(logger: logging.Logger | None = None) -> None:
    """Give every handler of ``logger`` (the root logger by default) the JSON format."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())

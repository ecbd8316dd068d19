"""``--log-format json``: one JSON object per line, tokens redacted, the app where known."""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path

from fazt.edge.redaction import install_log_redaction
from fazt.ops.json_log import JsonFormatter
from tests.harness import FaztProcess, make_app

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


def test_a_record_becomes_one_json_line_with_its_app_and_traceback() -> None:
    install_log_redaction()
    logger = logging.getLogger("fazt.test.json")
    try:
        raise ValueError(f"bad value ?token={JWT}")
    except ValueError:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "app failed for %s", ("bob",),
            sys.exc_info(), extra={"app": "chat"},
        )  # fmt: skip
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "fazt.test.json"
    assert entry["message"] == "app failed for bob" and entry["app"] == "chat"
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]
    assert "ValueError" in entry["exception"] and JWT not in line and "[redacted]" in line


def test_fazt_serve_logs_json_lines_and_redacts_tokens(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat", files={"index.html": "<p>hi</p>"})
    process = FaztProcess(
        tmp_path / "apps",
        data_dir=tmp_path / "data",
        config={"log": {"format": "json"}},
    )
    process.command = lambda: [  # type: ignore[method-assign]
        *FaztProcess.command(process)[:3], "--log-level", "DEBUG",
        *FaztProcess.command(process)[3:],
    ]  # fmt: skip
    with process:
        for path in (f"/_app/chat/?token={JWT}", "/_app/chat/api/missing"):
            try:
                urllib.request.urlopen(process.base_url + path, timeout=5).close()
            except urllib.error.HTTPError as error:
                error.close()
    lines = [line for line in process.log_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    access = [entry for entry in entries if entry["logger"] == "tornado.access"]
    assert any("token=[redacted]" in entry["message"] for entry in access), access
    assert JWT not in process.log_text()
    assert any(entry["logger"] == "fazt.kernel" for entry in entries)

"""Small helpers for kernel tests: raw HTTP fetches that never raise on 4xx/5xx."""

from __future__ import annotations

import json
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPResponse


async def fetch(url: str, **kwargs: Any) -> HTTPResponse:
    """Fetch without following redirects or raising on error statuses."""
    kwargs.setdefault("follow_redirects", False)
    kwargs.setdefault("raise_error", False)
    if "body" in kwargs and kwargs.get("method") is None:
        kwargs["method"] = "POST"
    return await AsyncHTTPClient().fetch(url, **kwargs)


def json_body(response: HTTPResponse) -> Any:
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return json.loads(response.body)

"""The access log line: Tornado's format, with the ``token`` value redacted from the query.

``tornado.web.Application(log_function=log_request)``. The line reads as
Tornado's own, ``101 GET /_app/chat/_ws?token=[redacted]&v=2 (127.0.0.1) 0.64ms``:
status, method, path and query as the client sent them except the token's
value, remote address, time taken. Below 400 it goes to ``tornado.access`` at
INFO, below 500 at WARNING, else at ERROR; nothing is formatted when that
level is off. Every request is also counted for ``fazt_http_requests_total``
(``fazt.metrics``), whatever the level.
"""

from __future__ import annotations

import logging

import tornado.httputil
import tornado.web
from tornado.log import access_log

from fazt.edge.redaction import redact_query
from fazt.metrics.requests import REQUESTS


def redacted_path_query(path: str, query: str) -> str:
    """``path?query`` (just ``path`` without a query), the ``token`` value replaced."""
    return f"{path}?{redact_query(query)}" if query else path


def log_request(handler: tornado.web.RequestHandler) -> None:
    # Counted by the app the handler serves (its ``app``), else as no app: a slug from
    # the Host header would let any client invent label values.
    request = handler.request
    log_answer(
        getattr(getattr(handler, "app", None), "slug", ""),
        handler.get_status(),
        request.method or "",
        request.path,
        request.query,
        request.remote_ip or "",
        request.request_time(),
    )


def log_answer(
    app_slug: str, status: int, method: str, path: str, query: str, remote_ip: str, seconds: float
) -> None:
    """Count one answered request and write its access line (also for an upgrade that
    fazt answered without Tornado's request path, ``request_head``)."""
    REQUESTS.http_answered(app_slug, status)
    if status < 400:
        level = logging.INFO
    elif status < 500:
        level = logging.WARNING
    else:
        level = logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        method,
        redacted_path_query(path, query),
        remote_ip,
        1000.0 * seconds,
    )

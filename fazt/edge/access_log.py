"""The access log line: Tornado's format, with the ``token`` value redacted from the query.

``tornado.web.Application(log_function=log_request)``. The line reads as
Tornado's own, ``101 GET /_app/chat/_ws?token=[redacted]&v=2 (127.0.0.1) 0.64ms``:
status, method, path and query as the client sent them except the token's
value, remote address, time taken. Below 400 it goes to ``tornado.access`` at
INFO, below 500 at WARNING, else at ERROR; nothing is formatted when that
level is off.
"""

from __future__ import annotations

import logging

import tornado.httputil
import tornado.web
from tornado.log import access_log

from fazt.edge.redaction import redact_query


def redacted_uri(request: tornado.httputil.HTTPServerRequest) -> str:
    """The request's path and query, the ``token`` parameter's value replaced."""
    if not request.query:
        return request.path
    return f"{request.path}?{redact_query(request.query)}"


def log_request(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    if status < 400:
        level = logging.INFO
    elif status < 500:
        level = logging.WARNING
    else:
        level = logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    request = handler.request
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        redacted_uri(request),
        request.remote_ip,
        1000.0 * request.request_time(),
    )

"""The one fan-out loop: one shared frame written to every subscriber but one.

Both the hub (channels without history, app-wide messages) and a history
channel's feed (its caught-up subscribers) write through it, so the cost per
delivery is one bound-method call, whichever path a message takes.
"""

from __future__ import annotations

from fazt.realtime.session import Session


def fan_out(sessions: dict[str, Session], frame: bytes, exclude: str | None = None) -> None:
    """Write one shared ``frame`` to every session but ``exclude`` (a client id).

    It iterates over a snapshot, although transports never change the
    subscriber set from inside ``send_frame``.
    """
    if exclude is None:
        for session in tuple(sessions.values()):
            session.send(frame)
        return
    for client_id, session in tuple(sessions.items()):
        if client_id != exclude:
            session.send(frame)

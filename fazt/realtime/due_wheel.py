"""When the scan must next look at each session: a timer wheel of sessions, pure.

Each session is filed in the bucket of the scan tick at (or just after) its
``check_at`` time; a tick takes out only the buckets that came due, so the
scan's work per tick is the number of sessions due, not the number of
sessions. Filing is O(1) (an append). A session filed again earlier (its token
got a sooner expiry) is in two buckets for a while: the later entry is
recognized as stale by its ``check_at`` and skipped. Closed sessions are
dropped when their bucket comes due. Time is a parameter.
"""

from __future__ import annotations

import math

from fazt.realtime.session import Session


class DueWheel:
    """Sessions by scan tick (``period`` seconds per tick)."""

    __slots__ = ("_buckets", "_carry", "_cursor", "_period", "filed")

    def __init__(self, period: float, now: float) -> None:
        self._period = period
        #: tick number -> sessions to look at on that tick
        self._buckets: dict[int, list[Session]] = {}
        #: The last tick taken out.
        self._cursor = math.floor(now / period)
        #: Entries in the buckets (stale ones included).
        self.filed = 0
        #: Due sessions a tick left over (``take_due``'s limit), oldest first.
        self._carry: list[Session] = []

    def file(self, session: Session, at: float) -> None:
        """Look at ``session`` on the first tick at or after ``at`` (never a past tick)."""
        tick = max(math.ceil(at / self._period), self._cursor + 1)
        session.check_at = at
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [session]
        else:
            bucket.append(session)
        self.filed += 1

    def take_due(self, now: float, limit: int | None = None) -> list[Session]:
        """The open sessions whose tick came (each once), oldest tick first: at most
        ``limit`` of them; the rest come first on the next call."""
        tick = math.floor(now / self._period)
        due: list[Session] = self._carry
        self._carry = []
        period = self._period
        buckets = self._buckets
        if tick - self._cursor <= len(buckets):
            numbers: range | list[int] = range(self._cursor + 1, tick + 1)
        else:  # a long pause (or many empty ticks): only the buckets that exist
            numbers = sorted(number for number in buckets if number <= tick)
        for number in numbers:
            bucket = buckets.pop(number, None)
            if bucket is None:
                continue
            self.filed -= len(bucket)
            for session in bucket:
                at = session.check_at
                if session.closed or at is None:
                    continue
                if max(math.ceil(at / period), number) != number:
                    continue  # stale: filed again, for another tick
                session.check_at = None
                due.append(session)
        self._cursor = max(self._cursor, tick)
        if limit is not None and len(due) > limit:
            self._carry = due[limit:]
            del due[limit:]
        return due

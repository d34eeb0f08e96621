"""The clock of a ``within_seconds`` promise (SPEC 3): business hours minus pauses.

From the issued time t0 the clock runs at every instant that is inside an open interval of
the promise's calendar and not paused. The calendar answers "how many open seconds in
[a, b)" and "when have s open seconds run from a" (promise_tracker/calendars); this module
cuts the paused spans out and finds the instant at which the clock has run a given amount:
D for the whole ``within_seconds``, a warning point for a fraction of it (SPEC 4.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

INF = math.inf


class Calendar(Protocol):
    """What the clock needs of a business calendar (promise_tracker.calendars.Calendar)."""

    def open_seconds(self, start: float, end: float) -> float: ...

    def advance(self, start: float, seconds: float) -> float: ...


def paused_spans(
    marks: Sequence[tuple[float, str, bool]] | None, cancelled_at: float
) -> list[tuple[float, float]]:
    """[start, end) of every pause, end infinite for one never resumed.

    ``marks`` are (time, id, paused?) in (time, id) order, all at or after t0; only those
    before the cancellation count. A pause starts unless one is running; a resume ends the
    running pause, else it is ignored.
    """
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for t, _, paused in marks or ():
        if t >= cancelled_at:
            break
        if paused:
            if start is None:
                start = t
        elif start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, INF))
    return spans


YEAR = 366 * 86_400.0
HORIZON_YEARS = 10  # of business time: a due time beyond it is never reached (infinite)


def run_until(
    calendar: Calendar, t0: float, seconds: float, spans: Sequence[tuple[float, float]]
) -> float:
    """The first instant at which the clock started at t0 has run ``seconds``; infinite when
    a pause that never ends starts before then.

    Also infinite when ``seconds`` is more than ten years of this calendar's open time: the
    calendar would be walked week by week for centuries (hostile input stalled a worker for
    half a minute a call), and a promise due that far away can never be judged anyway.
    """
    if seconds > YEAR:
        yearly = calendar.open_seconds(t0, t0 + YEAR)
        if yearly < YEAR and seconds > HORIZON_YEARS * yearly:
            return INF
    cursor, left = t0, seconds
    for start, end in spans:
        run = calendar.open_seconds(cursor, start)
        if run >= left:
            return calendar.advance(cursor, left)
        left -= run
        if end == INF:
            return INF
        cursor = max(cursor, end)
    return calendar.advance(cursor, left)

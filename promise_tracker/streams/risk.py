"""At-risk warnings (SPEC 4.1): a pure function of a promise's state, its verdict and W.

A warning point is an instant at which a promise is about to break while it can still be
kept: a fraction of the way to a deliver_by's due time (on its clock, for
``within_seconds``), or a max_steps journey that has used up its steps short of the goal.
"""

from __future__ import annotations

import bisect
import hashlib
import math

from msgspec import UNSET

from promise_tracker.schemas.models import DeliverByTerms
from promise_tracker.streams.capabilities import CONTRADICTION, Contradiction
from promise_tracker.streams.clock import Calendar, paused_spans, run_until
from promise_tracker.streams.state import DELIVER_BY, MAX_STEPS, Alert, PromiseState

INF = math.inf
STEPS = "steps"
DEFAULT_WARN_AT = "0.75"

# (label as written, fraction)
Fractions = tuple[tuple[str, float], ...]


def warn_fractions(text: str) -> Fractions:
    """``--warn-at 0.75,0.9`` as (label, fraction) pairs: labels as written (whitespace
    stripped, duplicates dropped); ValueError names the bad item."""
    out: dict[str, float] = {}
    for item in text.split(","):
        label = item.strip()
        if not label:
            continue
        try:
            fraction = float(label)
        except ValueError:
            raise ValueError(f"{label!r} is not a number: give fractions like 0.75,0.9") from None
        if not 0 < fraction < 1:
            raise ValueError(f"{label} is not between 0 and 1 (exclusive): e.g. 0.75")
        out.setdefault(label, fraction)
    return tuple(out.items())


def warning_id(promise_id: str, label: str) -> str:
    """SPEC 4.1: the same warning always gets the same id."""
    return hashlib.sha256(f"{promise_id}\nat_risk:{label}".encode()).hexdigest()[:32]


def warn_points(
    state: PromiseState, fractions: Fractions, calendar: Calendar
) -> list[tuple[str, float]]:
    """(label, warn_at) of every warning point this promise has now."""
    if state.kind == DELIVER_BY:
        t0, due = state.issued, state.close_time
        terms = state.promise.data.terms
        assert type(terms) is DeliverByTerms
        within = terms.within_seconds
        if within is UNSET:
            if due is None or due <= t0:
                return []
            return [(label, t0 + f * (due - t0)) for label, f in fractions]
        spans = paused_spans(state.marks, state.cancelled_at)
        points = [(label, run_until(calendar, t0, f * within, spans)) for label, f in fractions]
        return [(label, at) for label, at in points if at != INF]
    if state.kind == MAX_STEPS and state.views:
        views = state.views
        c = state.cancelled_at
        counted = bisect.bisect_left(views, (c, "")) if c != INF else len(views)
        limit = state.promise.data.terms.max_steps  # type: ignore[union-attr]
        if counted < limit:
            return []
        nth = views[limit - 1]
        g = state.first
        if g is None or g.time >= c or nth < (g.time, g.id):
            return [(STEPS, nth[0])]
    return []


def alerts(
    state: PromiseState,
    status: str,
    closed_at: float | None,
    watermark: float,
    points: list[tuple[str, float]],
) -> tuple[dict[str, Alert], float]:
    """The warnings that hold at the watermark, and the watermark at which they next change
    (infinite when none will without a new event)."""
    found: dict[str, Alert] = {}
    wake = INF
    due = state.close_time if state.kind == DELIVER_BY else None
    for label, at in points:
        if watermark < at:
            if status == "open" or (closed_at is not None and closed_at >= at):
                wake = min(wake, at)
            continue
        left = None if due is None or label == STEPS else due - at
        shown_due = None if label == STEPS else due
        if status == "open":
            found[label] = Alert(at, shown_due, left, "active", None)
        elif closed_at is not None and closed_at >= at:
            found[label] = Alert(at, shown_due, left, "resolved", status)
    return found, wake


def contradiction_alerts(
    state: PromiseState,
    status: str,
    closed_at: float | None,
    found: list[Contradiction],
) -> dict[str, Alert]:
    """Contradiction warnings (label ``contradiction:CAPABILITY``), at once, whatever the
    watermark: active while the promise is open; resolved by a later declaration under
    which it can be kept (outcome null) or by the promise's decision (its outcome). A
    promise decided before the contradiction began has none."""
    alerts_: dict[str, Alert] = {}
    due = state.close_time
    for c in found:
        label = CONTRADICTION + c.capability
        left = None if due is None else due - c.since
        if c.resolved_at is not None and (closed_at is None or c.resolved_at <= closed_at):
            alerts_[label] = Alert(c.since, due, left, "resolved", None, c.detail)
        elif status == "open":
            alerts_[label] = Alert(c.since, due, left, "active", None, c.detail)
        elif closed_at is not None and closed_at >= c.since:
            alerts_[label] = Alert(c.since, due, left, "resolved", status, c.detail)
    return alerts_

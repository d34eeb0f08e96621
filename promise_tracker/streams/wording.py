"""How a violation reads to a person: its ``expected`` and ``observed`` texts, and the
contradiction that foretold it.

Rendered only when a violation is emitted, never on the hot path of evaluation.
"""

from __future__ import annotations

import datetime as dt

from msgspec import UNSET

from promise_tracker.schemas.models import (
    ChannelsData,
    DeadlineData,
    DeliverByData,
    MaxStepsData,
    MaxWaitData,
)
from promise_tracker.streams.rules import Finding
from promise_tracker.streams.state import PromiseState

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def at(t: float) -> str:
    """Unix seconds as RFC 3339 UTC, with milliseconds when there are any.

    Total: an instant that UTC cannot write as years 1-9999 (valid input with an offset
    can land there) reads as Unix seconds instead of crashing the run.
    """
    try:
        stamp = _EPOCH + dt.timedelta(seconds=t)
    except OverflowError:
        return f"{t:.3f} Unix seconds"
    text = stamp.isoformat(timespec="milliseconds" if stamp.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def foreseen(warn_at: float, issued_at: float | None, detail: str) -> str:
    """How a broken promise's contradiction (its violation's ``predicted_by``) reads beside
    it: caught before the promise was issued when it was in force then, else foreseen from
    the later declaration that made it."""
    if issued_at is not None and warn_at <= issued_at:
        return (
            "could have been caught before it was issued: flagged when it was made "
            f"({at(warn_at)}): {detail}"
        )
    return (
        f"foreseen from {at(warn_at)}, when a capability it relies on was declared (after it "
        f"was made): {detail}"
    )


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _deliver_by(state: PromiseState, data: DeliverByData) -> str:
    terms = data.terms
    if terms.within_seconds is UNSET:
        return f"delivered by {at(terms.due_at.timestamp())}"  # type: ignore[union-attr]
    hours = "round-the-clock" if terms.calendar is UNSET else f"{terms.calendar!r} business"
    due = state.close_time
    when = f"due {at(due)}" if due is not None else "paused: no due time"
    return f"delivered within {_seconds(terms.within_seconds)} of {hours} time ({when})"


def describe(state: PromiseState, finding: Finding) -> tuple[str, str]:
    """(expected, observed) for a finding about this promise."""
    data = state.promise.data
    seen = finding.seen
    if isinstance(data, DeadlineData):
        assert seen is not None
        return (
            f"open until {at(data.terms.open_until.timestamp())}",
            f"{seen.detail} at {at(seen.time)}",
        )
    if isinstance(data, MaxWaitData):
        assert seen is not None
        return (
            f"wait at most {_seconds(data.terms.max_seconds)}",
            f"held {_seconds(seen.amount)} at {at(seen.time)}",
        )
    if isinstance(data, MaxStepsData):
        goal = data.terms.goal
        expected = f"reach '{goal}' in at most {data.terms.max_steps} page views"
        if seen is None:
            return expected, f"'{goal}' not reached by {at(finding.occurred_at)}"
        return expected, f"reached '{goal}' after {finding.count} page views at {at(seen.time)}"
    if isinstance(data, DeliverByData):
        expected = _deliver_by(state, data)
        if seen is None:
            return expected, f"nothing delivered by {at(finding.occurred_at)}"
        return expected, f"delivered at {at(seen.time)}"
    assert isinstance(data, ChannelsData) and seen is not None
    listed = ", ".join(data.terms.channels)
    return (
        f"{listed} available until {at(data.terms.until.timestamp())}",
        f"{seen.detail} unavailable at {at(seen.time)}",
    )

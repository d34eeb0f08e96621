"""Engine state to output records: outcomes and rejects as the files and topics carry them."""

from __future__ import annotations

import base64
import bisect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import orjson

from promise_tracker.schemas.models import OutcomeRecord, kind_of
from promise_tracker.schemas.reject import Reject
from promise_tracker.streams.state import (
    CHANNELS,
    DEADLINE,
    DELIVER_BY,
    MAX_STEPS,
    MAX_WAIT,
    PromiseState,
)

# what each kind's outcome measures (docs/check.md), by the kind's index in streams/state.py
MEASURES = ("early_seconds", "hold_seconds", "steps_to_goal", "delivery_seconds", "up_seconds")


def outcome_record(state: PromiseState) -> OutcomeRecord:
    promise = state.promise
    return OutcomeRecord(
        promise_id=promise.id,
        status=state.status,  # type: ignore[arg-type]
        closed_at=state.closed_at,
        kind=kind_of(promise),
        service=promise.source,
        channel=promise.data.channel,
        subject=promise.subject,
        issued_at=state.issued,
        text=promise.data.text,
        labels=promise.data.labels or {},
        terms=msgspec.to_builtins(promise.data.terms),
        measure=MEASURES[state.kind],
        allowed=_allowed(state),
        measured=_measured(state),
    )


def outcome_measures(state: PromiseState) -> tuple[float | None, float | None]:
    """(allowed, measured) of the outcome record: the engine says the outcome again when
    they change."""
    return _allowed(state), _measured(state)


def _allowed(state: PromiseState) -> float | None:
    """What the terms allowed, in the unit of the measure: seconds from the promise to its
    close time T (deadline, deliver_by, channels_available), the hold limit or the steps."""
    if state.kind == MAX_WAIT:
        return float(state.promise.data.terms.max_seconds)  # type: ignore[union-attr]
    if state.kind == MAX_STEPS:
        return float(state.promise.data.terms.max_steps)  # type: ignore[union-attr]
    if state.close_time is None:  # deliver_by paused for good: D is infinite
        return None
    return state.close_time - state.issued


def _measured(state: PromiseState) -> float | None:
    """The value the rules decided on, counting only observations before the cancellation:
    how early the window closed (0 when it did not), the hold time (the earliest hold over
    the limit, else the first hold), the page views up to the goal view, the seconds from
    the promise to the delivery or to the first outage of a promised channel."""
    c = state.cancelled_at
    first = state.first if state.first is not None and state.first.time < c else None
    if state.kind == DEADLINE:
        if first is not None:
            return state.close_time - first.time  # type: ignore[operator]
        return 0.0 if state.status == "kept" else None
    if state.kind == MAX_WAIT:
        if state.exceed is not None and state.exceed.time < c:
            return state.exceed.amount
        return first.amount if first is not None else None
    if state.kind == MAX_STEPS:
        if first is None:
            return None
        return float(bisect.bisect_right(state.views or (), (first.time, first.id)))
    if state.kind == DELIVER_BY:
        return first.time - state.issued if first is not None else None
    assert state.kind == CHANNELS
    # broken at the first outage of a promised channel, its own or a component's it depends
    # on (those are not in state.down: streams/capabilities.py)
    if state.status == "broken" and state.closed_at is not None:
        return state.closed_at - state.issued
    return None


def reject_record(reject: Reject) -> dict[str, Any]:
    """A reject with the original line; bytes that are not UTF-8 travel as base64 too."""
    record: dict[str, Any] = {
        "reason": str(reject.reason),
        "message": reject.message,
        "event_id": reject.event_id,
    }
    try:
        record["line"] = reject.raw.decode("utf-8")
    except UnicodeDecodeError:
        record["line"] = reject.raw.decode("utf-8", "replace")
        record["line_base64"] = base64.b64encode(reject.raw).decode("ascii")
    if isinstance(reject.origin, tuple) and len(reject.origin) == 2:
        record["file"], record["line_no"] = reject.origin
    return record


def read_jsonl(path: Path) -> list[dict]:
    """The records of an output file (blank lines ignored)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def final_active(emissions: Iterable[dict]) -> dict[str, dict]:
    """SPEC section 4: the last emission per violation id is the truth; keep the active ones."""
    last = {emission["violation_id"]: emission for emission in emissions}
    return {vid: emission for vid, emission in last.items() if emission["state"] == "active"}

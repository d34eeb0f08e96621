"""Bytes on the output topics: violations, warnings and outcomes as CloudEvents (SPEC 4, 4.1).

The Kafka key is the violation id (or the promise id for an outcome), so a compacted topic
keeps the truth. The CloudEvent id is a digest of what the emission says, so the same
emission sent twice (after a crash or a rebalance) is recognisably the same event, and a
changed one is a new event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Literal

import msgspec
from msgspec import Struct

from promise_tracker.schemas.models import (
    OutcomeRecord,
    ViolationEvent,
    ViolationRecord,
    WarningEvent,
    WarningRecord,
)

SOURCE = "promise-tracker"
UTC = dt.UTC


class OutcomeEvent(Struct, frozen=True, gc=False, kw_only=True):
    """The CloudEvent carrying a promise's outcome on ``promises.outcomes``."""

    specversion: Literal["1.0"] = "1.0"
    type: Literal["promise.outcome"] = "promise.outcome"
    source: str
    id: str
    time: dt.datetime
    subject: str
    datacontenttype: str = "application/json"
    data: OutcomeRecord


_encode = msgspec.json.Encoder().encode
decode_violation = msgspec.json.Decoder(ViolationEvent).decode
decode_outcome = msgspec.json.Decoder(OutcomeEvent).decode
decode_warning = msgspec.json.Decoder(WarningEvent).decode


def _digest(*parts: object) -> str:
    return hashlib.sha256("\n".join(map(repr, parts)).encode()).hexdigest()[:32]


def violation_event_id(record: ViolationRecord) -> str:
    """The CloudEvent id of an emission: the same for the same verdict, whenever sent."""
    return _digest(
        record.violation_id, record.state, record.reason, record.occurred_at, record.excess
    )


def violation_event(record: ViolationRecord) -> bytes:
    event_id = violation_event_id(record)
    return _encode(
        ViolationEvent(
            source=SOURCE,
            id=event_id,
            time=dt.datetime.fromtimestamp(record.detected_at, UTC),
            subject=record.promise_id,
            data=record,
        )
    )


def warning_event_id(record: WarningRecord) -> str:
    """As for violations: the same warning state, the same CloudEvent id."""
    return _digest(record.warning_id, record.state, record.warn_at, record.due_at, record.outcome)


def warning_event(record: WarningRecord) -> bytes:
    return _encode(
        WarningEvent(
            source=SOURCE,
            id=warning_event_id(record),
            time=dt.datetime.fromtimestamp(record.detected_at, UTC),
            subject=record.promise_id,
            data=record,
        )
    )


def outcome_event(record: OutcomeRecord, now: float) -> bytes:
    event_id = _digest(record.promise_id, record.status, record.closed_at)
    return _encode(
        OutcomeEvent(
            source=SOURCE,
            id=event_id,
            time=dt.datetime.fromtimestamp(now, UTC),
            subject=record.promise_id,
            data=record,
        )
    )

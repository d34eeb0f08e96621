"""Output records to table rows: one function per table (the rows are in sinks/tables.py).

A row is built straight from the record's attributes, positionally (the sink's hot path).
Times are Unix seconds; each store encodes them for its backend. ``version`` is where the
row came from (the output record's Kafka offset, or a replay's emission number): the table
keeps the highest version per id.

With a subject key (setting ``subject_key``), every ``subject`` column holds a pseudonym
instead of the subject: ``hmac:`` and HMAC-SHA256(key, subject) in hex. The same subject
always gets the same pseudonym, so counting distinct subjects still counts customers, and
without the key nobody can tell who they are (nor test a guess).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson

from promise_tracker.schemas.models import OutcomeRecord, ViolationRecord, WarningRecord
from promise_tracker.sinks.tables import (
    OutcomeRow,
    PromiseRow,
    RejectRow,
    Row,
    ViolationEventRow,
    ViolationRow,
    WarningRow,
)

PSEUDONYM = "hmac:"


def pseudonym(key: bytes, subject: str | None) -> str | None:
    """The subject as stored: itself without a key, else its keyed hash (None stays None)."""
    if not key or subject is None:
        return subject
    return PSEUDONYM + hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()


def violation_rows(
    r: ViolationRecord, event_id: str, version: int, subject_key: bytes = b""
) -> list[tuple[str, Row]]:
    """A violation emission: its latest state, and its line in the history."""
    subject = pseudonym(subject_key, r.subject) if subject_key else r.subject
    latest = ViolationRow(
        r.violation_id, r.promise_id, r.service, r.channel, subject, r.kind, r.reason,
        r.expected, r.observed, r.excess, r.unit, r.occurred_at, r.detected_at,
        r.observation_id, r.observed_by, r.promise_text, r.labels, r.state, event_id, version,
        r.predicted_by,
    )  # fmt: skip
    history = ViolationEventRow(
        r.violation_id, event_id, r.promise_id, r.service, r.reason, r.state, r.occurred_at,
        r.detected_at, version,
    )  # fmt: skip
    return [("violations", latest), ("violation_events", history)]


def warning_row(
    r: WarningRecord, event_id: str, version: int, subject_key: bytes = b""
) -> tuple[str, Row]:
    """A warning emission: its latest state (the last emission per id is the truth)."""
    subject = pseudonym(subject_key, r.subject) if subject_key else r.subject
    row = WarningRow(
        r.warning_id, r.promise_id, r.service, r.channel, subject, r.kind, r.label, r.warn_at,
        r.due_at, r.time_left, r.promise_text, r.labels, r.state, r.outcome, r.detected_at,
        event_id, version, r.detail,
    )  # fmt: skip
    return ("warnings", row)


def promise_row(r: OutcomeRecord, version: int, subject_key: bytes = b"") -> tuple[str, Row]:
    """The promise's facts: the same in every outcome of it."""
    subject = pseudonym(subject_key, r.subject) if subject_key else r.subject
    row = PromiseRow(
        r.promise_id, r.service, r.channel, r.kind, subject, r.issued_at, r.text, r.labels,
        version,
    )  # fmt: skip
    return ("promises", row)


def outcome_row(r: OutcomeRecord, updated_at: float, version: int) -> tuple[str, Row]:
    terms = None if r.terms is None else orjson.dumps(r.terms).decode()
    row = OutcomeRow(
        r.promise_id, r.status, r.closed_at, r.service, r.channel, r.kind, r.issued_at,
        updated_at, version, terms, r.measure, r.allowed, r.measured,
    )  # fmt: skip
    return ("outcomes", row)


def reject_row(
    *,
    reason: str,
    message: str,
    event_id: str | None,
    raw: bytes,
    origin: str,
    origin_part: int | None,
    origin_offset: int | None,
    rejected_at: float,
    version: int,
) -> tuple[str, Row]:
    """A rejected input, identified by where it came from so that a repeat is stored once;
    bytes that are not UTF-8 are kept exactly in ``raw_base64``."""
    key = f"{origin}\n{origin_part}\n{origin_offset}"
    if origin_offset is None:  # nowhere to point at: the bytes are the identity
        key += "\n" + hashlib.sha256(raw).hexdigest()
    try:
        text, exact = raw.decode("utf-8"), None
    except UnicodeDecodeError:
        text, exact = raw.decode("utf-8", "replace"), base64.b64encode(raw).decode("ascii")
    reject_id = hashlib.sha256(key.encode()).hexdigest()[:32]
    row = RejectRow(
        reject_id, reason, message, event_id, origin, origin_part, origin_offset, text, exact,
        rejected_at, version,
    )  # fmt: skip
    return ("rejects", row)

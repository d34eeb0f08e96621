"""Output records to table rows: one function per table, the columns named once.

Rows carry times as Unix seconds; each store encodes them for its backend. ``version`` is
where the row came from (the output record's Kafka offset, or a replay's emission number):
the table keeps the highest version per id.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

COLUMNS: dict[str, tuple[str, ...]] = {
    "promises": (
        "promise_id", "service", "channel", "kind", "subject", "issued_at", "text", "labels",
        "version",
    ),
    "outcomes": (
        "promise_id", "status", "closed_at", "service", "channel", "kind", "issued_at",
        "updated_at", "version",
    ),
    "violations": (
        "violation_id", "promise_id", "service", "channel", "subject", "kind", "reason",
        "expected", "observed", "excess", "unit", "occurred_at", "detected_at",
        "observation_id", "observed_by", "promise_text", "labels", "state", "event_id",
        "version",
    ),
    "violation_events": (
        "violation_id", "event_id", "promise_id", "service", "reason", "state", "occurred_at",
        "detected_at", "version",
    ),
    "rejects": (
        "reject_id", "reason", "message", "event_id", "origin", "origin_part", "origin_offset",
        "raw", "raw_base64", "rejected_at", "version",
    ),
}  # fmt: skip

Row = dict[str, Any]


def violation_rows(record: Mapping[str, Any], event_id: str, version: int) -> list[tuple[str, Row]]:
    """A violation emission: its latest state, and its line in the history."""
    latest = {c: record.get(c) for c in COLUMNS["violations"]}
    latest["labels"] = record.get("labels") or {}
    latest["event_id"] = event_id
    latest["version"] = version
    history = {c: latest[c] for c in COLUMNS["violation_events"]}
    return [("violations", latest), ("violation_events", history)]


def outcome_rows(
    record: Mapping[str, Any], updated_at: float, version: int
) -> list[tuple[str, Row]]:
    """An outcome: the promise's facts (the same every time) and its status now."""
    promise = {c: record.get(c) for c in COLUMNS["promises"]}
    promise["labels"] = record.get("labels") or {}
    promise["version"] = version
    outcome = {c: record.get(c) for c in COLUMNS["outcomes"]}
    outcome["updated_at"] = updated_at
    outcome["version"] = version
    return [("promises", promise), ("outcomes", outcome)]


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
    return (
        "rejects",
        {
            "reject_id": hashlib.sha256(key.encode()).hexdigest()[:32],
            "reason": reason,
            "message": message,
            "event_id": event_id,
            "origin": origin,
            "origin_part": origin_part,
            "origin_offset": origin_offset,
            "raw": text,
            "raw_base64": exact,
            "rejected_at": rejected_at,
            "version": version,
        },
    )

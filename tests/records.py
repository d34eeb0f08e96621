"""Output records as the engine emits them, every field filled, for the tests of what
consumes them: the store and its rows, the alerts and the pager."""

from __future__ import annotations

import msgspec

from promise_tracker.schemas.models import OutcomeRecord, ViolationRecord

DETECTED = 1_767_268_801.5  # 2026-01-01T12:00:01.5Z


def violation(vid: str = "v1", state: str = "active", **changes) -> ViolationRecord:
    """A violation as the store gets it."""
    record = {
        "violation_id": vid,
        "promise_id": "p1",
        "service": "shop/web",
        "channel": "card",
        "subject": None,
        "kind": "deadline",
        "reason": "enforced_early",
        "expected": "open until 2026-01-02T00:00:00Z",
        "observed": "access_denied at 2026-01-01T12:00:00Z",
        "excess": 43200.0,
        "unit": "seconds",
        "occurred_at": 1767268800.0,
        "detected_at": 1767268801.5,
        "observation_id": "o1",
        "observed_by": "shop/web",
        "promise_text": "Choose until 01/01",
        "labels": {"severity": "page"},
        "state": state,
    }
    record.update(changes)
    return msgspec.convert(record, ViolationRecord)


def outcome(status: str) -> OutcomeRecord:
    """A decided promise's outcome, with a subject."""
    record = {
        "promise_id": "p1",
        "status": status,
        "closed_at": 1767268800.0,
        "kind": "deadline",
        "service": "shop/web",
        "channel": "card",
        "subject": "customer/1",
        "issued_at": 1767180000.0,
        "text": "Choose until 01/01",
        "labels": {},
    }
    return msgspec.convert(record, OutcomeRecord)


def paged_violation(vid: str = "v1", state: str = "active", **changes: object) -> ViolationRecord:
    """A violation as the pager gets it: a subject (which no alert may carry), a team label."""
    fields = {
        "violation_id": vid,
        "promise_id": "p1",
        "service": "shop/web",
        "channel": "card",
        "subject": "customer/77120394",
        "kind": "deadline",
        "reason": "enforced_early",
        "expected": "open until 2026-01-02T00:00:00Z",
        "observed": "access_denied at 2026-01-01T12:00:00Z",
        "excess": 43200.0,
        "unit": "seconds",
        "occurred_at": 1_767_268_800.0,
        "detected_at": DETECTED,
        "observation_id": "o1",
        "observed_by": "shop/web",
        "promise_text": "Choose your pose online until 01/02.",
        "labels": {"severity": "page", "team": "web"},
        "state": state,
        **changes,
    }
    return msgspec.convert(fields, ViolationRecord)

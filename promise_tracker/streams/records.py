"""Engine state to output records: outcomes and rejects as the files and topics carry them."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from promise_tracker.schemas.models import OutcomeRecord, kind_of
from promise_tracker.schemas.reject import Reject
from promise_tracker.streams.state import PromiseState


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
    )


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

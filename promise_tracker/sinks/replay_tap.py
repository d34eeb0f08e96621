"""``replay --clickhouse``: the replay's results written to the same tables as the live sink.

Versions are emission numbers in the run, so the last emission of a violation wins as it
does live. Replay into a database of its own: versions of two runs are not comparable.
"""

from __future__ import annotations

import time

from promise_tracker.schemas.codec import violation_event_id, warning_event_id
from promise_tracker.schemas.models import OutcomeRecord, ViolationRecord, WarningRecord
from promise_tracker.schemas.reject import Reject
from promise_tracker.sinks.batcher import ClickHouseSink
from promise_tracker.sinks.rows import (
    outcome_row,
    promise_row,
    reject_row,
    violation_rows,
    warning_row,
)


class ClickHouseTap:
    """Adds a replay's violations, rejects and final outcomes to a sink, flushing as it goes."""

    def __init__(self, sink: ClickHouseSink, now: float | None = None, subject_key: bytes = b""):
        self.sink = sink
        self.subject_key = subject_key  # as the live sink: subjects stored as pseudonyms
        self.now = time.time() if now is None else now
        self.sequence = 0

    def _next(self) -> int:
        self.sequence += 1
        return self.sequence

    def violation(self, record: ViolationRecord) -> None:
        rows = violation_rows(record, violation_event_id(record), self._next(), self.subject_key)
        self.sink.add_all(rows)
        self._flush_if_full()

    def warning(self, record: WarningRecord) -> None:
        row = warning_row(record, warning_event_id(record), self._next(), self.subject_key)
        self.sink.add_all([row])
        self._flush_if_full()

    def reject(self, reject: Reject) -> None:
        origin = reject.origin if isinstance(reject.origin, tuple) else (None, None)
        self.sink.add_all(
            [
                reject_row(
                    reason=str(reject.reason),
                    message=reject.message,
                    event_id=reject.event_id,
                    raw=reject.raw,
                    origin=str(origin[0]),
                    origin_part=None,
                    origin_offset=origin[1],
                    rejected_at=self.now,
                    version=self._next(),
                )
            ]
        )
        self._flush_if_full()

    def final_outcome(self, record: OutcomeRecord) -> None:
        version = self._next()
        self.sink.add_all(
            [outcome_row(record, self.now, version), promise_row(record, version, self.subject_key)]
        )
        self._flush_if_full()

    def _flush_if_full(self) -> None:
        if self.sink.pending >= self.sink.max_rows:
            self.sink.flush()

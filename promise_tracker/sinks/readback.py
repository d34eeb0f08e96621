"""Reading the tables back: the final state per id, as the replay files state it, and the
summaries the demo prints. Every query reads the deduplicated rows (FINAL)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from promise_tracker.measures import BROKEN, KEEP_RATE, KEPT
from promise_tracker.sinks.store import Store, check_identifier

_VIOLATIONS = """
SELECT violation_id, promise_id, service, channel, subject, kind, reason, expected, observed,
       excess, unit, toUnixTimestamp64Micro(occurred_at) AS occurred_us, observation_id,
       observed_by, promise_text, labels, state, predicted_by
FROM {db}.violations FINAL
"""

_WARNINGS = """
SELECT warning_id, promise_id, service, channel, kind, label,
       toUnixTimestamp64Micro(warn_at) AS warn_us, toUnixTimestamp64Micro(due_at) AS due_us,
       time_left, promise_text, labels, state, outcome, detail
FROM {db}.warnings FINAL
"""

_OUTCOMES = """
SELECT o.promise_id AS promise_id, o.status AS status,
       toUnixTimestamp64Micro(o.closed_at) AS closed_us, o.kind AS kind, o.service AS service,
       o.channel AS channel, p.subject AS subject,
       toUnixTimestamp64Micro(o.issued_at) AS issued_us, p.text AS text, p.labels AS labels,
       o.terms AS terms, o.measure AS measure, o.allowed AS allowed, o.measured AS measured
FROM (SELECT * FROM {db}.outcomes FINAL) AS o
LEFT JOIN (SELECT * FROM {db}.promises FINAL) AS p ON o.promise_id = p.promise_id
"""


def _seconds(micros: Any) -> float | None:
    return None if micros is None else int(micros) / 1e6


def violations(store: Store) -> dict[str, dict[str, Any]]:
    """Violation id -> its last emission (``detected_at`` aside), in the replay's shape."""
    found = {}
    for row in store.rows(_VIOLATIONS):
        row["occurred_at"] = _seconds(row.pop("occurred_us"))
        found[row["violation_id"]] = row
    return found


def warnings(store: Store) -> dict[str, dict[str, Any]]:
    """Warning id -> its last emission (``detected_at`` aside), in the replay's shape."""
    found = {}
    for row in store.rows(_WARNINGS):
        row["warn_at"] = _seconds(row.pop("warn_us"))
        row["due_at"] = _seconds(row.pop("due_us"))
        found[row["warning_id"]] = row
    return found


def outcomes(store: Store) -> dict[str, dict[str, Any]]:
    """Promise id -> its outcome now, in the replay's shape."""
    found = {}
    for row in store.rows(_OUTCOMES):
        row["closed_at"] = _seconds(row.pop("closed_us"))
        row["issued_at"] = _seconds(row.pop("issued_us"))
        row["terms"] = None if row["terms"] is None else orjson.loads(row["terms"])
        found[row["promise_id"]] = row
    return found


def rejects(store: Store) -> list[dict[str, Any]]:
    """Every rejected input once: reason, event id and origin."""
    return store.rows(
        "SELECT reason, event_id, origin, origin_part, origin_offset FROM {db}.rejects FINAL"
    )


def keep_rate(store: Store) -> list[dict[str, Any]]:
    """Outcomes by service and kind, with the keep-rate: kept / (kept + broken)."""
    return store.rows(
        f"""
        SELECT service, kind,
               {KEPT} AS kept, {BROKEN} AS broken,
               countIf(status = 'expired') AS unverifiable,
               countIf(status = 'cancelled') AS cancelled, countIf(status = 'open') AS open,
               round({KEEP_RATE}, 4) AS keep_rate
        FROM {{db}}.outcomes FINAL
        GROUP BY service, kind
        ORDER BY service, kind
        """
    )


def broken_promises(
    store: Store, promise_ids: list[str] | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Active violations (of some promises, or all) with the words the customer saw, by
    promise and time; one that a contradiction foretold has its words (``foreseen``), when
    it was flagged and when the promise was made (``foreseen_at``, ``issued_at``: Unix
    seconds), else None."""
    rows = store.rows(
        """
        SELECT v.promise_id AS promise_id, v.service AS service, v.channel AS channel,
               v.kind AS kind, v.reason AS reason, v.expected AS expected,
               v.observed AS observed, v.excess AS excess, v.unit AS unit,
               v.promise_text AS promise_text, toString(v.occurred_at) AS occurred,
               v.predicted_by AS predicted_by,
               if(w.warning_id = '', NULL, w.detail) AS foreseen,
               if(w.warning_id = '', NULL, toUnixTimestamp64Micro(w.warn_at)) AS foreseen_us,
               if(p.promise_id = '', NULL, toUnixTimestamp64Micro(p.issued_at)) AS issued_us
        FROM (
            SELECT * FROM {db}.violations FINAL
            WHERE state = 'active' AND (empty({ids:Array(String)})
                                        OR has({ids:Array(String)}, promise_id))
        ) AS v
        LEFT JOIN (SELECT warning_id, detail, warn_at FROM {db}.warnings FINAL) AS w
            ON w.warning_id = v.predicted_by
        LEFT JOIN (
            SELECT promise_id, issued_at FROM {db}.promises FINAL
            WHERE empty({ids:Array(String)}) OR has({ids:Array(String)}, promise_id)
        ) AS p ON p.promise_id = v.promise_id
        ORDER BY v.service, v.promise_id, v.occurred_at
        LIMIT {limit:UInt32}
        """,
        {"ids": promise_ids or [], "limit": limit},
    )
    for row in rows:
        row["foreseen_at"] = _seconds(row.pop("foreseen_us"))
        row["issued_at"] = _seconds(row.pop("issued_us"))
    return rows


def counts(store: Store) -> Counter[str]:
    """Rows per table after deduplication (what a reader sees)."""
    found: Counter[str] = Counter()
    for table in ("promises", "outcomes", "violations", "violation_events", "warnings", "rejects"):
        name = check_identifier(table, "table")
        rows = store.rows(f"SELECT count() AS n FROM {{db}}.{name} FINAL")
        found[table] = int(rows[0]["n"])
    return found

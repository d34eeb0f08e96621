"""Each table's row, defined once: a NamedTuple whose fields are the columns in order.

A field's annotation carries its ClickHouse type (``Annotated[python type, "CH type"]``);
``tests/unit/test_tables.py`` runs the migrations on chdb and fails when ``DESCRIBE TABLE``
disagrees with a row type in names, order or types. Columns the store fills itself (ALIAS,
``stored_at DEFAULT now64``) are not in the rows.

Rows are plain tuples (the sink's hot path builds them positionally and hands columns to
the store with ``zip``); times are Unix seconds, and each store encodes the columns whose
type is a ``DateTime64`` for its backend.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple, get_args, get_type_hints

String = Annotated[str, "String"]
Low = Annotated[str, "LowCardinality(String)"]
MaybeString = Annotated[str | None, "Nullable(String)"]
MaybeLow = Annotated[str | None, "LowCardinality(Nullable(String))"]
Time = Annotated[float, "DateTime64(6, 'UTC')"]
MaybeTime = Annotated[float | None, "Nullable(DateTime64(6, 'UTC'))"]
TimeMs = Annotated[float, "DateTime64(3, 'UTC')"]
Labels = Annotated[dict[str, str], "Map(LowCardinality(String), String)"]
MaybeFloat = Annotated[float | None, "Nullable(Float64)"]
MaybeInt32 = Annotated[int | None, "Nullable(Int32)"]
MaybeInt64 = Annotated[int | None, "Nullable(Int64)"]
# where the row came from (a Kafka offset, a replay's emission number): the highest wins
Version = Annotated[int, "UInt64"]


class PromiseRow(NamedTuple):
    """The promise's facts: the same in every outcome of it."""

    promise_id: String
    service: Low
    channel: Low
    kind: Low
    subject: MaybeString
    issued_at: Time
    text: MaybeString
    labels: Labels
    version: Version

    def key(self) -> Any:
        return self.promise_id


class OutcomeRow(NamedTuple):
    promise_id: String
    status: Low
    closed_at: MaybeTime
    service: Low
    channel: Low
    kind: Low
    issued_at: Time
    updated_at: Time
    version: Version
    # deploy/clickhouse/0003_outcome_measures.sql: what "can we keep this?" reads
    # (docs/check.md); NULL in rows written before it
    terms: MaybeString = None  # the promise's terms, as JSON
    measure: MaybeLow = None
    allowed: MaybeFloat = None
    measured: MaybeFloat = None

    def key(self) -> Any:
        return self.promise_id


class ViolationRow(NamedTuple):
    """A violation's latest emission."""

    violation_id: String
    promise_id: String
    service: Low
    channel: Low
    subject: MaybeString
    kind: Low
    reason: Low
    expected: String
    observed: String
    excess: MaybeFloat
    unit: MaybeLow
    occurred_at: Time
    detected_at: Time
    observation_id: MaybeString
    observed_by: MaybeString
    promise_text: MaybeString
    labels: Labels
    state: Low
    event_id: String
    version: Version
    predicted_by: MaybeString

    def key(self) -> Any:
        return self.violation_id


class ViolationEventRow(NamedTuple):
    """One distinct emission of a violation: its history."""

    violation_id: String
    event_id: String
    promise_id: String
    service: Low
    reason: Low
    state: Low
    occurred_at: Time
    detected_at: Time
    version: Version

    def key(self) -> Any:
        return (self.violation_id, self.event_id)


class WarningRow(NamedTuple):
    """An at-risk warning's latest emission (SPEC 4.1)."""

    warning_id: String
    promise_id: String
    service: Low
    channel: Low
    subject: MaybeString
    kind: Low
    label: Low
    warn_at: Time
    due_at: MaybeTime
    time_left: MaybeFloat
    promise_text: MaybeString
    labels: Labels
    state: Low
    outcome: MaybeLow
    detected_at: Time
    event_id: String
    version: Version
    detail: MaybeString

    def key(self) -> Any:
        return self.warning_id


class RejectRow(NamedTuple):
    reject_id: String
    reason: Low
    message: String
    event_id: MaybeString
    origin: Low
    origin_part: MaybeInt32
    origin_offset: MaybeInt64
    raw: String
    raw_base64: MaybeString
    rejected_at: TimeMs
    version: Version

    def key(self) -> Any:
        return self.reject_id


Row = PromiseRow | OutcomeRow | ViolationRow | ViolationEventRow | WarningRow | RejectRow

# table name -> its row type, in the order the sink writes them
TABLES: dict[str, type[Any]] = {
    "promises": PromiseRow,
    "outcomes": OutcomeRow,
    "violations": ViolationRow,
    "violation_events": ViolationEventRow,
    "warnings": WarningRow,
    "rejects": RejectRow,
}


def columns(table: str) -> tuple[str, ...]:
    return TABLES[table]._fields


def clickhouse_types(table: str) -> dict[str, str]:
    """Column name -> its ClickHouse type, as ``DESCRIBE TABLE`` prints it."""
    hints = get_type_hints(TABLES[table], include_extras=True)
    return {name: get_args(hints[name])[1] for name in TABLES[table]._fields}


def time_columns(table: str) -> tuple[str, ...]:
    """The columns a store must send as times (rows hold them as Unix seconds)."""
    return tuple(n for n, t in clickhouse_types(table).items() if "DateTime64" in t)

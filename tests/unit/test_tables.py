"""The row types of sinks/tables.py against the tables the migrations create on chdb."""

from __future__ import annotations

import pytest

from promise_tracker.sinks.store import ClickHouseStore
from promise_tracker.sinks.tables import TABLES, clickhouse_types, columns, time_columns

# filled by ClickHouse itself: never in a row
STORE_FILLED = {"stored_at", "severity"}


@pytest.fixture
def described(store: ClickHouseStore) -> dict[str, list[tuple[str, str]]]:
    """Every table's columns as the migrations made them (conftest's migrated store)."""
    return {
        table: [
            (row["name"], row["type"])
            for row in store.rows(f"DESCRIBE TABLE {{db}}.{table}")
            if row["name"] not in STORE_FILLED
        ]
        for table in TABLES
    }


@pytest.mark.parametrize("table", list(TABLES))
def test_the_row_type_is_the_migrated_table(described, table: str):
    assert described[table] == list(clickhouse_types(table).items())


def test_times_are_the_datetime_columns():
    assert time_columns("rejects") == ("rejected_at",)
    assert time_columns("outcomes") == ("closed_at", "issued_at", "updated_at")
    assert columns("violation_events")[:2] == ("violation_id", "event_id")

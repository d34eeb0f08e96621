"""The ClickHouse store on the real embedded engine (chdb): migrations, idempotent batches,
bound values, and ``replay --clickhouse`` giving the replay files' answer."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections import Counter

import pytest

from promise_tracker.runtime.backoff import Backoff
from promise_tracker.sinks import readback as queries
from promise_tracker.sinks.batcher import ClickHouseSink
from promise_tracker.sinks.migrate import DDL, migrate, migrations, schema_version
from promise_tracker.sinks.rows import outcome_row, promise_row, reject_row, violation_rows
from promise_tracker.sinks.runner import FaultyStore
from promise_tracker.sinks.store import ClickHouseStore, StoreError, StoreUnavailable
from promise_tracker.sinks.tables import OutcomeRow, PromiseRow
from promise_tracker.streams.records import final_active, read_jsonl
from promise_tracker.synthetic import generate
from tests.cli import cli
from tests.records import outcome, violation
from tests.support import CHDB


def test_migrate_applies_each_file_once_and_records_its_version(store):
    assert migrate(store) == []  # the fixture applied everything
    latest = max(m.version for m in migrations())
    assert schema_version(store) == latest
    tables = {row["name"] for row in store.rows("SHOW TABLES FROM {db}")}
    assert {"promises", "outcomes", "violations", "violation_events", "rejects"} <= tables
    assert "keep_rate_hourly" in tables


def test_migrate_refuses_an_applied_file_that_was_edited(store, tmp_path):
    edited = tmp_path / "ddl"
    shutil.copytree(DDL, edited)
    first = sorted(edited.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(StoreError, match="changed after it was applied"):
        migrate(store, edited)


def test_migration_files_must_be_numbered(tmp_path):
    (tmp_path / "tables.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match="NNNN_what.sql"):
        migrations(tmp_path)


def test_a_database_name_that_is_not_an_identifier_is_refused():
    with pytest.raises(StoreError, match="plain identifier"):
        ClickHouseStore(CHDB, "x; DROP DATABASE default")


def test_a_batch_written_twice_changes_nothing(store):
    sink = ClickHouseSink(store)
    for _ in range(2):  # the same records, as after a crash before the offsets were committed
        sink.add_all(violation_rows(violation(), "e1", version=7))
        broken = outcome("broken")
        sink.add_all([outcome_row(broken, 1767268802.0, 3), promise_row(broken, 3)])
        sink.flush()
    assert queries.counts(store) == Counter(
        promises=1, outcomes=1, violations=1, violation_events=1, rejects=0
    )
    raw = store.rows("SELECT count() AS n FROM {db}.violations")[0]["n"]
    assert int(raw) in (1, 2)  # stored twice until a merge, read once


def test_the_latest_emission_wins_whatever_order_the_batches_arrive_in(store):
    sink = ClickHouseSink(store)
    sink.add_all(violation_rows(violation(state="retracted"), "e2", version=9))
    sink.flush()
    sink.add_all(violation_rows(violation(), "e1", version=4))  # an older one, re-delivered
    sink.flush()
    (row,) = queries.violations(store).values()
    assert row["state"] == "retracted"
    history = store.rows("SELECT event_id FROM {db}.violation_events FINAL ORDER BY version")
    assert [h["event_id"] for h in history] == ["e1", "e2"]


def test_values_are_bound_and_stored_exactly(store):
    """Regression: the database name was once substituted into the rows of an INSERT too."""
    hostile = "it's \\ a \"test\"\n\t'); DROP TABLE {db}.violations; --"
    sink = ClickHouseSink(store)
    sink.add_all(violation_rows(violation(promise_text=hostile, labels={"k'": hostile}), "e", 1))
    raw = b"\xff\xfe not utf-8 '"
    sink.add_all(
        [
            reject_row(
                reason="invalid_json",
                message="not JSON",
                event_id=None,
                raw=raw,
                origin="promises.issued",
                origin_part=2,
                origin_offset=41,
                rejected_at=1767268800.0,
                version=1,
            )
        ]
    )
    sink.flush()
    (row,) = queries.violations(store).values()
    assert row["promise_text"] == hostile and row["labels"] == {"k'": hostile}
    found = store.rows(
        "SELECT raw_base64 FROM {db}.rejects FINAL WHERE reason = {reason:String}",
        {"reason": "invalid_json"},
    )
    assert [r["raw_base64"] for r in found] == ["//4gbm90IHV0Zi04ICc="]
    assert queries.broken_promises(store, promise_ids=["p1", "o'ther"])[0]["promise_text"] == (
        hostile
    )


def test_a_reject_said_twice_after_a_crash_is_stored_once(store):
    sink = ClickHouseSink(store)
    for version in (5, 9):  # the DLQ repeated it: same origin, another DLQ offset
        sink.add_all(
            [
                reject_row(
                    reason="too_late",
                    message="older than retention",
                    event_id="e1",
                    raw=b"{}",
                    origin="promises.issued",
                    origin_part=0,
                    origin_offset=12,
                    rejected_at=1.0,
                    version=version,
                )
            ]
        )
    sink.flush()
    assert len(queries.rejects(store)) == 1


def _promise(pid: str, version: int) -> PromiseRow:
    return PromiseRow(pid, "s", "web", "deadline", None, 0.0, None, {}, version)


def _outcome_row(pid: str, version: int) -> OutcomeRow:
    return OutcomeRow(pid, "open", None, "s", "web", "deadline", 0.0, 0.0, version)


def test_the_sink_batches_by_size_and_by_age():
    now = [0.0]
    sink = ClickHouseSink(store=None, max_rows=3, max_age=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert not sink.due()
    sink.add("promises", _promise("p1", 1))
    assert not sink.due()
    now[0] = 1.0
    assert sink.due()  # the oldest row waited max_age
    now[0] = 0.0
    sink2 = ClickHouseSink(store=None, max_rows=2, max_age=60, clock=lambda: now[0])  # type: ignore[arg-type]
    sink2.add("promises", _promise("p1", 1))
    sink2.add("promises", _promise("p1", 2))  # the same id: one row
    assert not sink2.due()
    sink2.add("outcomes", _outcome_row("p1", 2))
    assert sink2.due()


def test_a_failed_flush_keeps_the_batch_for_the_retry(store, tmp_path):
    switch = tmp_path / "store-down"
    switch.touch()
    sink = ClickHouseSink(FaultyStore(store, switch))
    sink.add_all(violation_rows(violation(), "e1", 1))
    with pytest.raises(StoreUnavailable, match="fault drill"):
        sink.flush()
    assert sink.pending == 2
    switch.unlink()
    sink.flush()
    assert sink.pending == 0 and len(queries.violations(store)) == 1


def test_a_wrong_request_is_an_error_not_an_outage(store):
    with pytest.raises(StoreError) as caught:
        store.rows("SELECT no_such_column FROM {db}.violations")
    assert not isinstance(caught.value, StoreUnavailable)


def test_backoff_doubles_up_to_its_cap_with_jitter():
    backoff = Backoff(first=1.0, cap=8.0)
    delays = [backoff.next() for _ in range(6)]
    assert all(0.5 * d0 <= d <= d0 for d, d0 in zip(delays, [1, 2, 4, 8, 8, 8], strict=True))
    backoff.reset()
    assert backoff.next() <= 1.0


def test_replay_into_clickhouse_gives_the_files_answer(tmp_path):
    stream = tmp_path / "stream.jsonl"
    generate(stream, events=4000, open_promises=400, seed=5)
    target = tmp_path / "chdb"
    files = [tmp_path / f"{n}.jsonl" for n in ("v", "o", "r")]
    done = cli(
        "replay",
        str(stream),
        "--violations",
        str(files[0]),
        "--outcomes",
        str(files[1]),
        "--rejects",
        str(files[2]),
        "--clickhouse",
        str(target),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    store = ClickHouseStore(target, "promise_tracker_replay").connect()
    try:
        got_violations = {
            vid: v for vid, v in queries.violations(store).items() if v["state"] == "active"
        }
        got_outcomes = queries.outcomes(store)
        got_rejects = Counter(r["reason"] for r in queries.rejects(store))
    finally:
        store.close()
    expected = final_active(read_jsonl(files[0]))
    for record in expected.values():
        record.pop("detected_at")
    assert expected and got_violations == expected
    outcomes = {o["promise_id"]: o for o in read_jsonl(files[1])}
    assert got_outcomes == outcomes
    rejects = read_jsonl(files[2])
    assert rejects and got_rejects == Counter(r["reason"] for r in rejects)


def test_replay_needs_its_output_files_or_a_store():
    done = cli("replay", "examples/kept-promises.jsonl", "--violations", "v.jsonl")
    assert done.returncode == 2 and "--clickhouse" in done.stderr


def test_a_batch_holds_one_row_per_id_the_latest(store):
    sink = ClickHouseSink(store)
    sink.add_all(violation_rows(violation(), "e1", version=4))
    sink.add_all(violation_rows(violation(state="retracted"), "e2", version=9))
    sink.add_all(violation_rows(violation(), "e1", version=4))  # re-delivered, older
    assert sink.pending == 3  # violations: 1 row; its history: e1 and e2
    sink.flush()
    assert int(store.rows("SELECT count() AS n FROM {db}.violations")[0]["n"]) == 1
    (row,) = queries.violations(store).values()
    assert row["state"] == "retracted"


def test_the_keep_rate_view_says_what_measures_says(store):
    """The view of 0001_tables.sql and promise_tracker/measures.py define the keep-rate
    twice (SQL cannot import Python): they must give the same figures."""
    from promise_tracker.measures import KEEP_RATE

    hour = 1_767_268_800.0
    decided = [("kept", 0), ("kept", 60), ("broken", 120), ("expired", 180), ("cancelled", 240)]
    sink = ClickHouseSink(store)
    for n, (status, after) in enumerate(decided + [("broken", 3_600)]):
        sink.add("outcomes", OutcomeRow(f"p{n}", status, hour + after, "s", "web", "deadline",
                                        hour - 60, hour + after, 1))  # fmt: skip
    sink.flush()
    view = store.rows("SELECT hour, keep_rate FROM {db}.keep_rate_hourly ORDER BY hour")
    direct = store.rows(
        f"SELECT toStartOfHour(assumeNotNull(closed_at)) AS hour, {KEEP_RATE} AS keep_rate "
        "FROM {db}.outcomes FINAL WHERE status != 'open' GROUP BY hour ORDER BY hour"
    )
    assert view == direct and [row["keep_rate"] for row in view] == [2 / 3, 0]


def test_times_are_stored_cut_to_the_columns_precision_as_before(store):
    """As the JSON inserts of the chdb API stored them: the decimal text cut, not rounded
    (.9999995 -> .999999). Regression: 1796425954.1631129 * 1e6 is 1796425954163113.0 in
    floating point, one microsecond more than its text cut (...163112.9 -> ...163112)."""
    issued = [1796425954.1631129, 1767268800.9999995, 1767268800.123456, 1767268800.0]
    sink = ClickHouseSink(store)
    for n, at in enumerate(issued):
        sink.add("outcomes", OutcomeRow(f"p{n}", "open", None, "s", "web", "deadline", at, at, 1))
    for n, at in enumerate((1767268800123 / 1000, 1796425954.1631129)):
        sink.add_all([reject_row(reason="too_late", message="", event_id=None, raw=b"{}",
                                 origin="t", origin_part=0, origin_offset=n, rejected_at=at,
                                 version=1)])  # fmt: skip
    sink.flush()
    stored = store.rows(
        "SELECT toUnixTimestamp64Micro(issued_at) AS us, issued_at FROM {db}.outcomes FINAL "
        "ORDER BY promise_id"
    )
    assert [r["us"] for r in stored] == [
        1796425954163112,
        1767268800999999,
        1767268800123456,
        1767268800000000,
    ]
    assert stored[2]["issued_at"] == dt.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    ms = store.rows("SELECT toUnixTimestamp64Milli(rejected_at) AS ms FROM {db}.rejects FINAL")
    assert sorted(r["ms"] for r in ms) == [1767268800123, 1796425954163]


def test_a_nan_is_stored_and_read_as_null(store):
    """As the JSON inserts and reads of the chdb API had it: NaN is no number, NULL."""
    sink = ClickHouseSink(store)
    sink.add_all(violation_rows(violation(excess=math.nan), "e1", version=1))
    sink.flush()
    (row,) = queries.violations(store).values()
    assert row["excess"] is None
    assert store.rows("SELECT 0 / 0 AS nan, 1 / 0 AS inf, 0.5 AS half") == [
        {"nan": None, "inf": None, "half": 0.5}
    ]

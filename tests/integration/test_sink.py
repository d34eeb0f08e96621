"""Kafka to ClickHouse: events through the worker and the sink land in chdb with the replay's
answer, a killed sink doubles nothing, and a store outage loses nothing."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from promise_tracker.runtime.kafka import group_lag
from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from promise_tracker.sinks import readback as queries
from promise_tracker.sinks.store import ClickHouseStore
from tests.answers import Answer, active, replay_answer
from tests.live import (
    TopicReader,
    WorkerProcess,
    fresh_settings,
    last_by_key,
    raw_producer,
    wait_for,
)
from tests.streams import ORPHAN_TTL, PARTITIONS, QUIET, RETENTION, make_stream, send


@pytest.fixture
def pipeline(kafka: str, tmp_path: Path):
    """Own topics, a worker, and a sink writing to its own chdb directory."""
    settings = fresh_settings(
        kafka,
        partitions=PARTITIONS,
        quiet=QUIET,
        orphan_ttl=ORPHAN_TTL,
        retention=RETENTION,
        chdb_path=str(tmp_path / "chdb"),
        sink_flush_interval=0.2,
        sink_max_backoff=1.0,
        store_fault_file=str(tmp_path / "store-down"),
    )
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    sink = WorkerProcess(settings, tmp_path / "sink.log", command="sink").start()
    yield settings, worker, sink
    for process in (worker, sink):
        process.stop()


def outputs_of(settings: Settings) -> list[str]:
    return [settings.violations, settings.warnings, settings.outcomes, settings.dlq]


def drained(settings: Settings) -> bool:
    """The worker has committed all its input and the sink all the worker's output."""
    inputs = group_lag(settings, settings.group, [settings.issued, settings.observed])
    return inputs == 0 and group_lag(settings, settings.sink_group, outputs_of(settings)) == 0


TABLES = ("violations", "warnings", "outcomes", "promises", "violation_events", "rejects")


def stored_warnings(settings: Settings) -> dict[str, dict]:
    """Warning id -> what its stored row says (state, outcome, label, warn_at)."""
    store = ClickHouseStore(settings.chdb_path, settings.database).connect()
    try:
        rows = queries.warnings(store)
    finally:
        store.close()
    return {wid: _warning_facts(row) for wid, row in rows.items()}


def topic_warnings(settings: Settings) -> dict[str, dict]:
    """Warning id -> what the last message on promises.warnings says."""
    reader = TopicReader(settings.kafka, settings.warnings)
    try:
        while reader.poll(1.0):
            pass
        return {wid: _warning_facts(w) for wid, w in last_by_key(reader.messages).items()}
    finally:
        reader.consumer.close()


def _warning_facts(w: dict) -> dict:
    return {
        "state": w["state"],
        "outcome": w["outcome"],
        "label": w["label"],
        "warn_at": round(w["warn_at"], 6),
    }


def stored_answer(settings: Settings) -> tuple[Answer, Counter]:
    """What ClickHouse says, read once the sink has stopped (one process per chdb directory)."""
    store = ClickHouseStore(settings.chdb_path, settings.database).connect()
    try:
        violations = active(queries.violations(store))
        outcomes = queries.outcomes(store)
        rejects = queries.rejects(store)
        counts = queries.counts(store)
        for table in TABLES:
            store.command(f"OPTIMIZE TABLE {{db}}.{table} FINAL")
            raw = store.rows(f"SELECT count() AS n FROM {{db}}.{table}")[0]["n"]
            counts[f"{table} on disk"] = int(raw)
    finally:
        store.close()
    orphans = {r["event_id"] for r in rejects if r["reason"] == "unknown_promise"}
    reasons = Counter(r["reason"] for r in rejects if r["reason"] != "unknown_promise")
    return Answer(violations, outcomes, reasons, orphans), counts


def assert_same(got: Answer, expected: Answer) -> None:
    missing = expected.violations.keys() - got.violations.keys()
    extra = got.violations.keys() - expected.violations.keys()
    assert (len(missing), len(extra)) == (0, 0)
    changed = [k for k in expected.violations if expected.violations[k] != got.violations[k]]
    assert changed == []
    assert got.outcomes == expected.outcomes
    assert got.rejects == expected.rejects
    assert got.orphans <= expected.orphans


def finish(settings: Settings, worker: WorkerProcess, sink: WorkerProcess, timeout: float):
    assert wait_for(lambda: drained(settings), timeout), sink.tail()
    time.sleep(1.0)  # a last tick's emissions, if any, reach the sink too
    assert wait_for(lambda: drained(settings), timeout), sink.tail()
    assert worker.alive(), worker.tail()
    assert sink.stop() == 0, sink.tail()


def test_events_through_kafka_land_in_clickhouse_with_the_replay_answer(pipeline, tmp_path):
    settings, worker, sink = pipeline
    stream = make_stream(tmp_path, events=3000, seed=21)
    expected = replay_answer(stream, tmp_path)
    send(stream, settings)
    finish(settings, worker, sink, timeout=120)
    got, counts = stored_answer(settings)
    assert_same(got, expected)
    assert counts["outcomes"] == counts["promises"] == len(expected.outcomes)
    for table in TABLES:
        assert counts[f"{table} on disk"] == counts[table]  # merged: one row per id
    # the warnings table says what the topic says last, warning by warning
    warnings = stored_warnings(settings)
    assert warnings and warnings == topic_warnings(settings)


def test_a_killed_sink_doubles_nothing(pipeline, tmp_path):
    settings, worker, sink = pipeline
    stream = make_stream(tmp_path, events=8000, seed=22)
    expected = replay_answer(stream, tmp_path)
    total = len(stream.read_bytes().splitlines())
    chance = random.Random(22)
    kills = 0
    for part in range(4):
        send(stream, settings, slice(total * part // 4, total * (part + 1) // 4))
        time.sleep(chance.uniform(0.2, 1.5))
        sink.kill()  # rows written, offsets maybe not committed: they are read again
        kills += 1
        sink.start()
    finish(settings, worker, sink, timeout=120)
    got, counts = stored_answer(settings)
    assert_same(got, expected)
    for table in TABLES:
        assert counts[f"{table} on disk"] == counts[table]
    assert stored_warnings(settings) == topic_warnings(settings)
    print(f"{kills} sink kills: {dict(counts)}")


def test_a_store_outage_pauses_the_sink_and_loses_nothing(pipeline, tmp_path):
    settings, worker, sink = pipeline
    switch = Path(settings.store_fault_file)
    stream = make_stream(tmp_path, events=4000, seed=23)
    expected = replay_answer(stream, tmp_path)
    total = len(stream.read_bytes().splitlines())
    assert wait_for(lambda: "sink in group" in sink.log.read_text(), 60), sink.tail()
    send(stream, settings, slice(0, total // 2))
    switch.touch()  # the store goes down mid-stream
    send(stream, settings, slice(total // 2, None))
    assert wait_for(lambda: "consumption paused" in sink.log.read_text(), 30), sink.tail()
    lag = group_lag(settings, settings.sink_group, outputs_of(settings))
    time.sleep(4.0)  # nothing is committed while the store is down
    assert group_lag(settings, settings.sink_group, outputs_of(settings)) >= lag > 0
    switch.unlink()
    finish(settings, worker, sink, timeout=120)
    log = sink.log.read_text()
    assert "store back after" in log and "consumption resumed" in log
    got, _ = stored_answer(replace(settings))
    assert_same(got, expected)


def test_what_the_worker_did_not_write_is_kept_as_a_reject_not_dropped(pipeline):
    """Foreign records on the output topics (someone else's producer, a bad tool) must not
    stop the sink, and must not vanish: they land in ``rejects`` with their bytes."""
    settings, worker, sink = pipeline
    producer = raw_producer(settings.kafka)
    producer.produce(settings.violations, key=b"x", value=b"\xffnot json")
    producer.produce(settings.outcomes, key=b"y", value=b'{"id": "1", "data": {"status": 3}}')
    producer.produce(settings.dlq, value=b"a reject without headers")
    assert producer.flush(30) == 0
    finish(settings, worker, sink, timeout=60)
    store = ClickHouseStore(settings.chdb_path, settings.database).connect()
    try:
        rows = store.rows(
            "SELECT origin, reason, raw, raw_base64 FROM {db}.rejects FINAL ORDER BY origin"
        )
    finally:
        store.close()
    by_origin = {row["origin"]: row for row in rows}
    assert by_origin[settings.violations]["raw_base64"] == "/25vdCBqc29u"
    assert by_origin[settings.outcomes]["reason"] == "invalid_event"
    assert by_origin[settings.dlq]["raw"] == "a reject without headers"
    assert "not an output record" in sink.log.read_text()

#!/usr/bin/env python3
"""The ClickHouse store, measured against baselines from the same run.

    python3 bench/store.py [--events 200000] [--partitions 4] [--rounds 2] [--store-rounds 5]
                           [--sink-only]

1. Sink alone: the rows a replay of the stream produces (violations, their history,
   promises, outcomes, rejects) written to a fresh chdb directory through ``ClickHouseSink``
   in batches of 1k, 5k and 20k rows, and in one INSERT per table; each through both
   clients, in the same run: the store's (clickhouse-connect, its chdb backend: the rows go
   as Native columns) and the chdb package's own API that the store used before (the rows
   as JSONCompactColumns after the statement, kept here as ``ChdbApiStore``). They take
   turns, first one then the other, for ``--store-rounds`` rounds; the figures are medians
   and the ratio is clickhouse-connect's rows/s over the chdb API's, round by round.
2. Pipeline: the stream waits in the input topics. "Worker only" runs a worker over it and
   takes events/s from its first commit to its last. "Worker + sink" runs a worker (its own
   group and output topics) and a sink into chdb, and takes events/s from the worker's first
   commit to the moment the sink has committed every output record. The two alternate
   ``--rounds`` times; the store's cost is 1 - (worker + sink) / (worker only).
3. Freshness: a worker and a sink on new topics, 500 events/s of live traffic in which every
   second event breaks a promise; how long from sending that event (and from the violation's
   detection) until its row is stored (``stored_at``).

The broker is started with deploy/kafka/kafka.sh on ``--port`` unless one serves there;
``--sink-only`` measures step 1 alone (no broker). Figures go to stdout and
bench/out/store.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.worker import (  # noqa: E402
    OUT,
    bench_settings,
    broker,
    committed,
    end_offsets,
    load,
    now_iso,
    partitions_of,
    start,
)
from promise_tracker.emit import Emitter  # noqa: E402
from promise_tracker.runtime.kafka import group_lag  # noqa: E402
from promise_tracker.runtime.settings import Settings  # noqa: E402
from promise_tracker.runtime.topics import ensure_topics  # noqa: E402
from promise_tracker.sinks.batcher import ClickHouseSink  # noqa: E402
from promise_tracker.sinks.migrate import migrate  # noqa: E402
from promise_tracker.sinks.replay_tap import ClickHouseTap  # noqa: E402
from promise_tracker.sinks.store import (  # noqa: E402
    INSERT_SETTINGS,
    ClickHouseStore,
    Store,
    check_identifier,
)
from promise_tracker.sinks.tables import TABLES, columns  # noqa: E402
from promise_tracker.streams.replay import replay  # noqa: E402
from promise_tracker.synthetic import generate  # noqa: E402


class _Collect:
    """A sink stand-in that keeps the rows a replay makes, to write them again and again."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, Any]] = []
        self.pending = 0
        self.max_rows = 1 << 62

    def add_all(self, rows) -> None:  # type: ignore[no-untyped-def]
        self.rows += rows


def replay_rows(events: int) -> list[tuple[str, Any]]:
    path = OUT / f"live-{events}.jsonl"
    if not path.exists():
        generate(path, events=events, open_promises=max(events // 50, 100), seed=5)
    collect = _Collect()
    null = Path(os.devnull)
    replay([path], null, null, null, tap=ClickHouseTap(collect), progress=False)  # type: ignore[arg-type]
    return collect.rows


# the store's insert settings, as the chdb API's SQL wrote them
SETTINGS_TEXT = ", ".join(f"{name} = {value}" for name, value in INSERT_SETTINGS.items())


class ChdbApiStore:
    """The store as it was before clickhouse-connect: the chdb package's own session API,
    values bound as chdb parameters, rows as JSONCompactColumns after the INSERT (times as
    Unix seconds, which ClickHouse cuts to the column's precision). The baseline only."""

    def __init__(self, path: Path, database: str):
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        self.database = check_identifier(database)
        self._session = session.Session(str(path))

    def _query(self, sql: str, fmt: str, params: Mapping[str, Any] | None, data: str = "") -> Any:
        sql = sql.replace("{db}", self.database) + data
        text = {k: _escaped(v) for k, v in params.items()} if params else None
        return self._session.query(sql, fmt, params=text)

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._query(sql, "Null", params)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        data = self._query(sql, "JSONEachRow", params).bytes()
        return [orjson.loads(line) for line in data.splitlines() if line]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        if not rows:
            return
        body = orjson.dumps(list(zip(*rows, strict=True))).decode()
        cols = ", ".join(check_identifier(c, "column") for c in columns)
        statement = (
            f"INSERT INTO {{db}}.{check_identifier(table, 'table')} ({cols}) "
            f"SETTINGS {SETTINGS_TEXT} FORMAT JSONCompactColumns\n"
        )
        self._query(statement, "Null", None, body)

    def close(self) -> None:
        self._session.close()


def _escaped(value: Any) -> Any:
    """A chdb parameter in ClickHouse's escaped text form (what the chdb API wants)."""
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return value


CLIENTS = {
    "chdb API": lambda path, db: ChdbApiStore(path, db),
    "clickhouse-connect": lambda path, db: ClickHouseStore(path, db).connect(),
}
BATCHES: dict[str, int | None] = {
    "one INSERT per table": None,
    "1k": 1000,
    "5k": 5000,
    "20k": 20_000,
}


def write_all(store: Store, rows: list[tuple[str, Any]], batch: int | None) -> float:
    """Seconds to write ``rows`` into a migrated store: one INSERT per table, or through
    the sink in batches of ``batch`` rows."""
    started = time.perf_counter()
    if batch is None:
        tables: dict[str, list[Any]] = {t: [] for t in TABLES}
        for table, row in rows:
            tables[table].append(row)
        for table, table_rows in tables.items():
            store.insert(table, columns(table), table_rows)
    else:
        sink = ClickHouseSink(store, max_rows=batch, max_age=3600)
        for table, row in rows:
            sink.add(table, row)
            if sink.pending >= batch:
                sink.flush()
        sink.flush()
    return time.perf_counter() - started


def sink_alone(rows: list[tuple[str, Any]], rounds: int) -> dict[str, dict[str, Any]]:
    """Rows/s of each client per batch size (medians of the rounds), and the ratio
    clickhouse-connect / chdb API (the median of the rounds' ratios)."""
    results: dict[str, dict[str, Any]] = {}
    for client in CLIENTS.values():  # untimed: what a client does once (lazy imports)
        shutil.rmtree(OUT / "store-chdb", ignore_errors=True)
        store = client(OUT / "store-chdb", "warm_up")
        migrate(store)
        write_all(store, rows[:5000], 1000)
        store.close()
    for label, batch in BATCHES.items():
        rates: dict[str, list[float]] = {name: [] for name in CLIENTS}
        for round_number in range(rounds):
            order = list(CLIENTS) if round_number % 2 == 0 else list(reversed(CLIENTS))
            for name in order:
                directory = OUT / "store-chdb"
                shutil.rmtree(directory, ignore_errors=True)
                store = CLIENTS[name](directory, f"b{uuid.uuid4().hex[:8]}")
                migrate(store)
                elapsed = write_all(store, rows, batch)
                store.close()
                rates[name].append(len(rows) / elapsed)
        old, new = rates["chdb API"], rates["clickhouse-connect"]
        ratios = [n / o for n, o in zip(new, old, strict=True)]
        results[label] = {
            "chdb API": statistics.median(old),
            "clickhouse-connect": statistics.median(new),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
        }
        print(
            f"  {label:>20}: chdb API {results[label]['chdb API']:>9,.0f} rows/s, "
            f"clickhouse-connect {results[label]['clickhouse-connect']:>9,.0f} rows/s, "
            f"ratio {results[label]['ratio']:.2f} "
            f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})",
            flush=True,
        )
    shutil.rmtree(OUT / "store-chdb", ignore_errors=True)
    return results


def cpu_seconds(log: Path, pattern: str) -> float:
    """The CPU time a process reported in its last log line (``... N s of CPU``)."""
    found = re.findall(pattern + r".*?([\d.]+) s of CPU", log.read_text())
    return float(found[-1]) if found else float("nan")


def run(
    settings: Settings, total: int, with_sink: bool, timeout: float = 1800
) -> tuple[float, dict[str, float]]:
    """Events/s from the worker's first commit to the end (its last commit, or the sink's),
    and the CPU seconds each process used."""
    run_id = uuid.uuid4().hex[:6]
    settings = replace(
        settings,
        app_id=f"run{run_id}",
        topic_violations=f"violations.{run_id}",
        topic_outcomes=f"outcomes.{run_id}",
        topic_dlq=f"dlq.{run_id}",
        chdb_path=str(OUT / f"chdb-{run_id}"),
    )
    ensure_topics(settings)
    inputs = partitions_of(settings, [settings.issued, settings.observed])
    outputs = [settings.violations, settings.outcomes, settings.dlq]
    processes = [start("worker", settings, OUT / f"worker-{run_id}.log")]
    if with_sink:
        processes.append(start("sink", settings, OUT / f"sink-{run_id}.log"))
    try:
        began = time.perf_counter()
        first = None
        while time.perf_counter() - began < timeout:
            done = committed(settings, inputs)
            now = time.perf_counter()
            if done and first is None:
                first = (now, done)
            finished = done >= total and (
                not with_sink or group_lag(settings, settings.sink_group, outputs) == 0
            )
            if finished:
                assert first is not None
                # a stream so short that the first commit covers it: count from the start
                rate = (
                    (total - first[1]) / (now - first[0])
                    if now > first[0]
                    else total / (now - began)
                )
                break
            time.sleep(0.25)
        else:
            raise SystemExit(f"not finished in {timeout:g} s")
    finally:
        for process in processes:
            process.terminate()
            process.wait(60)
        shutil.rmtree(settings.chdb_path, ignore_errors=True)
    cpu = {"worker": cpu_seconds(OUT / f"worker-{run_id}.log", "worker stopped")}
    if with_sink:
        cpu["sink"] = cpu_seconds(OUT / f"sink-{run_id}.log", "sink stopped")
    return rate, cpu


def freshness(settings: Settings, rate: int = 500, seconds: float = 10) -> dict[str, float]:
    """How old a violation is when its row is in ClickHouse, under a light live load: from
    just before the observation that breaks the promise is sent, and from its detection."""
    run_id = uuid.uuid4().hex[:6]
    settings = replace(
        settings,
        topic_prefix=f"fresh{run_id}.",
        chdb_path=str(OUT / f"chdb-fresh-{run_id}"),
    )
    ensure_topics(settings)
    logs = {name: OUT / f"{name}-fresh-{run_id}.log" for name in ("worker", "sink")}
    processes = [start(name, settings, log) for name, log in logs.items()]
    sent: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while "sink in group" not in logs["sink"].read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # both have their partitions
        with Emitter(settings) as emitter:
            started = time.perf_counter()
            for n in range(int(rate * seconds)):
                pause = started + n / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                pid = f"fresh-{run_id}-{n // 2}"
                if n % 2 == 0:
                    emitter.issue_promise(
                        id=pid, source="bench/live", kind="max_wait", channel="phone",
                        terms={"max_seconds": 60}, time=now_iso(),
                    )  # fmt: skip
                else:
                    sent[pid] = time.time()
                    emitter.observe_delivery(
                        promise_id=pid, source="bench/acd", kind="hold_time",
                        value={"seconds": 600}, time=now_iso(),
                    )  # fmt: skip
        outputs = [settings.violations, settings.outcomes, settings.dlq]
        deadline = time.monotonic() + 60
        while group_lag(settings, settings.sink_group, outputs) and time.monotonic() < deadline:
            time.sleep(0.25)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(60)
    store = ClickHouseStore(settings.chdb_path, settings.database).connect()
    try:
        rows = store.rows(
            "SELECT promise_id, toUnixTimestamp64Milli(stored_at) AS stored, "
            "toUnixTimestamp64Milli(detected_at) AS detected FROM {db}.violations FINAL"
        )
    finally:
        store.close()
        shutil.rmtree(settings.chdb_path, ignore_errors=True)
    from_sent = sorted(int(r["stored"]) / 1000 - sent[r["promise_id"]] for r in rows)
    from_detected = sorted((int(r["stored"]) - int(r["detected"])) / 1000 for r in rows)

    def q(values: list[float], f: float) -> float:
        return 1000 * values[min(len(values) - 1, int(len(values) * f))]

    return {
        "violations": len(rows),
        "expected": len(sent),
        "sent_to_row_p50_ms": q(from_sent, 0.5),
        "sent_to_row_p99_ms": q(from_sent, 0.99),
        "detected_to_row_p50_ms": q(from_detected, 0.5),
        "detected_to_row_p99_ms": q(from_detected, 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=29092)
    parser.add_argument("--store-rounds", type=int, default=5)
    parser.add_argument("--sink-only", action="store_true", help="step 1 alone: no broker")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)

    print(f"1. sink alone: the rows of a replay of {args.events:,} events into chdb")
    rows = replay_rows(args.events)
    print(f"  {len(rows):,} rows, {args.store_rounds} rounds per client and batch size")
    alone = sink_alone(rows, args.store_rounds)
    if args.sink_only:
        results = {"events": args.events, "rows": len(rows), "sink_alone_rows_per_s": alone}
        (OUT / "store-sink.json").write_text(json.dumps(results, indent=2))
        return 0

    with broker(args.port) as kafka:
        settings = bench_settings(kafka, args.partitions)
        ensure_topics(settings)
        lines, _ = load(settings, args.events, args.partitions)
        total = end_offsets(settings, partitions_of(settings, [settings.issued, settings.observed]))
        print(f"2. pipeline: {lines:,} events ({total:,} messages) waiting in the input topics")
        only, both, cpu_share = [], [], []
        for round_number in range(args.rounds):
            rate, _ = run(settings, total, with_sink=False)
            only.append(rate)
            rate, cpu = run(settings, total, with_sink=True)
            both.append(rate)
            cpu_share.append(cpu["sink"] / cpu["worker"])
            print(
                f"  round {round_number + 1}: worker only {only[-1]:,.0f} ev/s, "
                f"worker + sink {both[-1]:,.0f} ev/s ({both[-1] / only[-1]:.2f}); "
                f"CPU: worker {cpu['worker']:.1f} s, sink {cpu['sink']:.1f} s "
                f"({cpu_share[-1]:.2f} of the worker's)"
            )
        fresh = freshness(settings)
        print(
            f"3. freshness at 500 ev/s: {fresh['violations']}/{fresh['expected']} violations; "
            f"sent to row p50 {fresh['sent_to_row_p50_ms']:.0f} ms, "
            f"p99 {fresh['sent_to_row_p99_ms']:.0f} ms; detected to row p50 "
            f"{fresh['detected_to_row_p50_ms']:.0f} ms, "
            f"p99 {fresh['detected_to_row_p99_ms']:.0f} ms"
        )
    ratio = statistics.median(b / o for b, o in zip(both, only, strict=True))
    print(f"store cost: {1 - ratio:.0%} of the pipeline's throughput (median of the rounds)")
    results = {
        "events": args.events,
        "rows": len(rows),
        "sink_alone_rows_per_s": alone,
        "worker_only_events_per_s": only,
        "worker_and_sink_events_per_s": both,
        "ratio_median": ratio,
        "store_cost": 1 - ratio,
        "sink_cpu_of_worker_cpu": cpu_share,
        "freshness": fresh,
        "cpu": os.cpu_count(),
    }
    (OUT / "store.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

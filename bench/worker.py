#!/usr/bin/env python3
"""The live worker on one real broker, measured in one run against a baseline from the same run.

    python3 bench/worker.py [--events 200000] [--partitions 4] [--rate 2000] [--seconds 20]

1. Baseline: a plain confluent-kafka consumer reads the input topics (the same events the
   worker will read) from the beginning: the rate at which bytes can leave this broker.
2. Throughput: one ``promise-tracker worker`` process starts with the whole stream waiting
   and works through it; events/s is measured from the worker group's committed offsets
   (its first commit to its last), so start-up is not counted. Committed means processed,
   state written to the changelog, and outputs flushed.
3. Detection latency at a fixed rate: live events at ``--rate`` events/s, a tenth of them
   a hold time over a ``max_wait`` promise (a violation the moment it is read); latency is
   from just before the observation is produced to the violation being consumed. Measured
   twice: first on a fresh worker with topics of its own (before anything else runs), then
   on the worker of step 2 right after it worked through the backlog.
4. Missed deadlines on a quiet stream: ``deliver_by`` promises due two seconds ahead and
   nothing else; how long after due + lateness the violation is consumed.

The broker is started with deploy/kafka/kafka.sh on ``--port`` (and stopped) unless one
already serves there. Figures go to stdout and bench/out/worker.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promise_tracker.emit import Emitter, InvalidEvent  # noqa: E402
from promise_tracker.retime import shift_lines  # noqa: E402
from promise_tracker.runtime.kafka import kafka_config, producer_config  # noqa: E402
from promise_tracker.runtime.settings import Settings  # noqa: E402
from promise_tracker.runtime.topics import ensure_topics  # noqa: E402
from promise_tracker.synthetic import generate  # noqa: E402

OUT = ROOT / "bench" / "out"
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
UTC = dt.UTC


@contextmanager
def broker(port: int) -> Iterator[str]:
    """A broker on ``port``: started with deploy/kafka/kafka.sh (and stopped) unless one
    already serves there."""
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_DATA": str(OUT / "kafka")}
    ours = subprocess.run([KAFKA_SH, "status"], env=env).returncode != 0
    if ours:
        subprocess.run([KAFKA_SH, "start"], env=env, check=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ours:
            subprocess.run([KAFKA_SH, "stop"], env=env, check=True)


def now_iso(offset: float = 0.0) -> str:
    return dt.datetime.fromtimestamp(time.time() + offset, UTC).isoformat()


def consumer(settings: Settings, group: str | None = None) -> Consumer:
    return Consumer(
        {
            **kafka_config(settings),
            "group.id": group or f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,  # a reader that waits adds its wait to latencies
        }
    )


def partitions_of(settings: Settings, topics: list[str]) -> list[TopicPartition]:
    c = consumer(settings)
    meta = c.list_topics(timeout=30).topics
    c.close()
    return [TopicPartition(t, p) for t in topics for p in meta[t].partitions]


def end_offsets(settings: Settings, tps: list[TopicPartition]) -> int:
    c = consumer(settings)
    total = sum(c.get_watermark_offsets(tp, timeout=30)[1] for tp in tps)
    c.close()
    return total


# --- 1. load and baseline ----------------------------------------------------------------


def load(settings: Settings, events: int, partitions: int) -> tuple[int, float]:
    path = OUT / f"live-{events}.jsonl"
    if not path.exists():
        generate(path, events=events, open_promises=max(events // 50, 100), seed=5)
    end = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
    lines = shift_lines(path.read_bytes().splitlines(), end)
    started = time.perf_counter()
    junk = Producer(producer_config(settings))  # for the lines the SDK refuses to send
    with Emitter(settings) as emitter:
        for line in lines:
            try:
                emitter.send_event(line)
            except InvalidEvent:
                junk.produce(settings.issued, value=line)
    assert junk.flush(30) == 0
    return len(lines), time.perf_counter() - started


def baseline(settings: Settings, expected: int) -> float:
    """Plain consume of both input topics, values touched (len) so nothing is lazy."""
    c = consumer(settings)
    c.assign(
        [
            TopicPartition(tp.topic, tp.partition, 0)
            for tp in partitions_of(settings, [settings.issued, settings.observed])
        ]
    )
    seen = size = 0
    started = None
    while seen < expected:
        batch = c.consume(10_000, 5.0)
        if not batch:
            break
        if started is None:
            started = time.perf_counter()
        for message in batch:
            if message.error() is None:
                seen += 1
                size += len(message.value())
    elapsed = time.perf_counter() - (started or time.perf_counter())
    c.close()
    return seen / elapsed if elapsed else float("nan")


# --- 2. the worker -----------------------------------------------------------------------


def bench_settings(kafka: str, partitions: int) -> Settings:
    """The environment's settings on the benchmark broker, with topics of this run's own and
    no metrics ports (a running worker or sink may hold the default ones)."""
    return replace(
        Settings.from_env(),
        kafka=kafka,
        topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
        partitions=partitions,
        metrics_port=0,
        sink_metrics_port=0,
    )


def start(command: str, settings: Settings, log: Path) -> subprocess.Popen:
    """``promise-tracker COMMAND`` (worker, sink) under these settings, output to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "promise_tracker.cli", command],
        env=settings.environment(),
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def committed(settings: Settings, tps: list[TopicPartition]) -> int:
    c = consumer(settings, group=settings.group)
    offsets = c.committed(tps, timeout=30)
    c.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def throughput(settings: Settings, total: int, timeout: float = 1800) -> tuple[float, float]:
    """(events/s from first to last commit, seconds from start to last commit)."""
    tps = partitions_of(settings, [settings.issued, settings.observed])
    started = time.perf_counter()
    first: tuple[float, int] | None = None
    while time.perf_counter() - started < timeout:
        done = committed(settings, tps)
        at = time.perf_counter()
        if done and first is None:
            first = (at, done)
        if done >= total:
            assert first is not None
            rate = (done - first[1]) / (at - first[0]) if at > first[0] else float("nan")
            return rate, at - started
        time.sleep(0.5)
    raise SystemExit(f"the worker did not finish in {timeout:g} s")


# --- 3. latency at a fixed rate ------------------------------------------------------------


def latency(settings: Settings, rate: int, seconds: float) -> dict[str, float]:
    reader = consumer(settings)
    reader.assign(
        [
            TopicPartition(tp.topic, tp.partition, end)
            for tp in partitions_of(settings, [settings.violations])
            for end in [reader.get_watermark_offsets(tp, timeout=30)[1]]
        ]
    )
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    run = uuid.uuid4().hex[:6]
    with Emitter(settings) as emitter:
        # a new producer's first records wait for its connection, producer id and metadata
        # (measured: ~0.6 s, the p99 of the whole run); one promise sent and flushed first
        emitter.issue_promise(
            id=f"lat-{run}-warm-up",
            source="bench/live",
            kind="max_wait",
            channel="phone",
            terms={"max_seconds": 60},
            time=now_iso(),
        )
        emitter.flush()
        started = time.perf_counter()
        n = 0
        while time.perf_counter() - started < seconds:
            due = started + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pid = f"lat-{run}-{n // 10}"
            if n % 10 == 0:
                emitter.issue_promise(
                    id=pid,
                    source="bench/live",
                    kind="max_wait",
                    channel="phone",
                    terms={"max_seconds": 60},
                    time=now_iso(),
                )
            elif n % 10 == 1:
                sent_at[pid] = time.perf_counter()
                emitter.observe_delivery(
                    promise_id=pid,
                    source="bench/acd",
                    kind="hold_time",
                    value={"seconds": 600},
                    time=now_iso(),
                )
            else:  # ordinary traffic: page views of a max_steps promise that is kept
                if n % 10 == 2:
                    emitter.issue_promise(
                        id=pid + "-s",
                        source="bench/web",
                        kind="max_steps",
                        channel="web",
                        terms={"max_steps": 20, "goal": "done"},
                        time=now_iso(),
                    )
                else:
                    emitter.observe_delivery(
                        promise_id=pid + "-s",
                        source="bench/web",
                        kind="page_reached",
                        value={"page": f"p{n % 10}"},
                        time=now_iso(),
                    )
            n += 1
            for message in reader.consume(1000, 0):
                _record_latency(message, sent_at, latencies)
        emitter.flush()
    deadline = time.perf_counter() + 30
    while len(latencies) < len(sent_at) and time.perf_counter() < deadline:
        for message in reader.consume(1000, 0.2):
            _record_latency(message, sent_at, latencies)
    reader.close()
    latencies.sort()
    return {
        "events": n,
        "rate_achieved": n / seconds,
        "violations": len(latencies),
        "expected_violations": len(sent_at),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
    }


def fresh_latency(kafka: str, args: argparse.Namespace) -> dict[str, float]:
    """Step 3 on a worker that has read nothing yet, on topics of its own."""
    settings = bench_settings(kafka, args.partitions)
    ensure_topics(settings)
    worker = start("worker", settings, OUT / "worker-fresh.log")
    try:
        time.sleep(5)  # joins the group and takes its partitions
        lat = latency(settings, args.rate, args.seconds)
    finally:
        worker.terminate()
        worker.wait(60)
    _print_latency("fresh worker", lat)
    return lat


def _print_latency(when: str, lat: dict[str, float]) -> None:
    print(
        f"latency ({when}) at {lat['rate_achieved']:,.0f} ev/s: p50 {lat['p50_ms']:.0f} ms, "
        f"p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms "
        f"({lat['violations']}/{lat['expected_violations']} violations)"
    )


def _record_latency(message, sent_at: dict[str, float], out: list[float]) -> None:
    if message.error() is not None:
        return
    pid = orjson.loads(message.value())["data"]["promise_id"]
    if pid in sent_at and orjson.loads(message.value())["data"]["state"] == "active":
        out.append(time.perf_counter() - sent_at[pid])


# --- 4. missed deadlines on a quiet stream -------------------------------------------------


def missed_deadlines(settings: Settings, count: int = 5) -> list[float]:
    reader = consumer(settings)
    reader.assign(
        [
            TopicPartition(tp.topic, tp.partition, end)
            for tp in partitions_of(settings, [settings.violations])
            for end in [reader.get_watermark_offsets(tp, timeout=30)[1]]
        ]
    )
    lags = []
    time.sleep(3)  # let the stream fall quiet
    for i in range(count):
        pid = f"quiet-{uuid.uuid4().hex[:6]}-{i}"
        due = time.time() + 2
        with Emitter(settings) as emitter:
            emitter.issue_promise(
                id=pid,
                source="bench/quiet",
                kind="deliver_by",
                channel="mail",
                terms={"due_at": dt.datetime.fromtimestamp(due, UTC).isoformat()},
                time=now_iso(),
            )
        deadline = time.time() + 30
        while time.time() < deadline:
            hits = [
                m
                for m in reader.consume(100, 0.05)
                if m.error() is None and orjson.loads(m.value())["data"]["promise_id"] == pid
            ]
            if hits:
                lags.append(time.time() - (due + settings.lateness))
                break
        else:
            lags.append(float("inf"))
    reader.close()
    return lags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=29092)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)

    worker = None
    with broker(args.port) as kafka:
        try:
            fresh = fresh_latency(kafka, args)
            settings = bench_settings(kafka, args.partitions)
            ensure_topics(settings)
            lines, load_s = load(settings, args.events, args.partitions)
            total = end_offsets(
                settings, partitions_of(settings, [settings.issued, settings.observed])
            )
            print(
                f"loaded {lines} events ({total} messages) in {load_s:.1f} s "
                f"({lines / load_s:,.0f}/s through the SDK)"
            )
            base = baseline(settings, total)
            print(f"baseline: plain confluent-kafka consume {base:,.0f} msg/s")
            worker = start("worker", settings, OUT / "worker.log")
            rate, wall = throughput(settings, total)
            print(
                f"worker: {rate:,.0f} events/s ({rate / base:.3f} of the baseline), "
                f"{wall:.1f} s from process start to the last commit"
            )
            lat = latency(settings, args.rate, args.seconds)
            _print_latency("after the backlog", lat)
            lags = missed_deadlines(settings)
            print(
                "missed deadline flagged after due + lateness: "
                + ", ".join(f"{lag:.2f} s" for lag in lags)
            )
            results = {
                "events": lines,
                "messages": total,
                "partitions": args.partitions,
                "baseline_consume_per_s": base,
                "worker_events_per_s": rate,
                "worker_ratio_to_baseline": rate / base,
                "worker_wall_s": wall,
                "latency_fresh": fresh,
                "latency": lat,
                "missed_deadline_lag_s": lags,
                "lateness_s": settings.lateness,
                "cpu": os.cpu_count(),
            }
            (OUT / "worker.json").write_text(json.dumps(results, indent=2))
            print(f"median missed-deadline lag {statistics.median(lags):.2f} s")
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

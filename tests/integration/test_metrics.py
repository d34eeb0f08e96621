"""Metrics for real: a worker and a sink process on the real broker, their /metrics read
over HTTP after a known set of events, and the real Prometheus scraping both."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from tests.live import WorkerProcess, fresh_settings, raw_producer, wait_for
from tests.prometheus import Prometheus, Samples, config, free_port, nonzero, scrape
from tests.support import ROOT

WAIT = {"max_seconds": 60}


@pytest.fixture
def pipeline(kafka: str, tmp_path: Path):
    """A worker and a sink with their metrics on free ports, and Prometheus scraping both."""
    settings = fresh_settings(
        kafka,
        partitions=2,
        metrics_port=free_port(),
        sink_metrics_port=free_port(),
        chdb_path=str(tmp_path / "chdb"),
        sink_flush_interval=0.2,
    )
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    sink = WorkerProcess(settings, tmp_path / "sink.log", command="sink").start()
    jobs = {
        "promise-tracker-worker": [f"127.0.0.1:{settings.metrics_port}"],
        "promise-tracker-sink": [f"127.0.0.1:{settings.sink_metrics_port}"],
    }
    prometheus = Prometheus(tmp_path / "prometheus", config(jobs, interval="1s"))
    try:
        prometheus.start()
        yield settings, worker, sink, prometheus
    finally:
        prometheus.stop()
        for process in (worker, sink):
            process.stop()


def at(seconds: float = 0.0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


def issued(pid: str, kind: str = "max_wait", terms: dict = WAIT, time: str = "") -> dict:
    return {
        "specversion": "1.0",
        "type": "promise.issued",
        "source": "test/metrics",
        "id": pid,
        "time": time or at(),
        "data": {"kind": kind, "channel": "phone", "terms": terms},
    }


def hold(pid: str, seconds: int) -> dict:
    return {
        "specversion": "1.0",
        "type": "delivery.observed",
        "source": "test/metrics",
        "id": f"{pid}-hold",
        "time": at(),
        "data": {"promise_id": pid, "kind": "hold_time", "value": {"seconds": seconds}},
    }


def send(settings: Settings, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = raw_producer(settings.kafka)  # the SDK's partitioner, and junk allowed
    for topic, key, value in messages:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def metrics(port: int) -> Samples:
    return scrape(f"http://127.0.0.1:{port}/metrics")


def reached(port: int, check) -> bool:  # type: ignore[no-untyped-def]
    try:
        return check(metrics(port))
    except OSError:  # not serving yet
        return False


def test_the_worker_and_the_sink_count_what_happened_and_prometheus_scrapes_them(pipeline):
    settings, worker, sink, prometheus = pipeline
    i, o = settings.issued, settings.observed
    promises = [issued(f"wait-{n}") for n in range(3)]
    due = issued("due", "deliver_by", {"due_at": at(2)})
    send(
        settings,
        [(i, p["id"].encode(), orjson.dumps(p)) for p in [*promises, due, promises[0]]]
        + [(o, p["id"].encode(), orjson.dumps(hold(p["id"], 600))) for p in promises]
        + [
            (i, b"j1", b"\xff\xfe not json"),
            (i, b"j2", b'{"specversion": "1.0"'),
            (o, b"j3", orjson.dumps({**hold("wait-0", 1), "type": "promise.amended"})),
            (i, b"not-its-id", orjson.dumps(issued("keyed-wrong"))),
        ],
    )
    port = settings.metrics_port
    # every owned partition's watermark follows the wall clock once its topics are quiet
    assert wait_for(
        lambda: reached(
            port,
            lambda m: (
                len(d := m.by("promise_tracker_watermark_delay_seconds", "partition")) == 2
                and max(d.values()) < 30
                and m.by("promise_tracker_events_total", "topic") == {i: 8, o: 4}
            ),
        ),
        60,
    ), worker.tail()
    late = issued("late", time=at(-120))  # two minutes behind a watermark near the clock
    send(settings, [(i, b"late", orjson.dumps(late))])
    expected_violations = {"wait_exceeded": 3, "not_delivered": 1}

    def done(m: Samples) -> bool:
        by_reason = {
            dict(k)["reason"]: v for k, v in m.series["promise_tracker_violations_total"].items()
        }
        return m.get("promise_tracker_late_events_total") == 1 and by_reason == expected_violations

    assert wait_for(lambda: reached(port, done), 30), worker.tail()
    got = metrics(port)
    assert got.by("promise_tracker_events_total", "topic") == {i: 9, o: 4}
    assert nonzero(got.by("promise_tracker_rejects_total", "reason")) == {
        "invalid_json": 2,
        "unknown_type": 1,
        "invalid_event": 1,
    }
    for reason, n in expected_violations.items():
        assert got.get("promise_tracker_violations_total", reason=reason, state="active") == n
    assert got.get("promise_tracker_duplicates_total") == 1
    assert got.get("promise_tracker_owned_partitions") == 2
    assert got.get("promise_tracker_open_promises") == 5  # held: 4, and the late one
    delays = got.by("promise_tracker_watermark_delay_seconds", "partition")
    assert set(delays) == {"0", "1"} and all(0 < d < 30 for d in delays.values()), delays

    # the sink: each reject, violation and promise is one row (outcomes change, and a
    # batch keeps the last of each: between one per promise and one per outcome record)
    rows = {"rejects": 4, "violations": 4, "violation_events": 4, "promises": 5}
    sink_port = settings.sink_metrics_port

    def stored(m: Samples) -> bool:
        written = m.by("promise_tracker_sink_rows_total", "table")
        return all(written.get(table) == n for table, n in rows.items())

    assert wait_for(lambda: reached(sink_port, stored), 30), sink.tail()
    got = metrics(sink_port)
    written = got.by("promise_tracker_sink_rows_total", "table")
    assert 5 <= written["outcomes"] <= 10
    assert got.get("promise_tracker_sink_batch_rows_sum") == sum(written.values())
    assert got.get("promise_tracker_sink_batch_rows_count") >= 1
    assert got.get("promise_tracker_sink_flush_seconds_count") == got.get(
        "promise_tracker_sink_batch_rows_count"
    )
    assert got.get("promise_tracker_sink_failures_total") == 0
    assert got.get("promise_tracker_sink_lag_seconds") is not None

    # Prometheus scraped both, and PromQL gives the same sums
    up = {"promise-tracker-worker": 1.0, "promise-tracker-sink": 1.0}
    assert prometheus.wait_for("up", lambda v: v == up, "job") == up
    events = prometheus.wait_for(
        "sum by (topic) (promise_tracker_events_total)", lambda v: v == {i: 9, o: 4}, "topic"
    )
    assert events == {i: 9.0, o: 4.0}
    rejects = prometheus.wait_for("sum(promise_tracker_rejects_total)", lambda v: v == {"": 4.0})
    assert rejects == {"": 4.0}
    stored_rejects = prometheus.wait_for(
        'promise_tracker_sink_rows_total{table="rejects"}', lambda v: v == {"": 4.0}
    )
    assert stored_rejects == {"": 4.0}
    _oncall_panels_answer(prometheus, i, o)
    assert worker.alive() and sink.alive()


def _oncall_panels_answer(prometheus: Prometheus, issued_topic: str, observed_topic: str) -> None:
    """The on-call dashboard's Prometheus panels, as committed, on the real Prometheus, with
    ``$__rate_interval`` as Grafana sets it: max(interval + scrape interval, 4 x scrape
    interval), here 4 s (1 s scrapes)."""
    board = orjson.loads((ROOT / "deploy" / "grafana" / "dashboards" / "oncall.json").read_bytes())
    exprs = {
        p["title"]: p["targets"][0]["expr"].replace("$__rate_interval", "4s")
        for p in board["panels"]
        if p["datasource"]["uid"] == "prometheus"
    }
    assert set(exprs) == {
        "Alerts waiting for Alertmanager",
        "Events in",
        "Late events",
        "Watermark delay",
    }
    events = prometheus.wait_for(exprs["Events in"], lambda v: len(v) == 2, "topic")
    assert set(events) == {issued_topic, observed_topic}
    assert all(rate >= 0 for rate in events.values())
    late = prometheus.wait_for(exprs["Late events"], lambda v: len(v) == 1)
    assert list(late.values())[0] >= 0
    delay = prometheus.wait_for(exprs["Watermark delay"], lambda v: len(v) == 2, "partition")
    assert set(delay) == {"0", "1"} and all(0 < d < 30 for d in delay.values())
    # paging is off here: no queue, no series (the panel shows "No data", not a false 0)
    assert prometheus.values(exprs["Alerts waiting for Alertmanager"]) == {}

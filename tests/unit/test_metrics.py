"""The worker's and the sink's metrics as Prometheus reads them (the exposition text, parsed),
from real engines and a real batching sink; the settings; the scrape configuration."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from promise_tracker.runtime.exposition import MetricsPortTaken, serve
from promise_tracker.runtime.settings import Settings, SettingsError
from promise_tracker.schemas.reject import Reason
from promise_tracker.sinks.batcher import ClickHouseSink
from promise_tracker.sinks.rows import reject_row
from promise_tracker.sinks.sink_metrics import SinkMetrics
from promise_tracker.sinks.store import StoreUnavailable
from promise_tracker.streams.engine import EngineConfig
from promise_tracker.streams.live import Partition
from promise_tracker.streams.worker_metrics import WorkerCollector, WorkerCounts
from tests.prometheus import Samples, nonzero
from tests.support import ROOT, line, observe, promise, ts, unix

ISSUED, OBSERVED = "promises.issued", "deliveries.observed"
NOW = unix(10)


def partition(number: int) -> Partition:
    return Partition(number, (ISSUED, OBSERVED), EngineConfig(), 5.0, lambda: NOW)


def feed(worker: SimpleNamespace, number: int, topic: str, raw: bytes, key: bytes | None) -> None:
    """What Worker._message does, without a broker."""
    worker.counts.read[topic] += 1
    part = worker.partitions[number]
    part.message(topic, part.next_offset.get(topic, 0), key, raw)
    part.outbox.take()


def send(worker: SimpleNamespace, number: int, event: dict) -> None:
    topic = ISSUED if event["type"] == "promise.issued" else OBSERVED
    pid = event["id"] if topic == ISSUED else event["data"]["promise_id"]
    feed(worker, number, topic, line(event), pid.encode())


def scrape(registry: CollectorRegistry) -> Samples:
    return Samples(generate_latest(registry).decode())


@pytest.fixture
def worker() -> SimpleNamespace:
    """A worker's counters and two owned partitions, with traffic of every kind."""
    w = SimpleNamespace(
        partitions={0: partition(0), 1: partition(1)},
        counts=WorkerCounts((ISSUED, OBSERVED)),
        clock=lambda: NOW,
    )
    wait = {"max_seconds": 60}
    for number in (0, 1):
        pid = f"p{number}"
        send(w, number, promise(pid, "max_wait", wait, at=ts(9), channel="phone"))
        send(w, number, observe(f"o{number}", pid, "hold_time", ts(9, 10), seconds=600))
    send(w, 0, promise("p0", "max_wait", wait, at=ts(9), channel="phone"))  # exact duplicate
    send(w, 0, promise("late", "max_wait", wait, at=ts(8), channel="phone"))  # behind the watermark
    feed(w, 1, ISSUED, b"\xff not json", b"k")
    feed(w, 1, OBSERVED, b'{"specversion": "1.0"', b"k")
    feed(w, 1, ISSUED, line(promise("wrong-key", "max_wait", wait, at=ts(9))), b"other")
    return w


def test_the_worker_collector_reports_what_the_engines_counted(worker):
    registry = CollectorRegistry()
    registry.register(WorkerCollector(worker))
    got = scrape(registry)
    assert got.by("promise_tracker_events_total", "topic") == {ISSUED: 6, OBSERVED: 3}
    assert nonzero(got.by("promise_tracker_rejects_total", "reason")) == {
        "invalid_json": 2,
        "invalid_event": 1,
    }
    assert set(got.by("promise_tracker_rejects_total", "reason")) == set(map(str, Reason))
    assert got.get("promise_tracker_violations_total", reason="wait_exceeded", state="active") == 2
    assert len(got.series["promise_tracker_violations_total"]) == 1
    assert got.get("promise_tracker_late_events_total") == 1
    assert got.get("promise_tracker_duplicates_total") == 1
    assert got.get("promise_tracker_owned_partitions") == 2
    assert got.get("promise_tracker_open_promises") == 3  # p0, p1 and the late one
    delays = got.by("promise_tracker_watermark_delay_seconds", "partition")
    # the promises topic is behind (9 h against 9 h 10 s): it holds the watermark
    assert delays == {"0": NOW - (unix(9) - 5.0), "1": NOW - (unix(9) - 5.0)}
    assert "promise_tracker_alerts_sent_total" not in got.series  # no pager: no paging metrics


def test_counters_stay_monotonic_when_partitions_move_and_engines_are_rebuilt(worker):
    registry = CollectorRegistry()
    registry.register(WorkerCollector(worker))
    before = scrape(registry)
    worker.counts.retire(worker.partitions, 1)  # revoked
    worker.counts.retire(worker.partitions, 0)  # rebuilt from the changelog (stats at zero)
    worker.partitions[0] = partition(0)
    worker.counts.bug_rejects += 1  # the worker dead-lettered a message it failed on
    after = scrape(registry)
    for name in (
        "promise_tracker_violations_total",
        "promise_tracker_late_events_total",
        "promise_tracker_duplicates_total",
        "promise_tracker_events_total",
    ):
        assert after.series[name] == before.series[name], name
    assert nonzero(after.by("promise_tracker_rejects_total", "reason")) == {
        "invalid_json": 2,
        "invalid_event": 2,
    }
    assert after.get("promise_tracker_owned_partitions") == 1
    assert after.get("promise_tracker_open_promises") == 0
    # partition 1 is not ours any more: its series is gone; 0 has no watermark yet
    assert after.by("promise_tracker_watermark_delay_seconds", "partition") == {}


def test_the_pager_figures_are_read_at_scrape_time(worker):
    worker.pager = SimpleNamespace(queue_depth=3, active_count=2, sent=7, failed_posts=1, dropped=0)
    registry = CollectorRegistry()
    registry.register(WorkerCollector(worker))
    worker.pager.sent = 9
    got = scrape(registry)
    assert got.get("promise_tracker_alert_queue_depth") == 3
    assert got.get("promise_tracker_alerts_active") == 2
    assert got.get("promise_tracker_alerts_sent_total") == 9
    assert got.get("promise_tracker_alert_post_failures_total") == 1
    assert got.get("promise_tracker_alerts_dropped_total") == 0


class Store:
    """Takes rows, or refuses them while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.rows: dict[str, int] = {}

    def insert(self, table: str, columns, rows) -> None:  # type: ignore[no-untyped-def]
        if self.down:
            raise StoreUnavailable("down")
        self.rows[table] = self.rows.get(table, 0) + len(rows)


def reject(offset: int) -> tuple[str, list]:
    return reject_row(
        reason="invalid_json",
        message="m",
        event_id=None,
        raw=b"x",
        origin="promises.issued",
        origin_part=0,
        origin_offset=offset,
        rejected_at=0.0,
        version=offset,
    )


def test_the_sink_metrics_count_rows_flushes_failures_and_the_lag():
    store, now = Store(), [100.0]
    sink = ClickHouseSink(store, clock=lambda: now[0])  # type: ignore[arg-type]
    metrics = SinkMetrics(sink)
    registry = CollectorRegistry()
    metrics.register(registry)
    assert scrape(registry).get("promise_tracker_sink_lag_seconds") == 0  # nothing waits
    sink.add_all([reject(0), reject(1), reject(2)])
    now[0] += 4.0
    store.down = True
    with pytest.raises(StoreUnavailable):
        metrics.flush()
    got = scrape(registry)
    assert got.get("promise_tracker_sink_failures_total") == 1
    assert got.get("promise_tracker_sink_lag_seconds") == 4.0  # the batch is held
    assert got.get("promise_tracker_sink_rows_total", table="rejects") == 0
    store.down = False
    metrics.flush()
    sink.add(*reject(3))
    metrics.flush()
    got = scrape(registry)
    assert got.get("promise_tracker_sink_rows_total", table="rejects") == 4 == store.rows["rejects"]
    assert got.get("promise_tracker_sink_batch_rows_count") == 2
    assert got.get("promise_tracker_sink_batch_rows_sum") == 4
    assert got.get("promise_tracker_sink_batch_rows_bucket", le="1.0") == 1
    assert got.get("promise_tracker_sink_flush_seconds_count") == 2
    assert got.get("promise_tracker_sink_lag_seconds") == 0


def test_a_taken_port_stops_the_process_with_the_setting_and_the_fix():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsPortTaken) as caught:
            serve(CollectorRegistry(), "127.0.0.1", port, "metrics_port")
    message = str(caught.value)
    assert f"PROMISE_TRACKER_METRICS_PORT={port}" in message and "own port" in message
    assert "\n" not in message
    assert serve(CollectorRegistry(), "127.0.0.1", 0, "metrics_port") is None  # off


def test_the_endpoint_serves_the_registry():
    registry = CollectorRegistry()
    SinkMetrics(ClickHouseSink(Store())).register(registry)  # type: ignore[arg-type]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serve(registry, "127.0.0.1", port, "sink_metrics_port")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            got = Samples(response.read().decode())
        assert got.get("promise_tracker_sink_failures_total") == 0
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_settings_are_checked():
    assert Settings.from_env({}).metrics_port == 9464
    assert Settings.from_env({}).sink_metrics_port == 9465
    assert Settings.from_env({}).metrics_host == "127.0.0.1"
    assert Settings.from_env({"PROMISE_TRACKER_METRICS_PORT": "0"}).metrics_port == 0
    env = {"PROMISE_TRACKER_SINK_METRICS_PORT": "9999", "PROMISE_TRACKER_METRICS_HOST": "0.0.0.0"}
    assert Settings.from_env(env).sink_metrics_port == 9999
    for name, value in (
        ("PROMISE_TRACKER_METRICS_PORT", "70000"),
        ("PROMISE_TRACKER_SINK_METRICS_PORT", "-1"),
        ("PROMISE_TRACKER_METRICS_HOST", "local host"),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


def test_the_scrape_configuration_is_valid():
    assert shutil.which("promtool"), "promtool is not installed: ./dev test installs it"
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    assert "job_name: promise-tracker-worker" in text and "job_name: promise-tracker-sink" in text

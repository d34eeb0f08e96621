"""The sink's Prometheus metrics: per flush (a few a second at most), never per row.

``promise_tracker_sink_lag_seconds`` is the age of the oldest row held in the sink's
buffer, waiting to be written (0 when nothing waits). It grows while the store is down
(the batch is kept and retried) or while flushes are slow; it does not see records the
sink has not read yet: that is its consumer group's lag on the output topics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from promise_tracker.sinks.batcher import ClickHouseSink

ROWS_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class SinkMetrics(Collector):
    """The runner flushes through ``flush()``, which observes the histograms; counters and
    the lag are read from the sink at scrape time."""

    def __init__(self, sink: ClickHouseSink):
        self.sink = sink
        self.failures = 0  # flushes the store refused (each retry counts)
        self.batch_rows = Histogram(
            "promise_tracker_sink_batch_rows",
            "Rows written per flush",
            buckets=ROWS_BUCKETS,
            registry=None,
        )
        self.flush_seconds = Histogram(
            "promise_tracker_sink_flush_seconds",
            "Time to write one batch (successful flushes)",
            buckets=SECONDS_BUCKETS,
            registry=None,
        )

    def register(self, registry: CollectorRegistry) -> None:
        for collector in (self.batch_rows, self.flush_seconds, self):
            registry.register(collector)

    def flush(self) -> None:
        """``sink.flush()`` with its rows and time recorded; a failure counted, re-raised."""
        sink = self.sink
        rows, started = sink.pending, time.perf_counter()
        try:
            sink.flush()
        except Exception:
            self.failures += 1
            raise
        if rows:
            self.batch_rows.observe(rows)
            self.flush_seconds.observe(time.perf_counter() - started)

    def collect(self) -> Iterator[Metric]:
        sink = self.sink
        rows = CounterMetricFamily(
            "promise_tracker_sink_rows", "Rows written to the store, by table", labels=["table"]
        )
        for table, n in sorted(dict(sink.written_by_table).items()):
            rows.add_metric([table], n)
        yield rows
        failures = CounterMetricFamily(
            "promise_tracker_sink_failures", "Flushes the store refused (retried later)"
        )
        failures.add_metric([], self.failures)
        yield failures
        lag = GaugeMetricFamily(
            "promise_tracker_sink_lag_seconds",
            "Age of the oldest row waiting in the sink to be written (0: none waits)",
        )
        lag.add_metric([], sink.oldest_age())
        yield lag

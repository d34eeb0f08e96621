"""The worker's Prometheus metrics, read from counters it keeps anyway, at scrape time.

The hot path runs at 20-30k messages/s: nothing here is called per message. The worker
counts messages read in a plain dict, each engine counts in its ``Stats``, and the
collector turns those into metric families when Prometheus asks. Engines are rebuilt on
every assignment (their ``Stats`` start again at zero), so the counts of an engine that
goes away are kept in ``WorkerCounts.retired``: every counter stays monotonic across
rebalances and restores, as Prometheus' ``rate()`` needs.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from promise_tracker.schemas.reject import Reason
from promise_tracker.streams.engine import Stats
from promise_tracker.streams.live import Partition

NAMESPACE = "promise_tracker"


def add_stats(into: Stats, other: Stats) -> None:
    """``into += other``, field by field (ints and Counters), whatever fields Stats has."""
    for f in fields(Stats):
        value = getattr(other, f.name)
        if isinstance(value, Counter):
            getattr(into, f.name).update(dict(value))
        else:
            setattr(into, f.name, getattr(into, f.name) + value)


class WorkerCounts:
    """What the worker counts beyond its engines: messages read per input topic, the
    messages it dead-lettered itself (a bug in the engine), and retired engines' Stats."""

    def __init__(self, inputs: tuple[str, ...]):
        self.read: dict[str, int] = dict.fromkeys(inputs, 0)
        self.bug_rejects = 0
        self.retired = Stats()
        # held while an engine moves from the owned ones to ``retired`` and while a scrape
        # reads both, so that a scrape never counts an engine twice or not at all
        self.lock = threading.Lock()

    def retire(self, partitions: dict[int, Partition], number: int) -> Partition | None:
        """Stop owning a partition; its engine's counts stay in the totals."""
        with self.lock:
            part = partitions.pop(number, None)
            if part is not None:
                add_stats(self.retired, part.engine.stats)
        return part


class Observed(Protocol):
    """What the collector reads of a worker (promise_tracker/streams/worker.py Worker)."""

    partitions: dict[int, Partition]
    counts: WorkerCounts
    clock: Callable[[], float]


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)


class WorkerCollector(Collector):
    """promise_tracker_* metric families from a worker's counters (see README, Metrics)."""

    def __init__(self, worker: Observed):
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        worker = self.worker
        counts = worker.counts
        with counts.lock:
            owned = dict(worker.partitions)
            totals = Stats()
            add_stats(totals, counts.retired)
            for part in owned.values():
                add_stats(totals, part.engine.stats)
        read = dict(counts.read)
        events = _counter("events", "Input messages read, by topic", ["topic"])
        for topic, n in sorted(read.items()):
            events.add_metric([topic], n)
        yield events
        rejects = _counter("rejects", "Input messages rejected (to the DLQ), by reason", ["reason"])
        # every reason code from the start: a rate() over a series that appears late misses
        # its first increase
        by_reason = Counter(dict.fromkeys(map(str, Reason), 0))
        by_reason.update({str(reason): n for reason, n in totals.rejects.items()})
        by_reason["invalid_event"] += counts.bug_rejects  # the worker failed on them
        for reason, n in sorted(by_reason.items()):
            rejects.add_metric([reason], n)
        yield rejects
        violations = _counter(
            "violations", "Violation emissions, by reason and state", ["reason", "state"]
        )
        for (reason, state), n in sorted(totals.violations.items()):
            violations.add_metric([reason, state], n)
        yield violations
        late = _counter("late_events", "Events applied although older than the watermark")
        late.add_metric([], totals.late)
        yield late
        duplicates = _counter("duplicates", "Exact duplicates of events already applied")
        duplicates.add_metric([], totals.duplicates)
        yield duplicates
        yield from self._gauges(owned)
        yield from _pager(getattr(worker, "pager", None))

    def _gauges(self, owned: dict[int, Partition]) -> Iterator[Metric]:
        now = self.worker.clock()
        delay = _gauge(
            "watermark_delay_seconds",
            "Wall clock minus the watermark, per owned partition (absent until it has one)",
            ["partition"],
        )
        for number, part in sorted(owned.items()):
            watermark = part.watermark()
            if math.isfinite(watermark):
                delay.add_metric([str(number)], now - watermark)
        yield delay
        held = _gauge(
            "open_promises",
            "Promises held in state (open, and closed ones kept for the retention), "
            "summed over owned partitions",
        )
        held.add_metric([], sum(len(part.engine.promises) for part in owned.values()))
        yield held
        orphans = _gauge(
            "orphans",
            "Observations held waiting for their promise, per owned partition (at most "
            "max_orphans; beyond, the oldest is rejected unknown_promise)",
            ["partition"],
        )
        for number, part in sorted(owned.items()):
            orphans.add_metric([str(number)], part.engine.orphans_held)
        yield orphans
        partitions = _gauge("owned_partitions", "Input partition numbers this worker owns")
        partitions.add_metric([], len(owned))
        yield partitions


def _pager(pager: Any) -> Iterator[Metric]:
    """The pager's figures, when paging is on (``worker.pager`` is None when it is off)."""
    if pager is None:
        return
    for name, attribute, doc, kind in (
        ("alert_queue_depth", "queue_depth", "Alert posts waiting for Alertmanager", _gauge),
        ("alerts_active", "active_count", "Alerts firing (active violations paged)", _gauge),
        ("alerts_sent", "sent", "Alerts posted to Alertmanager", _counter),
        ("alert_post_failures", "failed_posts", "Requests to Alertmanager that failed", _counter),
        ("alerts_dropped", "dropped", "Alerts let go (a full queue or firing set)", _counter),
    ):
        family = kind(name, doc)
        family.add_metric([], int(getattr(pager, attribute, 0)))
        yield family

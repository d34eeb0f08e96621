"""The composition root of the two long-running processes: each is assembled here from its
parts (settings, metrics endpoint, topics, the worker and the pager it pages through, the
sink and its store), so that the parts never import each other upward."""

from __future__ import annotations

import logging
import os
import time

from prometheus_client.registry import CollectorRegistry

from promise_tracker.errors import StoreUnavailable
from promise_tracker.paging.pager import Pager
from promise_tracker.runtime.backoff import Backoff
from promise_tracker.runtime.exposition import serve
from promise_tracker.runtime.process import start_process
from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from promise_tracker.sinks.migrate import migrate
from promise_tracker.sinks.runner import SinkRunner, describe_store, store_from
from promise_tracker.streams.worker import Worker, engine_config
from promise_tracker.streams.worker_metrics import WorkerCollector

log = logging.getLogger("promise_tracker.worker")
sink_log = logging.getLogger("promise_tracker.sink")


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (run several for more partitions in parallel);
    it pages through Alertmanager when ``alertmanager_url`` is set."""
    registry = CollectorRegistry()  # not the global one: tests run several in one process
    server = serve(registry, settings.metrics_host, settings.metrics_port, "metrics_port")
    config = engine_config(settings)  # the calendars file: a bad one stops us before Kafka
    ensure_topics(settings)
    pager = Pager.from_settings(settings) if settings.alertmanager_url else None
    worker = Worker(settings, pager=pager, config=config)
    registry.register(WorkerCollector(worker))
    start_process(settings.log_level, worker.stop)
    log.info("worker %d in group %s on %s", os.getpid(), settings.group, settings.kafka)
    if server is not None:
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    try:
        worker.run()
    finally:
        log.info(
            "worker stopped: %d messages, %.2f s of CPU", worker.processed, time.process_time()
        )


def run_sink(settings: Settings) -> None:
    """Run one sink until SIGTERM/SIGINT."""
    registry = CollectorRegistry()  # not the global one: tests run several in one process
    server = serve(registry, settings.metrics_host, settings.sink_metrics_port, "sink_metrics_port")
    ensure_topics(settings)
    store = store_from(settings)
    runner = SinkRunner(settings, store)
    runner.metrics.register(registry)
    start_process(settings.log_level, runner.stop)
    backoff = Backoff(cap=settings.sink_max_backoff)
    while True:  # a store that is down at start: wait for it, as for one that goes down later
        try:
            applied = migrate(store)
            break
        except StoreUnavailable as exc:
            delay = backoff.next()
            sink_log.warning("store unavailable at start (%s): retrying in %.1f s", exc, delay)
            time.sleep(delay)
            if runner._stop:
                store.close()
                return
    if applied:
        sink_log.info("migrated %s: applied %s", settings.database, ", ".join(applied))
    sink_log.info(
        "sink in group %s on %s, writing to %s",
        settings.sink_group,
        settings.kafka,
        describe_store(settings),
    )
    if server is not None:
        sink_log.info(
            "metrics on http://%s:%d/metrics", settings.metrics_host, settings.sink_metrics_port
        )
    try:
        runner.run()
    finally:
        store.close()
    sink_log.info(
        "sink stopped: %d records, %d rows written in %d batches, %.2f s of CPU",
        runner.consumed,
        runner.sink.written,
        runner.sink.batches,
        time.process_time(),
    )

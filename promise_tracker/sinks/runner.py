"""``promise-tracker sink``: the output topics into ClickHouse, at least once, idempotently.

Reads ``promises.violations``, ``promises.outcomes`` and ``promises.dlq`` in its own
consumer group, turns each record into rows, writes them in batches and commits the input
offsets only after the batch is in the store. A crash re-reads what was not committed; the
rows it writes again replace themselves (same id, same version).

While the store is down the sink pauses its partitions (it stays in the group but reads
nothing more), retries the same batch with backoff, and resumes once the batch is written:
nothing is lost and memory does not grow.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from promise_tracker.runtime.backoff import Backoff
from promise_tracker.runtime.kafka import failed, kafka_config
from promise_tracker.runtime.settings import Settings
from promise_tracker.schemas.codec import decode_outcome, decode_violation, decode_warning
from promise_tracker.sinks.batcher import ClickHouseSink
from promise_tracker.sinks.rows import (
    outcome_row,
    promise_row,
    reject_row,
    violation_rows,
    warning_row,
)
from promise_tracker.sinks.sink_metrics import SinkMetrics
from promise_tracker.sinks.store import (
    ClickHouseStore,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
)
from promise_tracker.sinks.tables import OutcomeRow, Row

log = logging.getLogger("promise_tracker.sink")
PROMISES_REMEMBERED = 1_000_000


class FaultyStore:
    """A store that refuses writes while a file exists: for outage drills and tests."""

    def __init__(self, store: Store, switch: Path):
        self._store, self._switch = store, switch
        self.database = store.database

    def _check(self) -> None:
        if self._switch.exists():
            raise StoreUnavailable(f"fault drill: {self._switch} exists")

    def command(self, sql: str, params: Any = None) -> None:
        self._check()
        self._store.command(sql, params)

    def rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self._check()
        return self._store.rows(sql, params)

    def insert(self, table: str, columns: Any, rows: Any) -> None:
        self._check()
        self._store.insert(table, columns, rows)

    def close(self) -> None:
        self._store.close()


def store_from(settings: Settings) -> Store:
    store = open_store(
        settings.clickhouse_url,
        settings.chdb_path,
        settings.database,
        settings.clickhouse_password,
    )
    if settings.store_fault_file:
        return FaultyStore(store, Path(settings.store_fault_file))
    return store


def describe_store(settings: Settings) -> str:
    """Where the rows go, without credentials (for logs)."""
    where = ClickHouseStore(settings.clickhouse_url or settings.chdb_path, settings.database)
    return f"{where.address}, database {settings.database}"


def records_to_rows(
    topic_kind: str, message: Any, subject_key: bytes = b""
) -> list[tuple[str, Row]]:
    """One output record to its rows (for an outcome: the outcome, then the promise);
    raises ``msgspec.ValidationError`` (a ValueError) for a record that is not ours.
    With ``subject_key``, subjects are stored as pseudonyms (promise_tracker/sinks/rows.py)."""
    value, offset = message.value(), message.offset()
    _, stamp = message.timestamp()
    if topic_kind == "violations":
        event = decode_violation(value)
        return violation_rows(event.data, event.id, offset, subject_key)
    if topic_kind == "warnings":
        warning = decode_warning(value)
        return [warning_row(warning.data, warning.id, offset, subject_key)]
    if topic_kind == "outcomes":
        record = decode_outcome(value).data
        return [
            outcome_row(record, stamp / 1000, offset),
            promise_row(record, offset, subject_key),
        ]
    headers = {k: v.decode("utf-8", "replace") for k, v in (message.headers() or [])}
    part, off = headers.get("partition"), headers.get("offset")
    return [
        reject_row(
            reason=headers.get("reason", "unknown"),
            message=headers.get("message", ""),
            event_id=headers.get("event_id"),
            raw=value or b"",
            origin=headers.get("topic", message.topic()),
            origin_part=int(part) if part is not None else None,
            origin_offset=int(off) if off is not None else None,
            rejected_at=stamp / 1000,
            version=offset,
        )
    ]


def foreign_row(message: Any, exc: BaseException) -> tuple[str, Row]:
    """Something on an output topic that the worker did not write: stored as a reject of
    its own topic, with its bytes, so that it is seen rather than dropped."""
    _, stamp = message.timestamp()
    return reject_row(
        reason="invalid_event",
        message=f"not an output record of promise-tracker: {exc}",
        event_id=None,
        raw=message.value() or b"",
        origin=message.topic(),
        origin_part=message.partition(),
        origin_offset=message.offset(),
        rejected_at=stamp / 1000,
        version=message.offset(),
    )


class SinkRunner:
    """Consume, add, flush when due, commit what was flushed; pause while the store is down."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.sink = ClickHouseSink(store, settings.sink_batch_rows, settings.sink_flush_interval)
        self.metrics = SinkMetrics(self.sink)  # every flush goes through it
        self.subject_key = settings.subject_key.encode()  # b"": subjects stored as they are
        self.kinds = {
            settings.violations: "violations",
            settings.warnings: "warnings",
            settings.outcomes: "outcomes",
            settings.dlq: "dlq",
        }
        self.consumer = Consumer(
            {
                **kafka_config(settings),
                "group.id": settings.sink_group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
                "session.timeout.ms": int(settings.session_timeout * 1000),
                "heartbeat.interval.ms": max(int(settings.session_timeout * 100), 100),
            }
        )
        self.backoff = Backoff(cap=settings.sink_max_backoff)
        self.positions: dict[tuple[str, int], int] = {}
        self.paused_since: float | None = None
        self._retry_at = 0.0
        self._stop = False
        # promise ids whose facts were written by this process: an outcome's promise row is
        # the same every time, so it is written once (again after a restart: idempotent)
        self._promises_written: set[str] = set()
        self.consumed = 0
        self.undecodable = 0
        self.outages = 0

    def stop(self, *_: Any) -> None:
        self._stop = True

    def run(self) -> None:
        self.consumer.subscribe(list(self.kinds), on_revoke=self._revoked)
        try:
            while not self._stop:
                if self.paused_since is not None:
                    # keeps the membership; nothing comes, unless a rebalance inside this call
                    # dropped the batch and handed out partitions anew
                    for message in self.consumer.consume(1, 0.1):
                        self._message(message)
                    if time.monotonic() >= self._retry_at:
                        self._flush_and_commit()
                    continue
                messages = self.consumer.consume(self.settings.batch_size, 0.1)
                for message in messages:
                    self._message(message)
                # a full or old batch is written; so is any batch once the input is read
                # (nothing came for 0.1 s): rows land at once when the load is light
                if self.sink.due() or (self.positions and not messages):
                    self._flush_and_commit()
            self._flush_and_commit(final=True)
        finally:
            self.consumer.close()

    def _message(self, message: Any) -> None:
        if failed(message, log):
            return
        topic, part, offset = message.topic(), message.partition(), message.offset()
        self.positions[(topic, part)] = offset + 1
        self.consumed += 1
        try:
            rows = records_to_rows(self.kinds[topic], message, self.subject_key)
        except (ValueError, KeyError, TypeError) as exc:
            self.undecodable += 1
            log.error("%s[%d]@%d is not an output record of ours: %r", topic, part, offset, exc)
            rows = [foreign_row(message, exc)]  # kept where the rejects are, not dropped
        else:
            if topic == self.settings.outcomes:
                rows = self._promise_once(rows)
        self.sink.add_all(rows)

    def _promise_once(self, rows: list[tuple[str, Row]]) -> list[tuple[str, Row]]:
        """An outcome's rows without the promise's, when this process wrote that already."""
        outcome = rows[0][1]
        assert isinstance(outcome, OutcomeRow)  # records_to_rows puts the outcome first
        pid = outcome.promise_id
        if pid in self._promises_written:
            return rows[:1]
        if len(self._promises_written) >= PROMISES_REMEMBERED:
            self._promises_written.clear()
        self._promises_written.add(pid)
        return rows

    def _flush_and_commit(self, final: bool = False) -> None:
        try:
            self.metrics.flush()
        except StoreUnavailable as exc:
            if final:
                log.warning(
                    "store unavailable at shutdown; %d rows will be read again", self.sink.pending
                )
                return
            delay = self.backoff.next()
            self._retry_at = time.monotonic() + delay
            if self.paused_since is None:
                self.paused_since = time.monotonic()
                self.outages += 1
                self.consumer.pause(self.consumer.assignment())
                log.warning(
                    "store unavailable (%s): consumption paused, %d rows held",
                    exc,
                    self.sink.pending,
                )
            log.info("store unavailable: retrying in %.1f s", delay)
            return
        if self.paused_since is not None:
            log.warning(
                "store back after %.1f s: consumption resumed", time.monotonic() - self.paused_since
            )
            self.paused_since = None
            self.backoff.reset()
            self.consumer.resume(self.consumer.assignment())
        self._commit(asynchronous=not final)

    def _commit(self, asynchronous: bool) -> None:
        if not self.positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]
        self.positions.clear()
        try:
            if asynchronous:  # two calls: the stub's overloads take literal True or False
                self.consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # mid-rebalance: the rows are stored, read again later
            log.warning("commit: %s", exc)

    def _revoked(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        """Before another sink takes the partitions: store what we hold, or let it go."""
        try:
            self.metrics.flush()
            self._commit(asynchronous=False)
        except StoreError as exc:
            dropped = self.sink.drop()
            self._promises_written.clear()  # some of them were in the dropped rows
            log.warning(
                "rebalance with the store unavailable (%s): %d rows will be read again",
                exc,
                dropped,
            )
        self.positions.clear()
        if self.paused_since is not None:
            self.paused_since = None  # the new assignment starts unpaused

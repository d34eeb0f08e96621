"""The live worker: one consumer-group member driving one engine per owned partition.

Why not Faust (the planned stack): measured here, faust-streaming's stream path delivers
10-12k messages/s to an agent that does nothing at all, below the 10k floor once the
engine does its work and a third of the 30k target, while a plain confluent-kafka consumer
reads the same topics at 0.7-1.4M/s. This worker keeps Faust's design (co-partitioned
input topics, state in a compacted changelog with one partition per input partition,
at-least-once with idempotent state and deterministic ids) on confluent-kafka directly:

* the range assignor gives a member the same partition numbers of both input topics;
* on assignment, each partition's engine is rebuilt from its changelog partition;
* messages are taken in batches and applied; at the end of a batch the entries they
  changed (each id once) go to the changelog and the producer is flushed, and only then
  are the batch's outputs produced: an emission never reaches its topic before the state
  that made it is on the broker (else a crash in between could leave an emission that the
  restarted worker, reading the input in another interleaving, never makes or retracts);
* every ``commit_interval`` the producer is flushed again and the input offsets are
  committed;
* after a crash, input since the last commit is read again: its effects are in the
  changelog already, so it counts as duplicates, and the rebuilt engine says its
  emissions again under their deterministic ids (anything the crash cut off is re-sent);
* every ``tick_interval`` the wall clock is offered to each owned partition, which
  advances its watermark when an input topic is caught up and quiet (SPEC section 2).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from prometheus_client.registry import CollectorRegistry

from promise_tracker.errors import BrokerRefused
from promise_tracker.paging.pager import Pager
from promise_tracker.runtime.exposition import serve
from promise_tracker.runtime.kafka import failed, kafka_config, producer_config, watermarks
from promise_tracker.runtime.process import start_process
from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import DLQ_MAX_BYTES, ensure_topics
from promise_tracker.schemas.models import ViolationRecord
from promise_tracker.streams.engine import EngineConfig
from promise_tracker.streams.live import SHRUNK_BYTES, Output, Partition, shrink
from promise_tracker.streams.worker_metrics import WorkerCollector, WorkerCounts

log = logging.getLogger("promise_tracker.worker")

ENTRY = b"e"  # changelog key prefix of a promise id's entry
CLOCKS = b"c"  # changelog key of the partition's watermark clocks


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        retention=settings.retention,
        orphan_ttl=settings.orphan_ttl,
        max_orphans=settings.max_orphans,
        max_future=settings.max_future,
        lateness=settings.lateness,
    )


class Worker:
    """Consume, apply, persist, send, commit; in that order, a batch at a time."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock
        self.config = engine_config(settings)
        self.inputs = (settings.issued, settings.observed)
        self.outputs = {
            "violations": settings.violations,
            "outcomes": settings.outcomes,
            "dlq": settings.dlq,
        }
        static = {"group.instance.id": settings.instance} if settings.instance else {}
        self.consumer = Consumer(
            {
                **kafka_config(settings),
                **static,
                "group.id": settings.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",  # co-partitions the inputs
                "fetch.wait.max.ms": 50,
                # a killed member's partitions move after this long without heartbeats
                "session.timeout.ms": int(settings.session_timeout * 1000),
                "heartbeat.interval.ms": max(int(settings.session_timeout * 100), 100),
                "enable.partition.eof": False,
            }
        )
        self.producer = Producer(
            {
                **producer_config(settings),
                "linger.ms": 2,
                "queue.buffering.max.messages": 1_000_000,
                "delivery.report.only.error": True,  # a callback only for failures
                # a dead letter is an input record and its headers: over librdkafka's 1 MB
                # default, it raised MSG_SIZE_TOO_LARGE and the worker stopped
                "message.max.bytes": DLQ_MAX_BYTES,
            }
        )
        self.partitions: dict[int, Partition] = {}
        self.positions: dict[tuple[str, int], int] = {}  # next offset to commit
        self._changelog: dict[tuple[int, bytes], bytes | None] = {}  # coalesced per batch
        self._outbox: list[Output] = []  # sent once the batch's state is on the broker
        self._refused: list[str] = []
        self._saved_clocks: dict[int, bytes] = {}
        self._alerts: list[tuple[ViolationRecord, int]] = []  # offered once sent
        # pages through Alertmanager (promise_tracker/paging/pager.py); None when no URL is set
        self.pager = Pager.from_settings(settings, clock) if settings.alertmanager_url else None
        self._stop = False
        self.counts = WorkerCounts(
            self.inputs
        )  # read by promise_tracker/streams/worker_metrics.py at scrape time

    @property
    def processed(self) -> int:
        return sum(self.counts.read.values())

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Until stop() (or SIGTERM/SIGINT when installed): the worker's whole life."""
        settings = self.settings
        if self.pager is not None:
            self.pager.start()
        self.consumer.subscribe(
            list(self.inputs),
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )
        next_tick = next_commit = next_report = 0.0
        reported = 0
        clean = False
        try:
            while not self._stop:
                messages = self.consumer.consume(settings.batch_size, settings.batch_wait)
                for message in messages:
                    self._message(message)
                now = time.monotonic()
                if now >= next_tick:
                    self._tick()
                    next_tick = now + settings.tick_interval
                self._persist_then_send()
                if now >= next_commit:
                    self._commit()
                    next_commit = now + settings.commit_interval
                if now >= next_report:
                    if self.processed > reported:
                        log.info("%d messages processed", self.processed)
                        reported = self.processed
                    next_report = now + 30
            clean = True
        finally:
            # after a refused batch nothing more is committed: a restart reads it again
            self._close(commit=clean)

    def stop(self, *_: Any) -> None:
        self._stop = True

    def _message(self, message: Any) -> None:
        if failed(message, log):
            return
        topic, number, offset = message.topic(), message.partition(), message.offset()
        self.positions[(topic, number)] = offset + 1
        self.counts.read[topic] += 1
        part = self.partitions.get(number)
        if part is None:  # not assigned as a whole yet (cannot happen with eager range)
            part = self.partitions[number] = self._restore(number)
        try:
            part.message(topic, offset, message.key(), message.value())
        except Exception as exc:  # a bug: never lose the message, never stop the worker
            log.exception("failed on %s[%d]@%d", topic, number, offset)
            self._dead_letter(message, exc)
            self._persist_then_send()  # what earlier messages changed is kept...
            self.counts.retire(self.partitions, number)
            self.partitions[number] = self._restore(number)  # ...this one's half-change not
            return
        self._collect(part)

    def _tick(self) -> None:
        for part in self.partitions.values():
            part.tick({topic: self._caught_up(part, topic) for topic in self.inputs})
            self._collect(part)
        self._save_clocks()

    def _save_clocks(self) -> None:
        """Each owned partition's clocks to the changelog, when they changed. Also right
        before offsets are committed: committed input must never be ahead of the clocks a
        new owner restores, or the watermark it restores stays behind input it will not
        read again (with no wall-clock help, as in the equality tests, deadlines never fire;
        seen as a flaky two-worker test)."""
        for number, part in self.partitions.items():
            clocks = part.saved_clocks()
            if clocks != self._saved_clocks.get(number):
                self._changelog[(number, CLOCKS)] = self._saved_clocks[number] = clocks

    def _caught_up(self, part: Partition, topic: str) -> bool:
        """Nothing left to read, as of the high watermark of the last fetch response."""
        _, high = self.consumer.get_watermark_offsets(
            TopicPartition(topic, part.number), cached=True
        )
        return high >= 0 and part.next_offset.get(topic, 0) >= high

    def _collect(self, part: Partition) -> None:
        taken = part.outbox.take()
        self._outbox += taken
        if self.pager is not None:
            self._alerts += [(o.record, part.number) for o in taken if o.record is not None]
        for pid, value in part.changes():
            self._changelog[(part.number, ENTRY + pid.encode())] = value

    # --- persistence and commits ---------------------------------------------------------

    def _commit(self) -> None:
        """Everything on the broker, then the input offsets."""
        self._save_clocks()
        self._persist_then_send()
        self._flush()
        if self.positions:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]
            self.positions.clear()
            try:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # e.g. mid-rebalance: read again later
                log.warning("commit: %s", exc)

    def _persist_then_send(self) -> None:
        """The batch's changed entries to the changelog, flushed; then its outputs."""
        if self._changelog:
            changelog = self.settings.changelog
            for (number, key), value in self._changelog.items():
                self._produce(changelog, key, value, partition=number)
            self._changelog.clear()
            self._flush()
        outputs = self.outputs
        for out in self._outbox:
            self._produce(outputs[out.stream], out.key, out.value, headers=out.headers)
        self._outbox.clear()
        self.producer.poll(0)
        if self._alerts and self.pager is not None:  # after their records, like the topic
            for record, number in self._alerts:
                self.pager.offer(record, number)
            self._alerts.clear()

    def _flush(self) -> None:
        while self.producer.flush(5.0):
            log.warning("the broker has not taken the batch's records yet: waiting")
        if self._refused:
            refused, self._refused = self._refused, []
            raise BrokerRefused(f"{len(refused)} records refused, e.g. {refused[0]}")

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        while True:
            try:
                self.producer.produce(
                    topic, value, key, headers=headers, on_delivery=self._delivered, **extra
                )
                return
            except BufferError:  # the local queue is full: let the broker catch up
                self.producer.poll(0.05)
            except KafkaException as exc:
                if not self._too_large(exc.args[0], topic, value):
                    raise
                key, value, headers = shrink(key, value or b"", headers)

    def _delivered(self, err: Any, message: Any) -> None:
        if err is None:
            return
        topic, value = message.topic(), message.value()
        if self._too_large(err, topic, value):  # e.g. a DLQ topic created with a lower limit
            self._produce(topic, *shrink(message.key(), value or b"", message.headers()))
            return
        self._refused.append(f"{topic}[{message.partition()}]: {err}")

    def _too_large(self, err: KafkaError, topic: str, value: bytes | None) -> bool:
        """A dead letter refused for its size (and not cut short already): sent cut short,
        rather than stopping the worker on the same record at every restart."""
        if err.code() != KafkaError.MSG_SIZE_TOO_LARGE or topic != self.outputs["dlq"]:
            return False
        if value is None or len(value) <= SHRUNK_BYTES:
            return False
        log.warning("%s: a dead letter of %d bytes is too large: sent cut short", topic, len(value))
        return True

    def _dead_letter(self, message: Any, exc: BaseException) -> None:
        self.counts.bug_rejects += 1
        self._outbox.append(
            Output(
                "dlq",
                message.key(),
                message.value(),
                [
                    ("reason", b"invalid_event"),
                    ("message", f"the worker failed on this event ({exc!r}): a bug".encode()),
                    ("topic", message.topic().encode()),
                    ("partition", str(message.partition()).encode()),
                    ("offset", str(message.offset()).encode()),
                ],
            )
        )

    # --- ownership -----------------------------------------------------------------------

    def _assigned(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in assigned})
        log.info("assigned partitions %s", numbers)
        changelog = read_partitions(self.settings, self.settings.changelog, numbers)
        for number in numbers:
            self._saved_clocks.pop(number, None)  # another owner may have saved since
            part = self._restore(number, changelog[number])
            self.counts.retire(self.partitions, number)  # none, unless read before assigned
            self.partitions[number] = part

    def _revoked(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        """Before another member takes them: everything of ours on the broker, committed."""
        log.info("revoked partitions %s", sorted({tp.partition for tp in revoked}))
        try:
            self._save_clocks()
            self._persist_then_send()
            self._flush()
            mine = [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]
            if mine:
                consumer.commit(offsets=mine, asynchronous=False)
        except (KafkaException, BrokerRefused) as exc:
            log.warning("could not commit before the rebalance (will be read again): %s", exc)
        self.positions.clear()
        for tp in revoked:
            self.counts.retire(self.partitions, tp.partition)
        if self.pager is not None:  # the new owner says their violations again
            self.pager.forget(tp.partition for tp in revoked)

    def _lost(self, consumer: Consumer, lost: list[TopicPartition]) -> None:
        log.warning("lost partitions %s", sorted({tp.partition for tp in lost}))
        self._changelog.clear()
        self._outbox.clear()
        self._alerts.clear()
        self.positions.clear()
        for tp in lost:
            self.counts.retire(self.partitions, tp.partition)
        if self.pager is not None:
            self.pager.forget(tp.partition for tp in lost)

    def _restore(
        self, number: int, records: list[tuple[bytes, bytes | None]] | None = None
    ) -> Partition:
        """Rebuild a partition's engine from its changelog partition, read to its end."""
        started = time.perf_counter()
        settings = self.settings
        part = Partition(
            number, self.inputs, self.config, settings.lateness, self.clock, settings.quiet
        )
        entries: dict[bytes, bytes] = {}
        clocks = None
        if records is None:
            records = read_partitions(settings, settings.changelog, [number])[number]
        for key, value in records:
            if key == CLOCKS:
                clocks = value
            elif value is None:
                entries.pop(key, None)
            else:
                entries[key] = value
        committed = self.consumer.committed(
            [TopicPartition(topic, number) for topic in self.inputs], timeout=30
        )
        for tp in committed:
            part.next_offset[tp.topic] = max(tp.offset, 0)
        part.restore(entries.values(), clocks)
        log.info(
            "partition %d: %d entries restored, watermark %.3f, in %.3f s",
            number,
            len(entries),
            part.engine.watermark,
            time.perf_counter() - started,
        )
        return part

    def _close(self, commit: bool) -> None:
        try:
            if commit:
                self._save_clocks()
                self._persist_then_send()
                self._flush()
                offsets = [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]
                if offsets:
                    self.consumer.commit(offsets=offsets, asynchronous=False)
        finally:
            if self.pager is not None:  # what is pending, before leaving forgets it
                self.pager.close()
            self.consumer.close()  # leaves the group: the others take over at once


def read_partitions(
    settings: Settings, topic: str, numbers: list[int], timeout: float = 120.0
) -> dict[int, list[tuple[bytes, bytes | None]]]:
    """Every record of some partitions of a topic, from their beginnings to their ends as
    of now, read together."""
    records: dict[int, list[tuple[bytes, bytes | None]]] = {n: [] for n in numbers}
    reader = Consumer(
        {
            **kafka_config(settings),
            "group.id": f"{settings.group}-restore",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        ends = {}
        for number in numbers:
            low, high = watermarks(reader, TopicPartition(topic, number), timeout=30)
            if high > low:
                ends[number] = high
        if not ends:
            return records
        reader.assign([TopicPartition(topic, n, OFFSET_BEGINNING) for n in ends])
        deadline = time.monotonic() + timeout
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(ends)} not read in {timeout:g} s")
            for message in reader.consume(10_000, 0.05):
                if message.error() is not None:
                    raise KafkaException(message.error())
                number = message.partition()
                records[number].append((message.key(), message.value()))
                if number in ends and message.offset() + 1 >= ends[number]:
                    del ends[number]
        return records
    finally:
        reader.close()


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (run several for more partitions in parallel)."""
    registry = CollectorRegistry()  # not the global one: tests run several in one process
    server = serve(registry, settings.metrics_host, settings.metrics_port, "metrics_port")
    ensure_topics(settings)
    worker = Worker(settings)
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

"""The live worker: one consumer-group member driving one engine per owned partition.

Why not Faust (the planned stack): measured here, faust-streaming's stream path delivers
10-12k messages/s to an agent that does nothing at all, below the 10k floor once the
engine does its work and a third of the 30k target, while a plain confluent-kafka consumer
reads the same topics at 0.7-1.4M/s. This worker keeps Faust's design (co-partitioned
input topics, state in a compacted changelog with one partition per input partition,
at-least-once with idempotent state and deterministic ids) on confluent-kafka directly:

* the range assignor gives a member the same partition numbers of both input topics;
* on assignment, each partition's engine is rebuilt from its changelog partition;
* messages are taken in batches and applied; every batch ends with a checkpoint
  (``_checkpoint``, the one routine every commit path calls): the entries the batch changed
  go to the changelog (streams/changelog.py) and, when there were any, the producer is
  flushed; only then are the batch's outputs produced: an emission never reaches its topic
  before the state that made it is on the broker (else a crash in between could leave an
  emission that the restarted worker, reading the input in another interleaving, never
  makes or retracts);
* every ``commit_interval`` the checkpoint also saves the clocks that moved, flushes the
  outputs and commits the input offsets; so does a revoke and a clean close, waiting for
  the commit;
* after a crash, input since the last commit is read again: its effects are in the
  changelog already, so it counts as duplicates, and the rebuilt engine says its
  emissions again under their deterministic ids (anything the crash cut off is re-sent);
* every ``tick_interval`` the wall clock is offered to each owned partition, which
  advances its watermark when an input topic is caught up and quiet (SPEC section 2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from promise_tracker.calendars import load_calendars
from promise_tracker.errors import BrokerRefused, CalendarError
from promise_tracker.runtime.kafka import (
    assign_from_start,
    failed,
    kafka_config,
    producer_config,
    reached,
)
from promise_tracker.runtime.settings import PREFIX, Settings
from promise_tracker.runtime.topics import DLQ_MAX_BYTES
from promise_tracker.schemas.models import CapabilityDeclared, ViolationRecord, WarningRecord
from promise_tracker.schemas.parse import parse
from promise_tracker.schemas.reject import Reason, Reject
from promise_tracker.streams.changelog import Changelog
from promise_tracker.streams.engine import EngineConfig
from promise_tracker.streams.live import (
    SHRUNK_BYTES,
    Origin,
    Output,
    Partition,
    reject_headers,
    shrink,
)
from promise_tracker.streams.risk import warn_fractions
from promise_tracker.streams.worker_metrics import WorkerCounts

log = logging.getLogger("promise_tracker.worker")


class AlertOutput(Protocol):
    """Where the worker hands its violations and at-risk warnings for paging
    (paging/pager.py ``Pager``), given by the composition root; its figures are read by
    the worker's metrics (read only: the pager computes three of them as properties)."""

    sent: int
    failed_posts: int

    @property
    def queue_depth(self) -> int: ...

    @property
    def active_count(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    def start(self) -> Any: ...

    def offer(self, record: ViolationRecord | WarningRecord, partition: int) -> None: ...

    def forget(self, partitions: Iterable[int]) -> None: ...

    def close(self) -> None: ...


def engine_config(settings: Settings) -> EngineConfig:
    """The engine's knobs from the settings. Reads the calendars file, once per call (the
    worker calls this once, at start): a file it cannot use raises ``CalendarError``, one
    line naming the setting, the file, the calendar and the field."""
    try:
        calendars = load_calendars(settings.calendars) if settings.calendars else {}
    except CalendarError as exc:
        raise CalendarError(f"{PREFIX}CALENDARS: {exc}") from None
    return EngineConfig(
        retention=settings.retention,
        orphan_ttl=settings.orphan_ttl,
        max_orphans=settings.max_orphans,
        max_future=settings.max_future,
        lateness=settings.lateness,
        calendars=calendars,
        warn_at=warn_fractions(settings.warn_at),  # checked by Settings.from_env
    )


class Worker:
    """Consume, apply, persist, send, commit; in that order, a batch at a time."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        pager: AlertOutput | None = None,
        config: EngineConfig | None = None,
    ):
        self.settings = settings
        self.clock = clock
        # the composition root reads it before touching Kafka (a bad calendars file stops
        # the worker before it creates a topic)
        self.config = config if config is not None else engine_config(settings)
        self.inputs = (settings.issued, settings.observed)
        self.outputs = {
            "violations": settings.violations,
            "outcomes": settings.outcomes,
            "warnings": settings.warnings,
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
        self.changelog = Changelog(settings.changelog)  # written at every checkpoint
        self._outbox: list[Output] = []  # sent once the batch's state is on the broker
        self._refused: list[str] = []
        # violations and warnings, offered to the pager once sent
        self._alerts: list[tuple[ViolationRecord | WarningRecord, int]] = []
        self.pager = pager  # None: no paging
        # every declared capability, read from the start of capabilities.declared by every
        # worker (they are global, not partitioned) and given to every owned partition
        self.declarations: list[tuple[CapabilityDeclared, bytes, Origin]] = []
        self.capability_reader = Consumer(
            {
                **kafka_config(settings),
                "group.id": f"{settings.group}-capabilities",  # never commits: reads all
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
            }
        )
        self._stop = False
        self.counts = WorkerCounts(self.inputs)  # read by streams/worker_metrics.py at scrape time

    @property
    def processed(self) -> int:
        return sum(self.counts.read.values())

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Until stop() (or SIGTERM/SIGINT when installed): the worker's whole life."""
        settings = self.settings
        if self.pager is not None:
            self.pager.start()
        self._warm_up()
        self._follow_capabilities()
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
                self._capabilities(self.capability_reader.consume(1000, 0))
                now = time.monotonic()
                if now >= next_tick:
                    self._tick()
                    next_tick = now + settings.tick_interval
                commit = now >= next_commit
                self._checkpoint(commit)
                if commit:
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

    def _warm_up(self) -> None:
        """The producer learns where every topic it writes to lives before the first batch:
        else the first record to each one waits for a metadata request (measured: two
        checkpoints of ~0.5 s each on a fresh worker, the p99 of its detection latency)."""
        for topic in (*self.outputs.values(), self.changelog.topic):
            try:
                self.producer.list_topics(topic, timeout=10)
            except KafkaException as exc:  # the first produce asks again
                log.warning("metadata of %s: %s", topic, exc)

    def _follow_capabilities(self, patience: float = 30.0) -> None:
        """Read capabilities.declared from its start to its end before the first input, so
        that promises are judged against what was declared (late ones are judged again)."""
        ends = assign_from_start(self.capability_reader, self.settings.capabilities, patience)
        deadline = time.monotonic() + patience
        while ends and time.monotonic() < deadline:
            messages = self.capability_reader.consume(1000, 0.5)
            reached(ends, messages)
            self._capabilities(messages)
        log.info("%d capability declarations read", len(self.declarations))

    def _capabilities(self, messages: list[Any]) -> None:
        for message in messages:
            if failed(message, log):
                continue
            topic, number, offset = message.topic(), message.partition(), message.offset()
            origin = Origin(topic, number, offset, message.key())
            raw = message.value()
            event = parse(raw, origin)
            if type(event) is not CapabilityDeclared:
                reject = event if isinstance(event, Reject) else None
                why = reject.message if reject else "not a capability.declared event"
                self._outbox.append(
                    Output(
                        "dlq",
                        message.key(),
                        raw or b"",
                        reject_headers(
                            Reject(
                                reject.reason if reject else Reason.UNKNOWN_TYPE,
                                f"{topic} holds capability.declared events only: {why}",
                                raw or b"",
                                getattr(event, "id", None),
                                origin,
                            )
                        ),
                    )
                )
                continue
            self.declarations.append((event, raw, origin))
            for part in self.partitions.values():
                part.declare(event, raw, origin)
                self._collect(part)

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
            self._checkpoint(commit=False)  # what earlier messages changed is kept...
            self.counts.retire(self.partitions, number)
            self.partitions[number] = self._restore(number)  # ...this one's half-change not
            return
        self._collect(part)

    def _tick(self) -> None:
        """The wall clock, offered to every owned partition. Its clocks are not written
        here (on a quiet stream they move at every tick): the next commit point saves them."""
        for part in self.partitions.values():
            part.tick({topic: self._caught_up(part, topic) for topic in self.inputs})
            self._collect(part)

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
        self.changelog.collect(part)

    # --- the checkpoint --------------------------------------------------------------------

    def _checkpoint(self, commit: bool, wait: bool = False) -> None:
        """The one routine every commit path calls (batch end, commit interval, revoke,
        close), its steps in this order:

        1. (commit) the clocks that moved since they were written, into the changelog:
           committed input must never be ahead of the clocks a new owner restores;
        2. the changelog records, produced and, when there were any, flushed: the state is
           on the broker before anything it caused;
        3. the outputs that state caused, produced; then the pager is offered the
           violations and warnings among them (after their records, like the topics);
        4. (commit) the outputs flushed and the input offsets committed: asynchronously,
           or waiting for the broker's answer (``wait``: before a revoke or a close).

        Raises ``BrokerRefused`` when the broker did not take some records (nothing is
        committed then: a restart reads the input again)."""
        if commit:
            self.changelog.save_clocks(self.partitions)
        records = self.changelog.take()
        if records:
            topic = self.changelog.topic
            for number, key, value in records:
                self._produce(topic, key, value, partition=number)
            self._flush()
        outputs = self.outputs
        for out in self._outbox:
            self._produce(outputs[out.stream], out.key, out.value, headers=out.headers)
        self._outbox.clear()
        self.producer.poll(0)
        if self._alerts and self.pager is not None:
            for record, number in self._alerts:
                self.pager.offer(record, number)
            self._alerts.clear()
        if not commit:
            return
        self._flush()
        if not self.positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]
        self.positions.clear()
        if wait:
            self.consumer.commit(offsets=offsets, asynchronous=False)
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:  # e.g. mid-rebalance: read again later
            log.warning("commit: %s", exc)

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
                # the stub's header list is invariant: list[tuple[str, bytes]] is one it takes
                sent = cast("list[tuple[str, str | bytes | None]] | None", headers)
                self.producer.produce(
                    topic, value, key, headers=sent, on_delivery=self._delivered, **extra
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
            key, value, headers = shrink(message.key(), value or b"", message.headers())
            self._produce(topic, key, value, headers=headers)  # headers by name: not partition
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
        changelog = self.changelog.read(self.settings, numbers)
        self.changelog.assigned(numbers)
        for number in numbers:
            part = self._restore(number, changelog[number])
            self.counts.retire(self.partitions, number)  # none, unless read before assigned
            self.partitions[number] = part

    def _revoked(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        """Before another member takes them: everything of ours on the broker, committed."""
        log.info("revoked partitions %s", sorted({tp.partition for tp in revoked}))
        try:
            self._checkpoint(commit=True, wait=True)
        except (KafkaException, BrokerRefused) as exc:
            log.warning("could not commit before the rebalance (will be read again): %s", exc)
        self.positions.clear()
        for tp in revoked:
            self.counts.retire(self.partitions, tp.partition)
        if self.pager is not None:  # the new owner says their violations and warnings again
            self.pager.forget(tp.partition for tp in revoked)

    def _lost(self, consumer: Consumer, lost: list[TopicPartition]) -> None:
        log.warning("lost partitions %s", sorted({tp.partition for tp in lost}))
        self.changelog.drop()
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
        if records is None:
            records = self.changelog.read(settings, [number])[number]
        entries, clocks = Changelog.state(records)
        committed = self.consumer.committed(
            [TopicPartition(topic, number) for topic in self.inputs], timeout=30
        )
        for tp in committed:
            part.next_offset[tp.topic] = max(tp.offset, 0)
        # not in the changelog: given again, before the restore judges anything
        for event, raw, origin in self.declarations:
            part.declare(event, raw, origin)
        part.restore(entries, clocks)
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
                self._checkpoint(commit=True, wait=True)
        finally:
            if self.pager is not None:  # what is pending, before leaving forgets it
                self.pager.close()
            self.consumer.close()  # leaves the group: the others take over at once
            self.capability_reader.close()

"""The live worker: a Faust app that drives one engine per owned partition.

One agent reads the two input topics and the ticks topic as raw bytes (never Faust's typed
deserialisation: a decode error there kills the agent). Every message changes at most a few
promise ids; their entries are written to a table (one changelog record per id per
message), so a restarted worker rebuilds its engines. Processing is at-least-once: a
message read again after a crash finds its effects already in the table and counts as a
duplicate, and a rebuilt engine says its emissions again under their deterministic ids, so
nothing that reached the table is lost downstream (see streams/live.py and docs/live.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import faust
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from faust.types import TP

from promise_tracker.emit import producer_config
from streams.engine import EngineConfig
from streams.live import Output, Partition
from streams.settings import Settings
from streams.topics import kafka_config

log = logging.getLogger("promise_tracker.worker")

RAW = {"key_serializer": "raw", "value_serializer": "raw"}


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        retention=settings.retention,
        orphan_ttl=settings.orphan_ttl,
        max_orphans=settings.max_orphans,
        max_future=settings.max_future,
        lateness=settings.lateness,
    )


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app for these settings (nothing is created at import time)."""
    app = faust.App(
        settings.group,
        broker=",".join(f"kafka://{server}" for server in settings.kafka.split(",")),
        store="memory://",
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=0.005,  # a few ms of batching: one request carries many records
        broker_commit_interval=settings.commit_interval,
        stream_wait_empty=True,
        web_enabled=False,
        autodiscover=False,
        datadir=str(settings.data_path / settings.group),
    )
    Worker(app, settings)
    return app


class Worker:
    """Wires topics, tables, the agent, the tick timer and rebalance handling into ``app``.

    The agent takes messages in batches. Each message updates the engines and the tables'
    local data at once; at the end of the batch the changed entries (each id once) go to
    the changelog and the outputs to their topics through one confluent-kafka producer,
    which is flushed before the batch is acknowledged. So an input offset is committed only
    once the state and the outputs it caused are on the broker.
    """

    def __init__(self, app: faust.App, settings: Settings):
        self.app = app
        self.settings = settings
        self.config = engine_config(settings)
        self.inputs = (settings.issued, settings.observed)
        self.source = app.topic(settings.issued, settings.observed, settings.ticks, **RAW)
        self.topics = {
            "violations": settings.violations,
            "outcomes": settings.outcomes,
            "dlq": settings.dlq,
        }
        # promise id -> b"<partition>:" + entry JSON (the prefix tells which engine owns it)
        self.entries = app.Table(
            "entries", partitions=settings.partitions, key_type=bytes, value_type=bytes
        )
        # partition number -> the watermark clocks of that partition
        self.clocks = app.Table(
            "clocks", partitions=settings.partitions, key_type=bytes, value_type=bytes
        )
        self.partitions: dict[int, Partition] = {}
        # end offsets of the owned input partitions, asked of the broker before each tick
        self.end_offsets: dict[TP, int] = {}
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None
        self._failed: list[str] = []
        # (changelog topic, partition, key) -> value or None, until the end of the batch
        self._changelog: dict[tuple[str, int, bytes], bytes | None] = {}
        app.agent(self.source, name="engine", concurrency=1)(self.agent)
        app.timer(settings.tick_interval, name="ticks")(self.send_ticks)
        app.on_partitions_revoked.connect(self.on_revoked)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    **producer_config(self.settings),
                    "linger.ms": 2,
                    "queue.buffering.max.messages": 1_000_000,
                }
            )
        return self._producer

    # --- the agent -------------------------------------------------------------------

    async def agent(self, stream: Any) -> None:
        settings = self.settings
        async for batch in stream.take_events(settings.batch_size, settings.batch_wait):
            for event in batch:
                message = event.message
                try:
                    self.handle(message.topic, message.partition, message.offset, message)
                except Exception as exc:  # never let it escape: Faust would ack and skip
                    where = (message.topic, message.partition, message.offset)
                    log.exception("failed on %s[%d]@%d", *where)
                    self.partitions.pop(message.partition, None)  # rebuild from the table
                    self.dead_letter(message, exc)
            await self.flush()

    def handle(self, topic: str, number: int, offset: int, message: Any) -> None:
        part = self.partitions.get(number)
        if part is None:
            part = self.partitions[number] = self.restore(number)
        if topic == self.settings.ticks:
            part.tick({t: self.caught_up(part, t) for t in self.inputs})
            self.write(self.clocks, number, str(number).encode(), part.saved_clocks())
        else:
            part.message(topic, offset, message.key, message.value)
        self.send(part.outbox.take())
        prefix = b"%d:" % number
        for pid, value in part.changes():
            self.write(
                self.entries, number, pid.encode(), None if value is None else prefix + value
            )

    def write(self, table: Any, number: int, key: bytes, value: bytes | None) -> None:
        """Change the table's local data now; its changelog record goes with the batch."""
        store = table.data
        if value is not None:
            store[key] = value
        elif key in store:
            del store[key]
        self._changelog[(table.changelog_topic.get_topic_name(), number, key)] = value

    async def flush(self) -> None:
        """Send the batch's changelog records, then wait until the broker has everything."""
        producer = self.producer
        for (topic, number, key), value in self._changelog.items():
            self._produce(topic, key, value, number)
        self._changelog.clear()
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, producer.flush, 10.0):
            log.warning("the broker has not taken this batch's records yet: waiting")
        if self._failed:
            # The batch must not be acknowledged: its offsets would be committed with
            # state or outputs missing. Exit; a restarted worker reads it again.
            log.critical("records were refused by the broker: %s; exiting", self._failed[:3])
            os._exit(70)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        producer = self.producer
        extra = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(
                    topic, value, key, headers=headers, on_delivery=self._delivered, **extra
                )
                return
            except BufferError:  # the local queue is full: let the broker catch up
                producer.poll(0.05)

    def _delivered(self, err: Any, message: Any) -> None:
        if err is not None:
            self._failed.append(f"{message.topic()}: {err}")

    def restore(self, number: int) -> Partition:
        """An engine for a newly owned partition, from what the table holds for it."""
        started = time.perf_counter()
        settings = self.settings
        part = Partition(
            number, self.inputs, self.config, settings.lateness, time.time, settings.quiet
        )
        prefix = b"%d:" % number
        held = [
            value[len(prefix) :] for value in self.entries.data.values() if value.startswith(prefix)
        ]
        for topic in self.inputs:
            committed = self.app.consumer._committed_offset.get(TP(topic, number))
            part.next_offset[topic] = committed or 0  # Faust keeps offset 0 as None
        part.restore(held, self.clocks.data.get(str(number).encode()))
        log.info(
            "partition %d: %d entries restored, watermark %.3f, in %.3f s",
            number,
            len(held),
            part.engine.watermark,
            time.perf_counter() - started,
        )
        return part

    def caught_up(self, part: Partition, topic: str) -> bool:
        """Nothing left to read in this input partition, as of the end offsets the broker
        gave just before the tick (not the fetcher's highwater: Faust pauses the fetching
        of partitions whose buffers are full, and a paused partition's highwater is old)."""
        end = self.end_offsets.get(TP(topic, part.number))
        return end is not None and part.next_offset.get(topic, 0) >= end

    def send(self, messages: list[Output]) -> None:
        topics = self.topics
        for out in messages:
            self._produce(topics[out.stream], out.key, out.value, headers=out.headers)

    def dead_letter(self, message: Any, exc: BaseException) -> None:
        self._produce(
            self.topics["dlq"],
            message.key,
            message.value,
            headers=[
                ("reason", b"invalid_event"),
                ("message", f"the worker failed on this event ({exc!r}): a bug".encode()),
                ("topic", message.topic.encode()),
                ("partition", str(message.partition).encode()),
                ("offset", str(message.offset).encode()),
            ],
        )

    # --- time and ownership ----------------------------------------------------------

    async def send_ticks(self) -> None:
        """One tick per owned ticks partition: the sweep then runs in that partition's stream."""
        owned = [
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.settings.ticks
        ]
        if not owned:
            return
        inputs = [TP(topic, number) for topic in self.inputs for number in owned]
        loop = asyncio.get_running_loop()
        try:
            self.end_offsets.update(await loop.run_in_executor(None, self._end_offsets, inputs))
        except Exception as exc:  # the broker is away: no tick, so no wall-clock progress
            log.warning("no end offsets for the ticks: %r", exc)
            return
        for number in owned:
            self._produce(self.settings.ticks, None, b"", number)
        self.producer.poll(0)

    def _end_offsets(self, tps: list[TP]) -> dict[TP, int]:
        """Asked on a connection of its own: on the consumer's, the request would wait
        behind a fetch that the broker holds open for up to 1.5 s when there is no data."""
        if self._admin is None:
            self._admin = AdminClient(kafka_config(self.settings))
        futures = self._admin.list_offsets(
            {TopicPartition(tp.topic, tp.partition): OffsetSpec.latest() for tp in tps},
            request_timeout=5,
        )
        return {TP(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    async def on_revoked(self, sender: Any, revoked: set[TP], **_: Any) -> None:
        for tp in revoked:
            self.partitions.pop(tp.partition, None)


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (run several for more partitions in parallel)."""
    from streams.topics import ensure_topics

    ensure_topics(settings)
    (settings.data_path / settings.group).mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG (to spin on every record):
    # every aiokafka send then builds a log record nobody reads, a tenth of the CPU.
    worker.spinner = None
    worker.execute_from_commandline()

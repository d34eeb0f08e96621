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

import logging
import time
from typing import Any

import faust
from faust.types import TP

from streams.engine import EngineConfig
from streams.live import Output, Partition
from streams.settings import Settings

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
        broker_commit_interval=settings.commit_interval,
        stream_wait_empty=True,
        web_enabled=False,
        autodiscover=False,
        datadir=str(settings.data_path / settings.group),
    )
    Worker(app, settings)
    return app


class Worker:
    """Wires topics, tables, the agent, the tick timer and rebalance handling into ``app``."""

    def __init__(self, app: faust.App, settings: Settings):
        self.app = app
        self.settings = settings
        self.config = engine_config(settings)
        self.inputs = (settings.issued, settings.observed)
        self.source = app.topic(settings.issued, settings.observed, settings.ticks, **RAW)
        self.ticks = app.topic(settings.ticks, **RAW)
        self.outputs = {
            "violations": app.topic(settings.violations, **RAW),
            "outcomes": app.topic(settings.outcomes, **RAW),
            "dlq": app.topic(settings.dlq, **RAW),
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
        app.agent(self.source, name="engine", concurrency=1)(self.agent)
        app.timer(settings.tick_interval, name="ticks")(self.send_ticks)
        app.on_partitions_revoked.connect(self.on_revoked)

    # --- the agent -------------------------------------------------------------------

    async def agent(self, stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                self.handle(message.topic, message.partition, message.offset, message)
            except Exception as exc:  # never let it escape: Faust would ack and skip
                where = (message.topic, message.partition, message.offset)
                log.exception("failed on %s[%d]@%d", *where)
                self.partitions.pop(message.partition, None)  # rebuild from the table
                self.dead_letter(message, exc)

    def handle(self, topic: str, number: int, offset: int, message: Any) -> None:
        part = self.partitions.get(number)
        if part is None:
            part = self.partitions[number] = self.restore(number)
        if topic == self.settings.ticks:
            part.tick({t: self.caught_up(part, t) for t in self.inputs})
            self.clocks[str(number).encode()] = part.saved_clocks()
        else:
            part.message(topic, offset, message.key, message.value)
        self.send(part.outbox.take())
        self.persist(part)

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
        part.restore(held, self.clocks.get(str(number).encode()))
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

    def persist(self, part: Partition) -> None:
        prefix = b"%d:" % part.number
        entries = self.entries
        for pid, value in part.changes():
            key = pid.encode()
            if value is not None:
                entries[key] = prefix + value
            elif key in entries:
                del entries[key]

    def send(self, messages: list[Output]) -> None:
        for out in messages:
            self.outputs[out.stream].send_soon(key=out.key, value=out.value, headers=out.headers)

    def dead_letter(self, message: Any, exc: BaseException) -> None:
        self.outputs["dlq"].send_soon(
            key=message.key,
            value=message.value,
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
        try:
            self.end_offsets.update(await self.app.consumer.highwaters(*inputs))
        except Exception as exc:  # the broker is away: no tick, so no wall-clock progress
            log.warning("no end offsets for the ticks: %r", exc)
            return
        for number in owned:
            self.ticks.send_soon(key=None, value=b"", partition=number)

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
    worker.execute_from_commandline()

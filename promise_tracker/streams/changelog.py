"""The worker's changelog: what it writes per partition, when, and how it is read back.

One compacted topic, one partition per input partition (co-partitioned). Two kinds of
record, by key:

* ``e`` + promise id: everything the engine holds under that id (``snapshot.Entry``, JSON),
  or a tombstone (no value) once it holds nothing; written for every id a batch changed,
  each id once per batch (the last value wins);
* ``c``: the partition's watermark clocks (``live.Clocks``, MessagePack); written at commit
  points only, and only when they moved since the partition's last write. A commit must
  never get ahead of the clocks a new owner restores: its watermark would then stay behind
  input it will not read again.

Reading back: every record of the partition from its beginning to its end as of now; the
last value per key is the state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from promise_tracker.runtime.kafka import kafka_config, watermarks
from promise_tracker.runtime.settings import Settings
from promise_tracker.streams.live import Partition

ENTRY = b"e"  # key prefix of a promise id's entry
CLOCKS = b"c"  # key of the partition's watermark clocks

Record = tuple[int, bytes, bytes | None]  # partition, key, value (None: a tombstone)


class Changelog:
    """The records waiting to be written, coalesced per key until the next checkpoint."""

    def __init__(self, topic: str):
        self.topic = topic
        self._pending: dict[tuple[int, bytes], bytes | None] = {}
        self._clocks_written: dict[int, bytes] = {}  # per partition: the last clocks written

    def collect(self, part: Partition) -> None:
        """The entries the partition's engine changed since the last call."""
        pending = self._pending
        for pid, value in part.changes():
            pending[(part.number, ENTRY + pid.encode())] = value

    def save_clocks(self, parts: Mapping[int, Partition]) -> None:
        """Each partition's clocks, when they moved since they were last written."""
        for number, part in parts.items():
            clocks = part.saved_clocks()
            if clocks != self._clocks_written.get(number):
                self._pending[(number, CLOCKS)] = self._clocks_written[number] = clocks

    def take(self) -> list[Record]:
        """What to write now, in the order it was changed; nothing is pending afterwards."""
        records = [(number, key, value) for (number, key), value in self._pending.items()]
        self._pending.clear()
        return records

    def assigned(self, numbers: Iterable[int]) -> None:
        """Partitions (re)taken: another owner may have written their clocks since."""
        for number in numbers:
            self._clocks_written.pop(number, None)

    def read(
        self, settings: Settings, numbers: list[int]
    ) -> dict[int, list[tuple[bytes, bytes | None]]]:
        """These partitions' records, oldest first (``state`` makes them entries and clocks)."""
        return read_partitions(settings, self.topic, numbers)

    def drop(self) -> None:
        """Partitions lost without a revoke: what they changed is not ours to write."""
        self._pending.clear()

    @staticmethod
    def state(records: Iterable[tuple[bytes, bytes | None]]) -> tuple[list[bytes], bytes | None]:
        """A partition's records, oldest first, to its entries and clocks (the last value per
        key; a tombstone removes the entry)."""
        entries: dict[bytes, bytes] = {}
        clocks = None
        for key, value in records:
            if key == CLOCKS:
                clocks = value
            elif value is None:
                entries.pop(key, None)
            else:
                entries[key] = value
        return list(entries.values()), clocks


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
                part, offset = message.partition(), message.offset()
                assert part is not None and offset is not None  # set on every consumed record
                # every record the worker writes is keyed: ENTRY + promise id, or CLOCKS
                records[part].append((cast(bytes, message.key()), message.value()))
                if part in ends and offset + 1 >= ends[part]:
                    del ends[part]
        return records
    finally:
        reader.close()

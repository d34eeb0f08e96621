"""One input partition, live: the engine, SPEC section 2's live watermark, and the bytes to
persist and to send. Pure: the worker hands it messages and the wall clock and does the I/O, so
everything here is tested without a broker.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from typing import NamedTuple

import msgspec
from msgspec import Struct

from promise_tracker.schemas.codec import outcome_event, violation_event, warning_event
from promise_tracker.schemas.models import (
    CapabilityDeclared,
    PromiseIssued,
    ViolationRecord,
    WarningRecord,
)
from promise_tracker.schemas.parse import parse
from promise_tracker.schemas.reject import Reason, Reject
from promise_tracker.streams.engine import Engine, EngineConfig
from promise_tracker.streams.records import outcome_record
from promise_tracker.streams.snapshot import Entry, decode_entry, encode_entry
from promise_tracker.streams.state import PromiseState

INF = float("inf")
MAX_MESSAGE_CHARS = 1000  # of a reject's message in its dead-letter header
SHRUNK_BYTES = 64 << 10  # of a dead letter's value, when the whole one is refused


class Origin(Struct, array_like=True, frozen=True):
    """Where a message came from: travels with its reject to the dead-letter topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None


class Clocks(Struct):
    """Per input topic: the largest accepted event time, and the wall-clock time at which
    it was last seen caught up and quiet. Persisted, so a restart keeps its watermark."""

    event_time: dict[str, float]
    quiet_at: dict[str, float]


class Output(NamedTuple):
    """One message to send: ``stream`` is violations, warnings, outcomes or dlq. A violation or
    a warning carries its record too, so that the worker can page without decoding what it
    encoded."""

    stream: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None
    record: ViolationRecord | WarningRecord | None = None


# MessagePack: a topic not read yet has a time of -inf, which JSON cannot carry
encode_clocks = msgspec.msgpack.Encoder().encode
decode_clocks = msgspec.msgpack.Decoder(Clocks).decode


def reject_headers(reject: Reject) -> list[tuple[str, bytes]]:
    """The dead-letter headers: why, and where the original bytes came from. The message is
    cut short: it may quote a key or an id, and those can be a megabyte of hostile input."""
    text = reject.message
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"... ({len(reject.message)} characters)"
    headers = [("reason", str(reject.reason).encode()), ("message", text.encode())]
    if reject.event_id is not None:
        headers.append(("event_id", reject.event_id.encode()))
    origin = reject.origin
    if isinstance(origin, Origin):
        headers += [
            ("topic", origin.topic.encode()),
            ("partition", str(origin.partition).encode()),
            ("offset", str(origin.offset).encode()),
        ]
    return headers


def shrink(
    key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """A dead letter its topic refused as too large: the first SHRUNK_BYTES of its value,
    key and headers cut to a kilobyte, and headers saying so (the original length and
    SHA-256), so that it is still seen and counted rather than lost or crashing the worker."""
    kept = [(k, v[:1024]) for k, v in headers or [] if k not in ("truncated", "sha256")]
    kept += [
        ("truncated", str(len(value)).encode()),
        ("sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    return (None if key is None else key[:1024]), value[:SHRUNK_BYTES], kept


def _decode_entry(raw: bytes) -> Entry:
    """An entry as persisted; its waiting observations' origins become ``Origin`` again
    (JSON keeps them as plain arrays), so their rejects still say where they came from."""
    entry = decode_entry(raw)
    for orphan in entry.orphans:
        if isinstance(orphan.origin, list) and len(orphan.origin) == 4:
            topic, partition, offset, key = orphan.origin
            key = base64.b64decode(key) if isinstance(key, str) else key  # JSON bytes
            orphan.origin = Origin(topic, partition, offset, key)
    return entry


class Outbox:
    """The engine's listener: turns results into messages, in the order they happened."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.messages: list[Output] = []

    def violation(self, record: ViolationRecord) -> None:
        self.messages.append(
            Output(
                "violations", record.violation_id.encode(), violation_event(record), None, record
            )
        )

    def warning(self, record: WarningRecord) -> None:
        self.messages.append(
            Output("warnings", record.warning_id.encode(), warning_event(record), None, record)
        )

    def outcome(self, state: PromiseState) -> None:
        record = outcome_record(state)
        self.messages.append(
            Output("outcomes", record.promise_id.encode(), outcome_event(record, self.clock()))
        )

    def reject(self, reject: Reject) -> None:
        key = reject.origin.key if isinstance(reject.origin, Origin) else None
        self.messages.append(Output("dlq", key, reject.raw, reject_headers(reject)))

    def evicted(self, state: PromiseState) -> None:
        pass  # its final outcome was sent when it settled

    def take(self) -> list[Output]:
        messages, self.messages = self.messages, []
        return messages


class Partition:
    """The engine of one partition number of the co-partitioned input topics, ``inputs``
    being (the promises topic, the deliveries topic)."""

    def __init__(
        self,
        number: int,
        inputs: tuple[str, str],
        config: EngineConfig,
        lateness: float,
        clock: Callable[[], float],
        quiet: float = 1.0,
    ):
        self.number = number
        self.inputs = inputs
        self.lateness = lateness
        self.quiet = quiet  # seconds without a message before a caught-up topic is quiet
        # per input topic: wall clock of the last message. A new owner counts the quiet
        # period from when it took the partition, not from ever: right after a restart or a
        # rebalance a topic can look caught up for an instant while its producers are
        # mid-burst, and a watermark moved to the wall clock then fires absences whose
        # deliveries are still on their way (found by tests/chaos: thousands of
        # not_delivered and goal_not_reached fired, then retracted, after worker kills)
        self.last_read: dict[str, float] = dict.fromkeys(inputs, clock())
        self.clock = clock
        self.outbox = Outbox(clock)
        self.engine = Engine(config, self.outbox, clock)
        self.engine.dirty = set()
        # orphans expire only in tick(), when the promises topic (inputs[0]) is caught up
        self.engine.hold_orphans = True
        self.clocks = Clocks({t: -INF for t in inputs}, {t: -INF for t in inputs})
        self.next_offset: dict[str, int] = {}  # per input topic: the next offset to read

    # --- recovery ------------------------------------------------------------------

    def restore(self, entries: Iterable[bytes], clocks: bytes | None) -> None:
        """Rebuild from persisted entries, then say every held emission again."""
        if clocks is not None:
            saved = decode_clocks(clocks)
            for topic in self.inputs:
                self.clocks.event_time[topic] = saved.event_time.get(topic, -INF)
                self.clocks.quiet_at[topic] = saved.quiet_at.get(topic, -INF)
        self.engine.restore(map(_decode_entry, entries), self.watermark())
        self.engine.announce()

    # --- input -----------------------------------------------------------------------

    def declare(self, event: CapabilityDeclared, raw: bytes, origin: Origin) -> None:
        """A declared capability (every partition's engine gets every one): the promises
        that rely on it are judged again. It moves no watermark: it is not an input of
        this partition."""
        self.engine.process(event, raw, origin)

    def message(self, topic: str, offset: int, key: bytes | None, raw: bytes | None) -> None:
        """One message from an input topic (``raw`` is None for a record without a value)."""
        self.next_offset[topic] = offset + 1
        self.last_read[topic] = self.clock()
        origin = Origin(topic, self.number, offset, key)
        event = parse(raw, origin)
        engine = self.engine
        if isinstance(event, Reject):
            engine.refuse(event)
            return
        assert raw is not None  # parse() rejects a record without a value
        if type(event) is CapabilityDeclared:
            engine.refuse(
                Reject(
                    Reason.INVALID_EVENT,
                    "type: capability.declared events go on the capabilities topic "
                    "(capabilities.declared), keyed by data.capability, not on the promise "
                    "topics: the SDK sends them there",
                    raw,
                    event.id,
                    origin,
                )
            )
            return
        pid = event.id if type(event) is PromiseIssued else event.data.promise_id  # type: ignore[union-attr]
        if key is None or key != pid.encode():
            engine.refuse(
                Reject(
                    Reason.INVALID_EVENT,
                    f"the Kafka key is {key!r} but the promise id is {pid!r}: key every event "
                    "by its promise id (the SDK does), so that a promise and its deliveries "
                    "meet in one partition",
                    raw,
                    event.id,
                    origin,
                )
            )
            return
        t = engine.process(event, raw, origin, now=self.clock())
        if t is None:
            return
        if t > self.clocks.event_time.get(topic, -INF):
            self.clocks.event_time[topic] = t
        if type(event) is PromiseIssued:
            state = engine.promises.get(pid)
            if state is not None and state.status == "open":
                self.outbox.outcome(state)  # live outcomes list every promise, open ones too
        engine.advance(self.watermark())

    def tick(self, caught_up: dict[str, bool]) -> None:
        """Wall-clock time passes: a caught-up, quiet input topic advances with it.

        Quiet means no message for ``quiet`` seconds as well: while a backlog streams in,
        "caught up" can be true for an instant between two fetches, and a watermark that
        jumped to the wall clock then would expire waiting observations long before their
        promises are read.
        """
        now = self.clock()
        for topic, yes in caught_up.items():
            quiet = now - self.last_read.get(topic, -INF) >= self.quiet
            if yes and quiet and now > self.clocks.quiet_at[topic]:
                self.clocks.quiet_at[topic] = now
        self.engine.advance(self.watermark())
        if caught_up.get(self.inputs[0]):
            # Only now may an orphan expire: its promise is not among unread messages. The
            # watermark alone is no proof: read out of event-time order (the demo's stories,
            # ending now, sent before a stream that starts days earlier), the promises
            # topic's watermark passed the TTL of deliveries whose promises were unread.
            self.engine.expire_orphans()

    def watermark(self) -> float:
        """SPEC section 2, live: the smaller of the input topics' watermarks."""
        clocks = self.clocks
        return (
            min(max(clocks.event_time[t], clocks.quiet_at[t]) for t in self.inputs) - self.lateness
        )

    # --- output ----------------------------------------------------------------------

    def changes(self) -> list[tuple[str, bytes | None]]:
        """Entries changed since the last call, encoded; None means the id holds nothing."""
        engine = self.engine
        dirty = engine.dirty
        assert dirty is not None
        out: list[tuple[str, bytes | None]] = []
        for pid in dirty:
            entry: Entry | None = engine.entry(pid)
            out.append((pid, None if entry is None else encode_entry(entry)))
        dirty.clear()
        return out

    def saved_clocks(self) -> bytes:
        return encode_clocks(self.clocks)

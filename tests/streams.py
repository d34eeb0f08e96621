"""The generated stream the live tests compare with a replay, and how it reaches the broker:
the settings under which live and replay agree, the stream, and its sending."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import orjson

from promise_tracker.emit import Emitter, InvalidEvent
from promise_tracker.retime import shift_lines
from promise_tracker.runtime.settings import Settings
from promise_tracker.synthetic import generate
from tests.live import raw_producer

# The generated streams span days of event time and arrive in parts, with pauses. Live, a
# pause longer than the quiet period moves the watermark to the wall clock, and then
# observations still waiting for a promise in a later part expire: right for live traffic,
# not what a replay of the file does. Equality tests keep the watermark on event time;
# the wall-clock path has its own test (test_worker.py's quiet stream).
QUIET = 3600.0
# An observation read before its promise waits the orphan TTL, counted on each partition's
# own watermark live and on the file's in a replay. With a stream that arrives in parts,
# the two differ for observations whose promise is in a later part (see docs/live.md):
# the equality tests are about crashes and partitions, so both sides get a TTL nothing
# reaches.
ORPHAN_TTL = 3650 * 86_400.0
# Likewise the retention: the streams span about a week, and which early events are
# older than "watermark minus 7 days" depends on how far each partition has read.
RETENTION = 3650 * 86_400.0
PARTITIONS = 4


def make_stream(tmp_path: Path, events: int, seed: int) -> Path:
    """A generated stream (every rule, late and duplicate lines, junk) moved in time so that
    its last due time was two minutes ago, then, for each partition, a promise and its
    delivery a minute ago (sent to that partition by ``send``): their time is the replay's
    final watermark and every live partition's, so both decide the same promises."""
    path = tmp_path / "stream.jsonl"
    generate(path, events=events, open_promises=max(events // 10, 10), seed=seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # every due time too, so that no promise is due between the replay's final watermark
    # (the sentinel's time) and the live one (the wall clock), where the two would differ
    lines = shift_lines(path.read_bytes().splitlines(), now - dt.timedelta(minutes=2), terms=True)
    at = (now - dt.timedelta(minutes=1)).isoformat()
    due = (now + dt.timedelta(days=30)).isoformat()
    sentinels = []
    for number in range(PARTITIONS):  # each partition's watermark reaches that time
        pid = f"sentinel-{seed}-p{number}"
        sentinels += [
            {
                "specversion": "1.0",
                "type": "promise.issued",
                "source": "test/sentinel",
                "id": pid,
                "time": at,
                "data": {"kind": "deliver_by", "channel": "web", "terms": {"due_at": due}},
            },
            {
                "specversion": "1.0",
                "type": "delivery.observed",
                "source": "test/sentinel",
                "id": f"{pid}-delivered",
                "time": at,
                "data": {"promise_id": pid, "kind": "delivered", "value": {}},
            },
        ]
    path.write_bytes(b"\n".join([*lines, *map(orjson.dumps, sentinels)]) + b"\n")
    return path


def send(stream: Path, settings: Settings, lines: slice = slice(None)) -> int:
    """Valid lines through the SDK, the rest as raw bytes; returns how many were raw.

    The sentinels go last, once everything before them is on the broker: sent by another
    producer, they could otherwise overtake older events and make them too late."""
    raw = 0
    other = raw_producer(settings.kafka)
    sentinels = []
    with Emitter(settings) as emitter:
        for line in stream.read_bytes().splitlines()[lines]:
            sentinel = re.search(rb'"(sentinel-\d+-p(\d+))"', line)
            if sentinel:
                sentinels.append((sentinel, line))
                continue
            try:
                emitter.send_event(line)
            except InvalidEvent:
                other.produce(settings.issued, value=line)
                raw += 1
    for sentinel, line in sentinels:  # to its own partition, keyed by its promise id
        key, number = sentinel.group(1), int(sentinel.group(2))
        topic = settings.observed if b"delivered" in line else settings.issued
        other.produce(topic, key=key, value=line, partition=number)
    assert other.flush(30) == 0
    return raw

"""Bad input at volume: a real worker on the real broker takes >10,000 hostile messages
mixed into a valid stream, then a flood of orphan observations beyond ``max_orphans``.

It must never stop, put every hostile message in the DLQ once with the reason its category
deserves and its bytes unchanged, hold at most ``max_orphans`` orphans per partition, and
give the valid stream the replay's answer. (The small, one-of-each version with its headers
checked field by field is test_worker.py's hostile test.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from promise_tracker.runtime.kafka import producer_config
from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from tests.answers import Answer, Outputs, live_answer, replay_answer
from tests.live import WorkerProcess, fresh_settings, wait_for
from tests.prometheus import free_port, scrape
from tests.streams import ORPHAN_TTL, PARTITIONS, QUIET, RETENTION, make_stream, send

MAX_ORPHANS = 1000  # per partition
FLOOD = 40_000  # observations of promises that never come: 10x the four partitions' cap
PARTS = 5  # the valid stream is sent in this many slices, hostile messages between them
NESTING = 100_000


@dataclass(frozen=True)
class Hostile:
    category: str
    reason: str  # the reason code its DLQ record must carry
    topic: str
    key: bytes | None
    value: bytes | None

    @property
    def identity(self) -> bytes:
        """How its DLQ record is recognised: the key (unique per hostile message), or the
        bytes when it has no key."""
        return self.key if self.key is not None else _digest(self.value)


def _digest(value: bytes | None) -> bytes:
    return b"sha:" + hashlib.sha256(value or b"").digest()


def _iso(stamp: dt.datetime) -> str:
    return stamp.isoformat().replace("+00:00", "Z")


def _promise(pid: str, at: str, **data: Any) -> dict[str, Any]:
    body = {"kind": "max_wait", "channel": "phone", "terms": {"max_seconds": 60}, **data}
    return {
        "specversion": "1.0",
        "type": "promise.issued",
        "source": "test/hostile",
        "id": pid,
        "time": at,
        "data": body,
    }


def _observation(oid: str, pid: str, at: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": "delivery.observed",
        "source": "test/hostile",
        "id": oid,
        "time": at,
        "data": {"promise_id": pid, "kind": "hold_time", "value": {"seconds": 5}},
    }


def hostile_stream(settings: Settings, rng: random.Random) -> list[Hostile]:
    """Every kind of bad input a worker must survive; none of it may change the answer."""
    now = dt.datetime.now(dt.UTC)
    at, future = _iso(now - dt.timedelta(minutes=1)), _iso(now + dt.timedelta(days=2))
    issued, observed = settings.issued, settings.observed
    out: list[Hostile] = []
    counter = iter(range(10**9))

    def add(category: str, reason: str, topic: str, value: bytes | None, key: str = "") -> None:
        n = next(counter)
        key_bytes = (key or f"hostile-{n}").encode() if key != "-" else None
        out.append(Hostile(category, reason, topic, key_bytes, value))

    for _ in range(2500):
        add("random_bytes", "invalid_json", issued, b"\xff" + rng.randbytes(rng.randint(0, 400)))
    for n in range(2000):
        whole = orjson.dumps(_promise(f"cut-{n}", at))
        add("truncated_json", "invalid_json", observed, whole[: rng.randint(1, len(whole) - 1)])
    deep = b"[" * NESTING + b"]" * NESTING
    for value in (
        deep,
        b'{"specversion":"1.0","data":' + deep + b"}",
        b'{"a":' * NESTING + b"1" + b"}" * NESTING,
        orjson.dumps(_promise("deep", at))[:-1] + b',"x":' + deep + b"}",
    ):
        add("deep_nesting", "invalid_event", issued, value)
    # about a megabyte: an id far over 200 characters, an event over the 1 MiB limit, and
    # incompressible bytes (the broker's limit is on the compressed batch)
    add("huge", "invalid_event", issued, orjson.dumps(_promise("x" * 1_000_000, at)))
    add("huge", "invalid_event", issued, orjson.dumps(_promise("big", at, text="t" * 1_050_000)))
    add("huge", "invalid_json", observed, b"\xff" + rng.randbytes(1_000_000))
    add("huge", "invalid_event", observed, orjson.dumps(_observation("o", "p" * 1_000_000, at)))
    wrong: list[dict[str, Any]] = [
        {**_promise("w", at), "time": 1767225600},
        {**_promise("w", at), "id": 42},
        {**_promise("w", at), "specversion": 1.0},
        {**_promise("w", at), "data": []},
        _promise("w", at, terms={"max_seconds": "sixty"}),
        _promise("w", at, labels={"team": 7}),
        _promise("w", at, channel=["web"]),
        {**_observation("w", "p", at), "data": {"promise_id": None, "kind": "delivered"}},
        [1, 2, 3],
        "a string",
    ]
    for n in range(2000):
        add("wrong_types", "invalid_event", issued, orjson.dumps(wrong[n % len(wrong)]))
    for n in range(800):
        event = {**_promise(f"u-{n}", at), "type": rng.choice(["promise.amended", "x", ""])}
        add("unknown_type", "unknown_type", rng.choice([issued, observed]), orjson.dumps(event))
    for n in range(800):
        event = _promise(f"k-{n}", at)
        event["data"]["kind"] = rng.choice(["vibes", "DEADLINE", ""])
        add("unknown_kind", "invalid_event", issued, orjson.dumps(event))
    for n in range(1000):  # keyed by their promise id: the clock check is what refuses them
        pid = f"hostile-future-{n}"
        if n % 2:
            add("far_future", "from_future", issued, orjson.dumps(_promise(pid, future)), pid)
        else:
            event = _observation(f"of-{n}", pid, future)
            add("far_future", "from_future", observed, orjson.dumps(event), pid)
    for n in range(800):  # valid events whose key is not their promise id
        event = _promise(f"km-{n}", at) if n % 2 else _observation(f"kmo-{n}", f"km-{n}", at)
        add("key_mismatch", "invalid_event", issued if n % 2 else observed, orjson.dumps(event))
    for n in range(100):
        add("no_key", "invalid_event", issued, orjson.dumps(_promise(f"nk-{n}", at)), "-")
    for _ in range(200):
        add("null_value", "invalid_json", rng.choice([issued, observed]), None)
    for _ in range(100):
        add("empty_value", "invalid_json", issued, b"")
    return out


def late_hostile(settings: Settings, promise_ids: list[str]) -> list[Hostile]:
    """Sent once every partition's watermark is near the wall clock: events far in the past,
    and promise ids already taken, with other content."""
    past = "2000-01-01T00:00:00Z"
    out: list[Hostile] = []
    for n in range(1000):
        pid = f"hostile-past-{n}"
        if n % 2:
            event, topic = _promise(pid, past), settings.issued
        else:
            event, topic = _observation(f"op-{n}", pid, past), settings.observed
        out.append(Hostile("far_past", "too_late", topic, pid.encode(), orjson.dumps(event)))
    at = _iso(dt.datetime.now(dt.UTC))
    for pid in promise_ids:
        event = orjson.dumps(_promise(pid, at, text="the same id, other words"))
        out.append(
            Hostile("conflicting", "conflicting_duplicate", settings.issued, pid.encode(), event)
        )
    return out


def orphan_flood(numbers: range) -> Iterator[tuple[bytes, bytes]]:
    """Valid observations of promises that never come, keyed by their promise ids."""
    at = _iso(dt.datetime.now(dt.UTC))
    for n in numbers:
        pid = f"ghost-{n}"
        yield pid.encode(), orjson.dumps(_observation(f"flood-{n}", pid, at))


def big_producer(settings: Settings) -> Producer:
    """Raw bytes of up to ~1 MB (librdkafka refuses a message over 1,000,000 by default)."""
    return Producer({**producer_config(settings), "message.max.bytes": 4 << 20})


def produce(producer: Producer, messages: list[Hostile]) -> None:
    for h in messages:
        while True:
            try:
                producer.produce(h.topic, value=h.value, key=h.key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


class DeadLetters:
    """The DLQ split into hostile messages (by identity), the flood, and the rest."""

    def __init__(self, messages: list[Any], hostile: dict[bytes, Hostile]):
        self.hostile: dict[bytes, list[Any]] = {}
        self.flood: list[Any] = []
        self.rest: list[Any] = []
        self.without_reason = 0
        for message in messages:
            headers = dict(message.headers() or [])
            if not headers.get("reason"):
                self.without_reason += 1
            key = message.key()
            identity = key if key is not None else _digest(message.value())
            if identity in hostile:
                self.hostile.setdefault(identity, []).append(message)
            elif key is not None and key.startswith(b"ghost-"):
                self.flood.append(message)
            else:
                self.rest.append(message)

    def valid_answer(self, outputs: Outputs) -> Answer:
        """The valid stream's answer: its outputs, and its own rejects."""
        return live_answer(
            outputs.violations.messages,
            outputs.outcomes.messages,
            [dict(m.headers()) for m in self.rest],
        )


def reaches(got: Answer, expected: Answer) -> bool:
    return (
        got.violations == expected.violations
        and got.outcomes == expected.outcomes
        and got.rejects == expected.rejects
        and got.orphans <= expected.orphans
    )


@pytest.fixture
def hostile_worker(kafka: str, tmp_path: Path) -> Iterator[tuple[Settings, WorkerProcess]]:
    settings = fresh_settings(
        kafka,
        partitions=PARTITIONS,
        quiet=QUIET,
        orphan_ttl=ORPHAN_TTL,
        retention=RETENTION,
        max_orphans=MAX_ORPHANS,
        metrics_port=free_port(),
    )
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    yield settings, worker
    worker.stop()


def test_hostile_input_at_volume_is_dead_lettered_and_the_valid_answer_stands(
    hostile_worker, tmp_path
):
    settings, worker = hostile_worker
    started = time.monotonic()
    rng = random.Random(6)
    stream = make_stream(tmp_path, events=3000, seed=61)
    expected = replay_answer(stream, tmp_path)
    first = hostile_stream(settings, rng)
    assert len(first) >= 10_000
    producer = big_producer(settings)
    outputs = Outputs(settings)
    metrics = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    try:
        # phase 1: the valid stream in slices, hostile messages before, between and after
        total = len(stream.read_bytes().splitlines())
        chunks = [first[i::PARTS] for i in range(PARTS)]
        for i in range(PARTS):
            produce(producer, chunks[i])
            send(stream, settings, slice(total * i // PARTS, total * (i + 1) // PARTS))
        hostile = {h.identity: h for h in first}
        assert len(hostile) == len(first)  # each one recognisable in the DLQ

        def phase_one_done() -> bool:
            outputs.poll()
            dead = DeadLetters(outputs.dlq.messages, hostile)
            return len(dead.hostile) == len(hostile) and reaches(
                dead.valid_answer(outputs), expected
            )

        assert wait_for(phase_one_done, 60), worker.tail()
        phase_one = time.monotonic() - started

        # phase 2: past events, taken ids, and the orphan flood, while the RSS is watched
        pid = worker.process.pid
        rss_before = rss_kib(pid)
        taken = sorted(p for p in expected.outcomes if not p.startswith("sentinel"))[:50]
        second = late_hostile(settings, taken)
        produce(producer, second)
        hostile.update({h.identity: h for h in second})
        flood_started = time.monotonic()
        rss = [rss_before]
        # in two halves: past the cap, a second flood as large must not grow the worker
        for half in (range(FLOOD // 2), range(FLOOD // 2, FLOOD)):
            for key, value in orphan_flood(half):
                while True:
                    try:
                        producer.produce(settings.observed, value=value, key=key)
                        break
                    except BufferError:
                        producer.poll(0.05)
            assert producer.flush(60) == 0
            evicted_at_least = half.stop - PARTITIONS * MAX_ORPHANS

            def flood_done(at_least: int = evicted_at_least) -> bool:
                outputs.poll()
                dead = DeadLetters(outputs.dlq.messages, hostile)
                return len(dead.hostile) == len(hostile) and len(dead.flood) >= at_least

            assert wait_for(flood_done, 60), worker.tail()
            rss.append(rss_kib(pid))
        flood_seconds = time.monotonic() - flood_started
        time.sleep(1)  # anything still on its way (there must be nothing)
        outputs.poll()
        rss_after = rss_kib(pid)
        samples = scrape(metrics)

        # the worker never stopped, never restarted, never took the bug path
        assert worker.alive() and worker.starts == 1, worker.tail()
        log = worker.log.read_text(errors="replace")
        assert "Traceback" not in log and "failed on" not in log, worker.tail()
        dead = DeadLetters(outputs.dlq.messages, hostile)
        assert dead.without_reason == 0

        # every hostile message: once, with its category's reason and its bytes
        got: Counter = Counter()
        for identity, h in hostile.items():
            messages = dead.hostile[identity]
            assert len(messages) == 1, (h.category, len(messages))
            headers = {k: v.decode() for k, v in messages[0].headers()}
            assert headers["reason"] == h.reason, (h.category, headers)
            assert headers["message"] and headers["topic"] == h.topic
            assert "a bug" not in headers["message"], headers
            assert messages[0].value() == (h.value or b"") or h.value is None
            got[(h.category, headers["reason"])] += 1
        huge = [dead.hostile[h.identity][0] for h in hostile.values() if h.category == "huge"]
        assert [len(m.value()) for m in huge] == [
            len(h.value or b"") for h in hostile.values() if h.category == "huge"
        ]
        assert all(len(m.value()) >= 1_000_000 for m in huge)

        # the flood: held orphans capped per partition and counted; the rest dead-lettered
        held = samples.by("promise_tracker_orphans", "partition")
        assert len(held) == PARTITIONS and all(n <= MAX_ORPHANS for n in held.values()), held
        flood_ids = [dict(m.headers())["event_id"] for m in dead.flood]
        assert len(flood_ids) == len(set(flood_ids))  # each evicted once
        assert {dict(m.headers())["reason"] for m in dead.flood} == {b"unknown_promise"}
        assert all(b"orphan buffer is full" in dict(m.headers())["message"] for m in dead.flood)
        assert len(dead.flood) + sum(held.values()) >= FLOOD
        unknown = samples.get("promise_tracker_rejects_total", reason="unknown_promise")
        assert unknown == len(dead.flood) + sum(
            1 for m in dead.rest if dict(m.headers())["reason"] == b"unknown_promise"
        )
        rejects = samples.by("promise_tracker_rejects_total", "reason")
        assert sum(rejects.values()) == len(outputs.dlq.messages)

        # and the valid stream's answer is the replay's
        assert reaches(dead.valid_answer(outputs), expected)
        elapsed = time.monotonic() - started
        by_reason = Counter(reason for (_, reason), n in got.items() for _ in range(n))
        by_reason["unknown_promise (flood)"] = len(dead.flood)
        print(
            f"\nhostile by category and reason: {dict(sorted(got.items()))}"
            f"\nDLQ by reason: {dict(sorted(by_reason.items()))}"
            f"\norphans held per partition: {dict(sorted(held.items()))}"
            f"\nworker RSS before the flood, after its first half, after its second: "
            f"{', '.join(f'{kib / 1024:.1f}' for kib in rss)} MiB"
            f"\nphase 1 (valid + {len(first)} hostile) {phase_one:.1f} s, flood of {FLOOD} "
            f"{flood_seconds:.1f} s, whole test {elapsed:.1f} s"
        )
        assert rss_after - rss_before < 200 * 1024  # KiB
        # held orphans are capped: the second half's growth is allocator noise, not state
        assert rss[2] - rss[1] < max(16 * 1024, (rss[1] - rss[0]) // 2), rss
    finally:
        outputs.close()

"""The live worker on a real broker gives the replay's answer: through the SDK, across a
SIGKILL, beside hostile input, and on a quiet stream whose deadline passes."""

from __future__ import annotations

import datetime as dt
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pytest

from promise_tracker.emit import Emitter, InvalidEvent
from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from promise_tracker.streams.records import read_jsonl
from promise_tracker.synthetic import generate, shift_lines
from tests.live import (
    TopicReader,
    WorkerProcess,
    fresh_settings,
    last_by_key,
    raw_producer,
    wait_for,
)
from tests.support import ROOT

# The generated streams span days of event time and arrive in parts, with pauses. Live, a
# pause longer than the quiet period moves the watermark to the wall clock, and then
# observations still waiting for a promise in a later part expire: right for live traffic,
# not what a replay of the file does. Equality tests keep the watermark on event time;
# the wall-clock path has its own test below.
QUIET = 3600.0
# An observation read before its promise waits the orphan TTL, counted on each partition's
# own watermark live and on the file's in a replay. With a stream that arrives in parts,
# the two differ for observations whose promise is in a later part (see docs/live.md):
# these tests are about crashes and partitions, so both sides get a TTL nothing reaches.
ORPHAN_TTL = 3650 * 86_400.0
# Likewise the retention: the streams span about a week, and which early events are
# older than "watermark minus 7 days" depends on how far each partition has read.
RETENTION = 3650 * 86_400.0
PARTITIONS = 4


@dataclass
class Answer:
    violations: dict[str, dict]  # violation id -> last emission (detected_at dropped)
    outcomes: dict[str, dict]  # promise id -> final outcome
    rejects: Counter  # reason -> count, unknown_promise aside
    # live holds an orphan until the watermark is a day past it; replay rejects every one
    # left at the end: live's must be some of replay's
    orphans: set[str]


def active(last: dict[str, dict]) -> dict[str, dict]:
    """SPEC section 4: the last emission per id is the truth; compare the active ones (a
    violation the replay emitted and retracted may never have been emitted live at all)."""
    return {vid: record for vid, record in last.items() if record["state"] == "active"}


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


def replay_answer(stream: Path, tmp_path: Path) -> Answer:
    files = {name: tmp_path / f"replay-{name}.jsonl" for name in ("v", "o", "r")}
    subprocess.run(
        [sys.executable, "-m", "promise_tracker.cli", "replay", str(stream), "--quiet"]
        + ["--violations", str(files["v"]), "--outcomes", str(files["o"])]
        + ["--rejects", str(files["r"]), "--orphan-ttl", str(ORPHAN_TTL)]
        + ["--retention", str(RETENTION)],
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    violations = {}
    for record in read_jsonl(files["v"]):
        record.pop("detected_at")
        violations[record["violation_id"]] = record
    violations = active(violations)
    outcomes = {record["promise_id"]: record for record in read_jsonl(files["o"])}
    rejects = read_jsonl(files["r"])
    orphans = {r["event_id"] for r in rejects if r["reason"] == "unknown_promise"}
    reasons = Counter(r["reason"] for r in rejects if r["reason"] != "unknown_promise")
    return Answer(violations, outcomes, reasons, orphans)


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


class Outputs:
    def __init__(self, settings: Settings):
        self.violations = TopicReader(settings.kafka, settings.violations)
        self.outcomes = TopicReader(settings.kafka, settings.outcomes)
        self.dlq = TopicReader(settings.kafka, settings.dlq)

    def poll(self) -> None:
        for reader in (self.violations, self.outcomes, self.dlq):
            reader.poll(0.2)

    def answer(self) -> Answer:
        # at-least-once: a reject may be said again after a crash; its origin identifies it
        unique = {}
        for message in self.dlq.messages:
            h = dict(message.headers())
            unique[(h.get("topic"), h.get("partition"), h.get("offset"))] = h
        headers = list(unique.values())
        orphans = {h["event_id"].decode() for h in headers if h["reason"] == b"unknown_promise"}
        reasons = Counter(
            h["reason"].decode() for h in headers if h["reason"] != b"unknown_promise"
        )
        return Answer(
            active(last_by_key(self.violations.messages)),
            last_by_key(self.outcomes.messages),
            reasons,
            orphans,
        )

    def reached(self, expected: Answer) -> bool:
        self.poll()
        got = self.answer()
        return got.orphans <= expected.orphans and replace(got, orphans=expected.orphans) == (
            expected
        )

    def close(self) -> None:
        for reader in (self.violations, self.outcomes, self.dlq):
            reader.close()


@pytest.fixture
def live(kafka: str, tmp_path: Path):
    """Settings with their own topics (created), and the workers started under them."""
    settings = fresh_settings(
        kafka, partitions=PARTITIONS, quiet=QUIET, orphan_ttl=ORPHAN_TTL, retention=RETENTION
    )
    ensure_topics(settings)
    workers: list[WorkerProcess] = []

    def start(name: str = "worker") -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"{name}.log").start()
        workers.append(worker)
        return worker

    yield settings, start
    for worker in workers:
        worker.stop()


def assert_reaches(outputs: Outputs, expected: Answer, worker: WorkerProcess, timeout: float):
    wait_for(lambda: outputs.reached(expected), timeout)
    got = outputs.answer()
    assert worker.alive(), worker.tail()
    missing = expected.violations.keys() - got.violations.keys()
    extra = got.violations.keys() - expected.violations.keys()
    changed = [
        k
        for k in expected.violations.keys() & got.violations.keys()
        if expected.violations[k] != got.violations[k]
    ]
    detail = [
        (vid, expected.violations.get(vid, got.violations.get(vid)))
        for vid in sorted(missing | extra)[:3]
    ]
    detail_text = "\n".join(
        f"{vid}: {record['promise_id']} {record['reason']} expected "
        f"{expected.outcomes.get(record['promise_id'], {}).get('status')}, live "
        f"{got.outcomes.get(record['promise_id'], {}).get('status')}"
        for vid, record in detail
    )
    assert (len(missing), len(extra), changed[:3]) == (0, 0, []), f"{detail_text}\n{worker.tail()}"
    bad_outcomes = {
        pid: (expected.outcomes.get(pid), got.outcomes.get(pid))
        for pid in expected.outcomes.keys() | got.outcomes.keys()
        if expected.outcomes.get(pid) != got.outcomes.get(pid)
    }
    assert bad_outcomes == {}
    assert got.rejects == expected.rejects
    assert got.orphans <= expected.orphans


def test_sdk_events_give_the_replay_answer(live, tmp_path):
    settings, start = live
    stream = make_stream(tmp_path, events=3000, seed=11)
    expected = replay_answer(stream, tmp_path)
    assert expected.violations and expected.rejects  # the stream exercises rules and junk
    worker = start()
    outputs = Outputs(settings)
    try:
        send(stream, settings)
        assert_reaches(outputs, expected, worker, timeout=120)
    finally:
        outputs.close()


def test_a_killed_worker_recovers_its_state_and_the_answer_is_unchanged(kafka, tmp_path):
    """SIGKILL at random moments (joining, restoring, mid-batch, idle) while the stream
    arrives in parts; after the last restart the answer is the replay's."""
    settings = fresh_settings(
        kafka,
        partitions=PARTITIONS,
        instance="worker-a",
        quiet=QUIET,
        orphan_ttl=ORPHAN_TTL,
        retention=RETENTION,
    )
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    stream = make_stream(tmp_path, events=20_000, seed=12)
    expected = replay_answer(stream, tmp_path)
    outputs = Outputs(settings)
    chance = random.Random(12)
    kills = 0
    try:
        total = len(stream.read_bytes().splitlines())
        parts = 5
        for i in range(parts):
            send(stream, settings, slice(total * i // parts, total * (i + 1) // parts))
            worker.start()
            time.sleep(chance.uniform(0.3, 2.5))
            assert worker.alive(), worker.tail()
            worker.kill()
            kills += 1
        worker.start()
        assert_reaches(outputs, expected, worker, timeout=120)
        restored = [
            int(n)
            for n in re.findall(r"partition \d+: (\d+) entries restored", worker.log.read_text())
        ]
        assert sum(restored) > 0  # the restarts rebuilt engines from the changelog
        print(f"{kills} kills survived; {len(expected.violations)} violations as replay says")
    finally:
        outputs.close()
        worker.stop()


def test_hostile_messages_go_to_the_dlq_with_their_bytes_and_the_worker_goes_on(live, tmp_path):
    settings, start = live
    worker = start()
    outputs = Outputs(settings)
    producer = raw_producer(settings.kafka)
    now = dt.datetime.now(dt.UTC).isoformat()
    good = {
        "specversion": "1.0",
        "type": "promise.issued",
        "source": "test/dlq",
        "id": "after-the-junk",
        "time": now,
        "data": {"kind": "max_wait", "channel": "phone", "terms": {"max_seconds": 60}},
    }
    hostile = [
        (settings.issued, b"k1", b"\xff\xfe not json", "invalid_json"),
        (settings.issued, b"k2", b'{"specversion":"1.0"', "invalid_json"),
        (
            settings.observed,
            b"k3",
            orjson.dumps({**good, "type": "promise.amended"}),
            "unknown_type",
        ),
        (settings.issued, b"k4", orjson.dumps({**good, "time": "tuesday"}), "invalid_event"),
        (settings.issued, b"not-its-id", orjson.dumps(good), "invalid_event"),  # wrong key
        (settings.issued, None, orjson.dumps({**good, "id": "no-key"}), "invalid_event"),
    ]
    try:
        for topic, key, value, _ in hostile:
            producer.produce(topic, key=key, value=value)
        producer.flush(30)
        with Emitter(settings) as emitter:
            emitter.send_event(orjson.dumps(good))
        assert wait_for(
            lambda: (
                outputs.poll()
                or (
                    "after-the-junk" in last_by_key(outputs.outcomes.messages)
                    and len(outputs.dlq.messages) >= len(hostile)
                )
            ),
            90,
        ), worker.tail()
        assert worker.alive()
        by_bytes = {m.value(): m for m in outputs.dlq.messages}
        for topic, key, value, reason in hostile:
            message = by_bytes[value]  # the original bytes, unchanged
            headers = {k: v.decode() for k, v in message.headers()}
            assert headers["reason"] == reason
            assert headers["topic"] == topic
            assert int(headers["offset"]) >= 0
            assert headers["message"]
            assert message.key() == key
        assert len(outputs.dlq.messages) == len(hostile)
    finally:
        outputs.close()


def test_a_missed_deadline_fires_on_a_quiet_stream(kafka, tmp_path):
    settings = fresh_settings(kafka, partitions=2, lateness=0.5, tick_interval=0.25)
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    outputs = Outputs(settings)
    try:
        # let it join its group first, so that start-up is not what is measured
        time.sleep(1)
        with Emitter(settings) as emitter:
            emitter.send_event(
                orjson.dumps(
                    {
                        "specversion": "1.0",
                        "type": "promise.issued",
                        "source": "test/quiet",
                        "id": "warm-up",
                        "time": dt.datetime.now(dt.UTC).isoformat(),
                        "data": {"kind": "max_wait", "channel": "web", "terms": {"max_seconds": 9}},
                    }
                )
            )
        assert wait_for(lambda: outputs.poll() or outputs.outcomes.messages, 60), worker.tail()
        due = time.time() + 3
        with Emitter(settings) as emitter:
            emitter.issue_promise(
                id="quiet-1",
                source="test/quiet",
                kind="deliver_by",
                channel="mail",
                terms={"due_at": dt.datetime.fromtimestamp(due, dt.UTC)},
            )
        assert wait_for(lambda: outputs.poll() or outputs.violations.messages, 30), worker.tail()
        [message] = outputs.violations.messages
        record = orjson.loads(message.value())["data"]
        assert record["reason"] == "not_delivered"
        # when the worker wrote it (the record's create time), not when this test's
        # polling loop came round to read it
        flagged = message.timestamp()[1] / 1000
        late_by = flagged - (due + settings.lateness)
        print(f"missed deadline flagged {late_by:.3f} s after due + lateness")
        assert late_by <= 1.0
    finally:
        outputs.close()
        worker.stop()


def test_two_workers_share_the_partitions_and_give_the_replay_answer(kafka, tmp_path):
    """One consumer group: each worker owns some partition numbers of both input topics,
    and a second worker joining mid-stream moves partitions without changing the answer."""
    settings = fresh_settings(
        kafka, partitions=PARTITIONS, quiet=QUIET, orphan_ttl=ORPHAN_TTL, retention=RETENTION
    )
    ensure_topics(settings)
    stream = make_stream(tmp_path, events=8000, seed=13)
    expected = replay_answer(stream, tmp_path)
    first = WorkerProcess(settings, tmp_path / "first.log").start()
    second = WorkerProcess(settings, tmp_path / "second.log")
    outputs = Outputs(settings)
    try:
        total = len(stream.read_bytes().splitlines())
        send(stream, settings, slice(0, total // 2))
        second.start()  # joins while the first works: a rebalance mid-stream
        send(stream, settings, slice(total // 2, None))
        assert_reaches(outputs, expected, first, timeout=120)
        assert second.alive(), second.tail()
        owned = [
            re.findall(r"assigned partitions \[([\d, ]*)\]", w.log.read_text())[-1]
            for w in (first, second)
        ]
        numbers = sorted(int(n) for part in owned for n in part.split(",") if n.strip())
        assert numbers == [0, 1, 2, 3], owned  # split between them, each number once
        assert all(part.strip() for part in owned), owned
    finally:
        outputs.close()
        first.stop()
        second.stop()

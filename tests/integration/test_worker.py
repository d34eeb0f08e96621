"""The live worker on a real broker gives the replay's answer: through the SDK, across a
SIGKILL, beside hostile input, and on a quiet stream whose deadline passes."""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from pathlib import Path

import orjson
import pytest

from promise_tracker.emit import Emitter
from promise_tracker.runtime.kafka import group_lag
from promise_tracker.runtime.topics import ensure_topics
from tests.answers import Answer, Outputs, replay_answer
from tests.live import WorkerProcess, fresh_settings, last_by_key, raw_producer, wait_for
from tests.streams import ORPHAN_TTL, PARTITIONS, QUIET, RETENTION, make_stream, send


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


def test_regression_orphans_wait_for_promises_read_out_of_event_time_order(kafka, tmp_path):
    """Found in the demo (about one run in three): a partition's deliveries were read before
    its promises, and the first promises read were days newer than the rest (the stories,
    sent before the synthetic stream); the promises topic's watermark passed the waiting
    deliveries' TTL at once and 1,172 were rejected unknown_promise while their promises
    sat unread in the topic. Here on a real broker: deliveries first, then in one batch a
    promise two days newer than the one they wait for, then that one."""
    settings = fresh_settings(kafka, partitions=1, quiet=QUIET)  # the orphan TTL is 1 day
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    outputs = Outputs(settings)
    producer = raw_producer(settings.kafka)
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=3)

    def at(hours: float) -> str:
        return (t0 + dt.timedelta(hours=hours)).isoformat()

    def promise(pid: str, hours: float, due: float) -> bytes:
        data = {"kind": "deliver_by", "channel": "web", "terms": {"due_at": at(due)}}
        return orjson.dumps(
            {"specversion": "1.0", "type": "promise.issued", "source": "test/order"}
            | {"id": pid, "time": at(hours), "data": data}
        )

    def delivered(oid: str, pid: str, hours: float) -> bytes:
        data = {"promise_id": pid, "kind": "delivered", "value": {}}
        return orjson.dumps(
            {"specversion": "1.0", "type": "delivery.observed", "source": "test/order"}
            | {"id": oid, "time": at(hours), "data": data}
        )

    try:
        for oid, pid, hours in (("o1", "p1", 1), ("g1", "ghost", 1), ("o2", "q", 48)):
            producer.produce(settings.observed, key=pid.encode(), value=delivered(oid, pid, hours))
        assert producer.flush(30) == 0
        assert wait_for(
            lambda: group_lag(settings, settings.group, [settings.observed]) == 0, 60
        ), worker.tail()
        producer.produce(settings.issued, key=b"q", value=promise("q", 47, due=49))
        producer.produce(settings.issued, key=b"p1", value=promise("p1", 0, due=2))
        assert producer.flush(30) == 0

        def settled() -> bool:
            outputs.poll()
            status = last_by_key(outputs.outcomes.messages).get("p1", {}).get("status")
            return status not in (None, "open") and bool(outputs.dlq.messages)

        assert wait_for(settled, 60), worker.tail()
        assert last_by_key(outputs.outcomes.messages)["p1"]["status"] == "kept"
        rejects = [dict(m.headers()) for m in outputs.dlq.messages]
        # the delivery whose promise never came is still rejected, once the topic is read
        assert [(h["reason"], h["event_id"]) for h in rejects] == [(b"unknown_promise", b"g1")]
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

"""Real processes for the integration tests: the Kafka broker of deploy/kafka, workers
started as ``promise-tracker worker``, and readers of the output topics."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from promise_tracker.runtime.kafka import producer_config
from promise_tracker.runtime.settings import Settings
from tests.support import ROOT

KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"


@dataclass
class Broker:
    address: str
    started: bool  # by these tests (then they stop it)


def start_broker(port: int, data: Path) -> Broker:
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_DATA": str(data)}
    if subprocess.run([KAFKA_SH, "status"], env=env).returncode == 0:
        return Broker(f"127.0.0.1:{port}", started=False)
    subprocess.run([KAFKA_SH, "start"], env=env, check=True, timeout=600)
    return Broker(f"127.0.0.1:{port}", started=True)


def ready(kafka: str, timeout: float = 120.0) -> None:
    """Serving is not ready: wait until an idempotent producer's record is read back by a
    consumer group (the producer-id and group coordinators of a new broker load lazily)."""
    settings = fresh_settings(kafka, partitions=1)
    from promise_tracker.runtime.topics import ensure_topics

    ensure_topics(settings)
    producer = Producer(producer_config(settings))
    producer.produce(settings.issued, b"ready", b"ready")
    assert producer.flush(timeout) == 0, "the broker did not take a record"
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": settings.group,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([settings.issued])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return
        raise TimeoutError(f"no consumer group could read from {kafka} in {timeout:g} s")
    finally:
        consumer.close()


def stop_broker(port: int, data: Path) -> None:
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_DATA": str(data)}
    subprocess.run([KAFKA_SH, "stop"], env=env, check=True, timeout=120)


def fresh_settings(kafka: str, **overrides: Any) -> Settings:
    """Settings whose topics and consumer group no other test uses; metrics off unless
    asked for (several workers run at once, and the default ports may be taken)."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    base = Settings(kafka=kafka, topic_prefix=prefix, metrics_port=0, sink_metrics_port=0)
    return replace(base, **overrides)


def settings_env(settings: Settings) -> dict[str, str]:
    return settings.environment()


class WorkerProcess:
    """``promise-tracker worker`` (or another command: ``sink``) in its own process, its
    output in a log file."""

    def __init__(self, settings: Settings, log: Path, command: str = "worker"):
        self.settings = settings
        self.log = log
        self.command = command
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "promise_tracker.cli", self.command],
                env=settings_env(self.settings),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(30)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class TopicReader:
    """Reads every partition of a topic from the beginning, incrementally."""

    def __init__(self, kafka: str, topic: str):
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": kafka,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,  # a reader that waits adds its wait to latencies
            }
        )
        partitions = self.consumer.list_topics(topic, timeout=30).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self.messages: list[Any] = []

    def poll(self, seconds: float = 0.5) -> int:
        """Read what has arrived (waiting at most ``seconds`` for the first message)."""
        got = 0
        deadline = time.monotonic() + seconds
        while True:
            batch = self.consumer.consume(10_000, max(0.0, deadline - time.monotonic()))
            for message in batch:
                if message.error() is None:
                    self.messages.append(message)
                    got += 1
            if not batch:
                return got
            deadline = time.monotonic()  # drain what is there, do not wait again

    def close(self) -> None:
        self.consumer.close()


def last_by_key(messages: list[Any], drop: tuple[str, ...] = ("detected_at",)) -> dict:
    """The last CloudEvent's data per Kafka key (the truth of SPEC section 4)."""
    out = {}
    for message in messages:
        data = orjson.loads(message.value())["data"]
        for name in drop:
            data.pop(name, None)
        out[message.key().decode()] = data
    return out


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def raw_producer(kafka: str) -> Producer:
    """For bytes the SDK refuses to send: the same partitioner as the SDK."""
    config = producer_config(Settings(kafka=kafka))
    return Producer(config)


Final = dict[str, dict[str, Any]]


def sentinels(w: str, partitions: int) -> list[bytes]:
    """For each partition a promise and its delivery at ``w``, which ``tests.streams.send``
    sends to that partition: each live partition's watermark (the smaller of its two topics'
    latest event times) reaches ``w``, and no further, as a replay's does when ``w`` is its
    file's latest time. They are kept at once and warn at nothing."""
    due = (dt.datetime.fromisoformat(w) + dt.timedelta(days=30)).isoformat()
    lines = []
    for number in range(partitions):
        pid = f"sentinel-0-p{number}"
        issued = {
            "specversion": "1.0",
            "type": "promise.issued",
            "source": "test/sentinel",
            "id": pid,
            "time": w,
            "data": {"kind": "deliver_by", "channel": "web", "terms": {"due_at": due}},
        }
        delivered = {
            "specversion": "1.0",
            "type": "delivery.observed",
            "source": "test/sentinel",
            "id": f"{pid}-delivered",
            "time": w,
            "data": {"promise_id": pid, "kind": "delivered", "value": {}},
        }
        lines += [orjson.dumps(issued), orjson.dumps(delivered)]
    return lines


def replay_answer(stream: Path, tmp_path: Path, *options: str) -> dict[str, Any]:
    """``promise-tracker replay`` of ``stream`` (with ``options``) as an answer like
    ``LiveOutputs.answer``'s."""
    files = {name: tmp_path / f"replay-{name}.jsonl" for name in ("w", "v", "o", "r")}
    subprocess.run(
        [sys.executable, "-m", "promise_tracker.cli", "replay", str(stream), "--quiet", *options]
        + ["--warnings", str(files["w"]), "--violations", str(files["v"])]
        + ["--outcomes", str(files["o"]), "--rejects", str(files["r"])],
        check=True,
        cwd=ROOT,
        timeout=120,
    )

    def last(name: str, key: str) -> Final:
        out = {}
        for line in files[name].read_bytes().splitlines():
            record = orjson.loads(line)
            record.pop("detected_at", None)
            out[record[key]] = record
        return out

    rejects = [orjson.loads(line) for line in files["r"].read_bytes().splitlines()]
    return {
        "warnings": final(last("w", "warning_id")),
        "violations": active(last("v", "violation_id")),
        "outcomes": last("o", "promise_id"),
        "rejects": Counter(r["reason"] for r in rejects),
    }


def final(records: Final) -> Final:
    """SPEC 4.1: the last emission per id is the truth; a retracted warning is none."""
    return {wid: r for wid, r in records.items() if r["state"] != "retracted"}


def active(records: Final) -> Final:
    return {vid: r for vid, r in records.items() if r["state"] == "active"}


class LiveOutputs:
    """The worker's output topics, read from the beginning, as an answer like ``replay``'s."""

    def __init__(self, settings: Settings):
        topics = (settings.warnings, settings.violations, settings.outcomes, settings.dlq)
        self.readers = [TopicReader(settings.kafka, topic) for topic in topics]

    def answer(self) -> dict[str, Any]:
        for reader in self.readers:
            reader.poll(0.2)
        warnings, violations, outcomes, dlq = (r.messages for r in self.readers)
        unique = {}  # at-least-once: a reject said again after a crash has the same origin
        for message in dlq:
            h = dict(message.headers())
            unique[(h["topic"], h["partition"], h["offset"])] = h["reason"].decode()
        return {
            "warnings": final(last_by_key(warnings)),
            "violations": active(last_by_key(violations)),
            "outcomes": last_by_key(outcomes),
            "rejects": Counter(unique.values()),
        }

    def close(self) -> None:
        for reader in self.readers:
            reader.close()


def assert_reaches(outputs: LiveOutputs, expected: dict[str, Any], worker: WorkerProcess) -> None:
    wait_for(lambda: outputs.answer() == expected, 120, step=0.5)
    got = outputs.answer()
    assert worker.alive(), worker.tail()
    warnings, want = got["warnings"], expected["warnings"]
    differ = {
        wid: (want.get(wid), warnings.get(wid))
        for wid in want.keys() | warnings.keys()
        if want.get(wid) != warnings.get(wid)
    }
    assert differ == {}, worker.tail()
    for part in ("violations", "outcomes", "rejects"):
        assert got[part] == expected[part], part

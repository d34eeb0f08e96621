"""At-risk warnings (SPEC 4.1) from the live worker on the real broker: over the v2
conformance stream, with its business calendars (PROMISE_TRACKER_CALENDARS) and warn-at 0.75,
the last warning per id on promises.warnings is the replay's, also across SIGKILLs; active
warnings page the real Alertmanager as PromiseAtRisk, routed to chat; and a calendars file the
worker cannot use stops it at start with one line."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from tests.alertmanager import Alertmanager
from tests.live import (
    LiveOutputs,
    WorkerProcess,
    active,
    assert_reaches,
    fresh_settings,
    replay_answer,
    sentinels,
    wait_for,
)
from tests.streams import QUIET, send
from tests.support import CASES

V2 = CASES / "v2"
STREAM = V2 / "rules-v2.jsonl"
CALENDARS = V2 / "calendars.toml"
WARN_AT = "0.75"
PARTITIONS = 4
# The stream's last event (the promise "clock") sets the replay's final watermark W
W = "2026-11-04T15:30:00Z"


def v2_stream(tmp_path: Path) -> Path:
    """rules-v2.jsonl, then the sentinels that move each live partition's watermark to W."""
    path = tmp_path / "rules-v2-live.jsonl"
    lines = STREAM.read_bytes().splitlines()
    path.write_bytes(b"\n".join([*lines, *sentinels(W, PARTITIONS)]) + b"\n")
    return path


def settings_for(kafka: str, **overrides: Any) -> Settings:
    """The replay's watermark rules, live: no lateness, and no wall clock (the stream is in
    the past: a quiet partition following the clock would move past W and decide more)."""
    settings = fresh_settings(
        kafka,
        partitions=PARTITIONS,
        lateness=0.0,
        quiet=QUIET,
        calendars=str(CALENDARS),
        warn_at=WARN_AT,
        **overrides,
    )
    ensure_topics(settings)
    return settings


def replay(stream: Path, tmp_path: Path) -> dict[str, Any]:
    """``promise-tracker replay`` of the same file with the same options."""
    return replay_answer(stream, tmp_path, "--calendars", str(CALENDARS), "--warn-at", WARN_AT)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    am = Alertmanager(tmp_path / "alertmanager")
    yield am
    am.stop()


def at_risk_alerts(am: Alertmanager) -> dict[str, dict]:
    """The PromiseAtRisk alerts it holds firing, by warning id."""
    return am.firing("PromiseAtRisk")


def test_live_warnings_are_the_replays_and_the_active_ones_page_to_chat(
    kafka, tmp_path, alertmanager
):
    stream = v2_stream(tmp_path)
    expected = replay(stream, tmp_path)
    states = Counter(w["state"] for w in expected["warnings"].values())
    assert states == {"resolved": 12, "active": 2}, states  # the conformance cases' answer
    alertmanager.start()
    settings = settings_for(kafka, alertmanager_url=alertmanager.url)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    outputs = LiveOutputs(settings)
    try:
        send(stream, settings)
        assert_reaches(outputs, expected, worker)

        warned = active(expected["warnings"])
        assert wait_for(lambda: set(at_risk_alerts(alertmanager)) == set(warned), 20), worker.tail()
        for wid, page in at_risk_alerts(alertmanager).items():
            warning = warned[wid]
            assert page["labels"] == {
                "alertname": "PromiseAtRisk",
                "service": warning["service"],
                "channel": warning["channel"],
                "kind": warning["kind"],
                "label": "0.75",
                "severity": "warning",
                "warning_id": wid,
            }
            assert page["receivers"] == [{"name": "chat"}]  # never the pager
            assert page["annotations"]["promise_id"] == warning["promise_id"]
        by_promise = {
            page["annotations"]["promise_id"]: page["annotations"]
            for page in at_risk_alerts(alertmanager).values()
        }
        assert by_promise["eu-warn-active"]["time_left"] == "2 hours"
        assert by_promise["due-warn-active"]["time_left"] == "1 hour 15 minutes"
        assert by_promise["due-warn-active"]["due_at"] == "2026-11-04T16:30:00Z"
    finally:
        outputs.close()
        worker.stop()


def test_a_killed_worker_gives_the_same_warnings(kafka, tmp_path):
    """SIGKILL while the stream arrives in parts (joining, restoring, mid-batch, idle);
    after the last restart the warnings are still the replay's."""
    stream = v2_stream(tmp_path)
    expected = replay(stream, tmp_path)
    settings = settings_for(kafka, instance="worker-a")
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    outputs = LiveOutputs(settings)
    chance = random.Random(14)
    try:
        total = len(stream.read_bytes().splitlines())
        parts = 4
        for i in range(parts):
            send(stream, settings, slice(total * i // parts, total * (i + 1) // parts))
            worker.start()
            time.sleep(chance.uniform(0.5, 3.0))
            assert worker.alive(), worker.tail()
            worker.kill()
        worker.start()
        assert_reaches(outputs, expected, worker)
        assert worker.log.read_text().count("entries restored") > PARTITIONS  # restarts restored
    finally:
        outputs.close()
        worker.stop()


def test_a_calendars_file_the_worker_cannot_use_stops_it_at_start(kafka, tmp_path):
    bad = tmp_path / "calendars.toml"
    bad.write_text('[support-eu]\ntimezone = "Europe/Pariss"\nmon = ["09:00-18:00"]\n')
    settings = fresh_settings(kafka, partitions=1, calendars=str(bad))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    assert worker.process is not None
    assert worker.process.wait(60) == 2  # a settings error (README "Exit codes")
    lines = worker.log.read_text().splitlines()[1:]  # after "--- start 1"
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"promise-tracker worker: PROMISE_TRACKER_CALENDARS: {bad}: ")
    assert "[support-eu] timezone" in lines[0]
    # it stopped before touching Kafka: none of its topics was created
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=30).topics
    assert settings.issued not in topics and settings.warnings not in topics

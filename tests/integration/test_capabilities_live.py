"""Declared capabilities through the live worker on a real broker (issue 16): the card that
contradicts the shop is flagged when it is issued, weeks before 11/01; one portal outage
breaks every channel that depends on it, naming the root; a worker killed and restarted
reads the capabilities again and resolves the contradiction when the shop is redeclared."""

from __future__ import annotations

from typing import Any

import orjson

from promise_tracker.emit import Emitter
from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from promise_tracker.streams.risk import warning_id
from tests.live import TopicReader, WorkerProcess, fresh_settings, last_by_key, wait_for
from tests.streams import QUIET
from tests.unit.test_capabilities import (
    CARD,
    CLOSES_EARLY,
    DEPENDS,
    FIXED,
    LABEL,
    LETTER,
    PORTAL,
    status,
)

# the card's partition: a later event of its own moves that partition's watermark past the
# redeclaration (hold_time is nothing to a deadline promise)
LATER_FOR_CARD = {
    "specversion": "1.0",
    "type": "delivery.observed",
    "source": "prestige/phone",
    "id": "card-clock",
    "time": "2013-10-25T00:00:00-04:00",
    "data": {"promise_id": "card", "kind": "hold_time", "value": {"seconds": 1}},
}


def send(settings: Settings, events: list[dict]) -> None:
    with Emitter(settings) as emitter:
        for event in events:
            emitter.send_event(orjson.dumps(event))


def outputs(settings: Settings) -> tuple[TopicReader, TopicReader]:
    return TopicReader(settings.kafka, settings.warnings), TopicReader(
        settings.kafka, settings.violations
    )


def last(reader: TopicReader) -> dict[str, Any]:
    reader.poll(0.3)
    return last_by_key(reader.messages)


def test_capabilities_through_the_live_worker_and_a_restart(kafka, tmp_path):
    settings = fresh_settings(kafka, partitions=2, lateness=0.0, quiet=QUIET)
    ensure_topics(settings)
    down = status("portal-down", "2013-10-02T08:00:00-04:00", up=False)
    send(settings, [CLOSES_EARLY, DEPENDS])  # declared before the worker starts
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    warnings, violations = outputs(settings)
    contradiction = warning_id("card", LABEL)
    try:
        send(settings, [CARD, LETTER, down])

        def flagged() -> bool:
            w = last(warnings).get(contradiction)
            return w is not None and w["state"] == "active"

        assert wait_for(flagged, 60), worker.tail()
        card = last(warnings)[contradiction]
        assert card["warn_at"] == 1381154400.0  # the card's issue time: 2013-10-07 10:00 EDT
        assert (
            "closes yearbook selection at 2013-10-31 23:59 -0400 (24 h earlier)" in (card["detail"])
        )

        def three_channels() -> bool:
            broken = [v for v in last(violations).values() if v["promise_id"] == "letter"]
            return len(broken) == 3 and all(v["state"] == "active" for v in broken)

        assert wait_for(three_channels, 60), worker.tail()
        observed = sorted(
            v["observed"] for v in last(violations).values() if v["promise_id"] == "letter"
        )
        assert all(PORTAL in text for text in observed)

        worker.kill()  # SIGKILL: the declarations are not in its changelog
        send(settings, [FIXED, LATER_FOR_CARD])  # the shop now closes on 11/01
        worker.start()

        def resolved() -> bool:
            w = last(warnings).get(contradiction)
            return w is not None and (w["state"], w["outcome"]) == ("resolved", None)

        assert wait_for(resolved, 60), worker.tail()
        assert worker.alive(), worker.tail()
        assert "capability declarations read" in worker.log.read_text()
    finally:
        warnings.close()
        violations.close()
        worker.stop()

"""Pages through the real Alertmanager (deploy/alertmanager/alertmanager.sh) from a real worker
on the real broker: labels and annotations as documented, a retraction resolves its alert, and
an outage of Alertmanager neither stops the worker nor loses the alerts."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from promise_tracker.emit import Emitter
from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from tests.alertmanager import Alertmanager
from tests.live import TopicReader, WorkerProcess, fresh_settings, last_by_key, wait_for


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    am = Alertmanager(tmp_path / "alertmanager")
    yield am
    am.stop()


def stamp(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def parse(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def started(settings: Settings, tmp_path: Path) -> WorkerProcess:
    """A worker that has joined its group (one promise in, its outcome out)."""
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    outcomes = TopicReader(settings.kafka, settings.outcomes)
    try:
        with Emitter(settings) as emit:
            emit.issue_promise(
                id="warm-up",
                source="test/paging",
                kind="max_wait",
                channel="web",
                terms={"max_seconds": 60},
            )
        assert wait_for(lambda: outcomes.poll() or outcomes.messages, 60), worker.tail()
    finally:
        outcomes.close()
    return worker


def broken_call(emit: Emitter, pid: str, severity: str | None) -> None:
    """A call held 1200 s against a promise of at most 120 s: broken at once."""
    now = time.time()
    emit.issue_promise(
        id=pid,
        source="bank/contact-center",
        kind="max_wait",
        channel="phone",
        terms={"max_seconds": 120},
        text="Your call will be answered in less than two minutes.",
        subject="customer/4410-0917",
        time=stamp(now - 1300),
        labels={"team": "cards", **({"severity": severity} if severity else {})},
    )
    emit.observe_delivery(
        promise_id=pid,
        source="bank/telephony",
        kind="hold_time",
        value={"seconds": 1200},
        time=stamp(now - 100),
    )


def test_violations_page_with_their_labels_and_a_retraction_resolves_its_alert(
    kafka, tmp_path, alertmanager
):
    alertmanager.start()
    settings = fresh_settings(
        kafka,
        partitions=2,
        lateness=0.5,
        tick_interval=0.25,
        alertmanager_url=alertmanager.url,
        grafana_url="http://grafana.test:3000",
    )
    worker = started(settings, tmp_path)
    try:
        due = time.time() + 2
        with Emitter(settings) as emit:
            broken_call(emit, "call-1", severity="page")
            emit.issue_promise(  # nothing delivered by then: not_delivered, and no severity
                id="parcel-1",
                source="shop/shipping",
                kind="deliver_by",
                channel="email",
                terms={"due_at": stamp(due)},
                subject="customer/17",
            )
        assert wait_for(lambda: len(alertmanager.alerts()) == 2, 20), worker.tail()
        alerts = {a["labels"]["reason"]: a for a in alertmanager.alerts().values()}
        call, parcel = alerts["wait_exceeded"], alerts["not_delivered"]
        assert call["labels"] == {
            "alertname": "PromiseBroken",
            "service": "bank/contact-center",
            "channel": "phone",
            "kind": "max_wait",
            "reason": "wait_exceeded",
            "severity": "page",  # from the promise's labels
            "violation_id": call["labels"]["violation_id"],
        }
        assert call["annotations"]["summary"] == (
            "Your call will be answered in less than two minutes."
        )
        assert call["annotations"]["excess"] == "1080 seconds"
        assert call["annotations"]["promise_id"] == "call-1"
        assert call["receivers"] == [{"name": "pager"}]  # routed by severity
        assert call["generatorURL"].startswith("http://grafana.test:3000/d/promise-tracker-oncall")
        assert parcel["labels"]["severity"] == "ticket"  # the default
        assert parcel["receivers"] == [{"name": "ticket"}]
        assert "customer/" not in orjson.dumps(alertmanager.alerts()).decode()  # no subject
        # firing with a lease of four re-sends (60 s each by default), not for ever
        assert 200 < parse(parcel["endsAt"]) - time.time() <= 240

        with Emitter(settings) as emit:  # late, but delivered in time: the violation goes
            emit.observe_delivery(
                promise_id="parcel-1", source="shop/carrier", kind="delivered", time=stamp(due - 1)
            )
        parcel_id = parcel["labels"]["violation_id"]
        # resolved at once (Alertmanager lists only firing alerts), not lapsed minutes later
        assert wait_for(lambda: parcel_id not in alertmanager.alerts(), 15), worker.tail()
        assert call["labels"]["violation_id"] in alertmanager.alerts()
        assert worker.alive(), worker.tail()
    finally:
        worker.stop()


def test_an_alertmanager_outage_does_not_stop_the_worker_nor_lose_the_alerts(
    kafka, tmp_path, alertmanager
):
    settings = fresh_settings(
        kafka,
        partitions=2,
        alertmanager_url=alertmanager.url,  # not started yet
        alert_resend=1.0,
        alert_queue_max=1,  # the posts overflow: the firing set is what carries them
    )
    worker = started(settings, tmp_path)
    violations = TopicReader(settings.kafka, settings.violations)
    try:
        calls = [f"call-{n}" for n in range(5)]
        with Emitter(settings) as emit:
            for n, pid in enumerate(calls):
                broken_call(emit, pid, severity="page" if n % 2 else None)
        # the pipeline goes on without Alertmanager
        assert wait_for(lambda: violations.poll() or len(violations.messages) >= 5, 20)
        ids = set(last_by_key(violations.messages))
        time.sleep(2)  # a few failed posts and re-sends
        assert worker.alive(), worker.tail()
        assert "Alertmanager at" in worker.log.read_text()  # the outage is logged

        alertmanager.start()
        assert wait_for(lambda: set(alertmanager.alerts()) == ids, 15), worker.tail()
        severities = sorted(a["labels"]["severity"] for a in alertmanager.alerts().values())
        assert severities == ["page", "page", "ticket", "ticket", "ticket"]
    finally:
        violations.close()
        worker.stop()

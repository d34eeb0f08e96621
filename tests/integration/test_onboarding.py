"""Onboarding a service (issue 14): it registers, in one burst, the promises it made over the
last 60 days that are still running. SPEC v2 section 1.3 accepts a promise however long ago it
was made while its close time is ahead (too_late counts from when a promise settles), so the
live worker takes all 10,000 of them, and their later deliveries (or, for a deadline, the
time passing its close) decide them: kept."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter

from promise_tracker.emit import Emitter
from promise_tracker.runtime.topics import ensure_topics
from tests.live import TopicReader, WorkerProcess, fresh_settings, last_by_key, wait_for

PROMISES = 10_000
DAY = 86_400.0


def stamp(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def onboarding(now: float, seed: int = 14) -> list[dict]:
    """Promises made over the last 60 days (in no order), every one still running now: the
    service's backlog of open promises, of four kinds whose close times are all ahead."""
    chance = random.Random(seed)
    promises = []
    for n in range(PROMISES):
        made = now - chance.uniform(60 * DAY, 60)
        pid = f"onboard-{n}"
        shape = n % 10
        if shape < 5:  # a parcel due on a date to come
            kind, terms, expires = (
                "deliver_by",
                {"due_at": stamp(now + chance.uniform(1, 30) * DAY)},
                None,
            )
        elif shape < 7:  # a reply within so long, counted from when it was promised
            within = now - made + chance.uniform(1, 30) * DAY
            kind, terms, expires = "deliver_by", {"within_seconds": round(within)}, None
        elif shape < 9:  # a callback within a wait, the offer valid a while yet
            kind, terms = "max_wait", {"max_seconds": 600}
            expires = stamp(now + chance.uniform(1, 30) * DAY)
        else:  # a window still open for a minute more: the clock closes it, kept
            kind, terms, expires = "deadline", {"open_until": stamp(now + 60)}, None
        promises.append(
            {"id": pid, "kind": kind, "terms": terms, "time": stamp(made), "expires_at": expires}
        )
    chance.shuffle(promises)
    return promises


def test_ten_thousand_promises_of_the_last_60_days_are_accepted_then_kept(kafka, tmp_path):
    settings = fresh_settings(kafka, partitions=4)  # the defaults: lateness 5 s, retention 7 d
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    outcomes = TopicReader(settings.kafka, settings.outcomes)
    dlq = TopicReader(settings.kafka, settings.dlq)
    warnings = TopicReader(settings.kafka, settings.warnings)

    def statuses() -> Counter:
        outcomes.poll()
        return Counter(o["status"] for o in last_by_key(outcomes.messages).values())

    def by_kind() -> Counter:
        outcomes.poll()
        return Counter((o["kind"], o["status"]) for o in last_by_key(outcomes.messages).values())

    try:
        now = time.time()
        promises = onboarding(now)
        with Emitter(settings) as emit:  # one burst
            for p in promises:
                emit.issue_promise(
                    source="onboarding/support",
                    channel="email",
                    subject="customer/1",
                    **{k: v for k, v in p.items() if v is not None},
                )
        # every one accepted, and open (a deadline may be kept already: its minute may be up)
        assert wait_for(lambda: statuses().total() == PROMISES, 120), (statuses(), worker.tail())
        dlq.poll(2.0)
        assert dlq.messages == [], Counter(dict(m.headers())["reason"] for m in dlq.messages)
        decided = {k: n for k, n in by_kind().items() if k[1] != "open"}
        assert set(decided) <= {("deadline", "kept")}, decided

        with Emitter(settings) as emit:  # then what decides them, as it happens
            for p in promises:
                if p["kind"] == "deliver_by":
                    emit.observe_delivery(
                        promise_id=p["id"], source="onboarding/mail", kind="delivered"
                    )
                elif p["kind"] == "max_wait":
                    emit.observe_delivery(
                        promise_id=p["id"],
                        source="onboarding/phone",
                        kind="hold_time",
                        value={"seconds": 90},
                    )
        assert wait_for(lambda: statuses() == {"kept": PROMISES}, 180), (statuses(), worker.tail())
        dlq.poll(1.0)
        assert dlq.messages == []  # nothing too_late, nothing else rejected
        assert worker.alive(), worker.tail()
        # those that were at risk when they arrived (three quarters of their time gone)
        # warned, and their warnings ended resolved: kept
        warnings.poll(1.0)
        final = last_by_key(warnings.messages).values()
        assert final, "no onboarded promise was at risk"
        assert {(w["state"], w["outcome"]) for w in final} == {("resolved", "kept")}
        print(f"{PROMISES} onboarded promises kept; {len(final)} warned on the way")
    finally:
        for reader in (outcomes, dlq, warnings):
            reader.close()
        worker.stop()

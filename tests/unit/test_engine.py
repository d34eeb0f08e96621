"""The engine's bookkeeping: duplicates, orphans, lateness, retention, the future."""

from __future__ import annotations

from promise_tracker.streams.engine import DAY, EngineConfig
from tests.support import line, observe, promise, run, ts, unix


def deliver_by(pid: str = "p", due_h: float = 48) -> dict:
    return promise(pid, "deliver_by", {"due_at": ts(due_h)})


def reasons(r) -> list[str]:
    return [str(x.reason) for x in r.out.rejects]


def test_exact_duplicates_are_counted_not_rejected():
    events = [deliver_by(), observe("d", "p", "delivered", ts(1))]
    r = run(events + events)
    assert r.engine.stats.duplicates == 2 and r.out.rejects == []


def test_same_content_in_another_key_order_is_an_exact_duplicate():
    event = observe("d", "p", "delivered", ts(1))
    reordered = dict(reversed(list(event.items())))
    r = run([deliver_by(), event, reordered])
    assert r.engine.stats.duplicates == 1


def test_conflicting_duplicate_is_rejected_and_the_first_stays():
    r = run(
        [
            deliver_by(),
            observe("d", "p", "delivered", ts(50)),
            observe("d", "p", "delivered", ts(10)),
        ]
    )
    assert reasons(r) == ["conflicting_duplicate"]
    assert r.out.reasons() == {"p": ["delivered_late"]}
    assert r.out.rejects[0].raw == line(observe("d", "p", "delivered", ts(10)))


def test_conflicting_promise_is_rejected():
    other = promise("p", "deliver_by", {"due_at": ts(1)})
    r = run([deliver_by(), other])
    assert reasons(r) == ["conflicting_duplicate"] and r.engine.promises["p"].close_time == unix(48)


def test_orphan_waits_for_its_promise():
    r = run([observe("d", "p", "delivered", ts(1)), deliver_by()], watermark=unix(100))
    assert r.status("p") == "kept" and r.out.rejects == []


def test_orphan_rejected_once_the_watermark_moved_the_ttl_past_its_arrival():
    r = run([observe("d", "nobody", "delivered", ts(1))], watermark=unix(1) + DAY - 1)
    assert r.out.rejects == []
    r.engine.advance(unix(1) + DAY)
    assert reasons(r) == ["unknown_promise"]
    assert "data.promise_id 'nobody'" in r.out.rejects[0].message


def test_orphans_left_at_end_of_input_are_rejected():
    r = run([observe("d", "nobody", "delivered", ts(1))])
    r.engine.finish()
    assert reasons(r) == ["unknown_promise"]


def test_orphan_flood_is_capped():
    flood = [observe(f"o{i}", f"ghost{i}", "delivered", ts(1)) for i in range(50)]
    r = run(flood, config=EngineConfig(max_orphans=10))
    assert reasons(r) == ["unknown_promise"] * 40
    assert len(r.engine._orphan_ids) == 10


def test_too_late_beyond_retention_only_when_its_promise_is_not_held():
    """SPEC v2 1.3: an old observation of a promise still held applies; one whose promise
    is not held and is older than the watermark minus the retention is too late."""
    config = EngineConfig(retention=3600)
    r = run(
        [
            deliver_by(due_h=200),
            observe("clock", "p", "page_reached", ts(10), page="x"),
            observe("old", "p", "delivered", ts(8.5)),
            observe("stray", "gone", "delivered", ts(8.5)),
        ],
        config=config,
    )
    assert reasons(r) == ["too_late"]
    assert r.out.rejects[0].event_id == "stray"
    assert r.engine.promises["p"].status == "kept"


def test_late_events_are_applied_and_counted():
    r = run(
        [
            deliver_by(),
            observe("x", "p", "page_reached", ts(60), page="a"),
            observe("d", "p", "delivered", ts(47)),
        ]
    )
    assert r.engine.stats.late == 1 and r.status("p") == "kept"


def test_lateness_holds_absence_rules_back():
    events = [deliver_by(), observe("x", "other", "delivered", ts(48, 5))]
    assert run(events, lateness=10).status("p") == "open"
    assert run(events, lateness=5).status("p") == "broken"


def test_from_future_only_when_a_clock_is_given():
    event = deliver_by()
    assert reasons(run([event], now=unix(0) - 301)) == ["from_future"]
    assert reasons(run([event], now=unix(0) - 300)) == []
    assert reasons(run([event])) == []


def test_closed_promises_are_evicted_after_retention_and_later_events_are_too_late():
    config = EngineConfig(retention=3600)
    r = run(
        [
            deliver_by(due_h=1),
            observe("d", "p", "delivered", ts(0.5)),
            observe("clock", "z", "delivered", ts(2.5)),
        ],
        config=config,
    )
    assert r.out.evicted_ids == ["p"] and "p" not in r.engine.promises
    r.engine.process(*_parsed(observe("d2", "p", "delivered", ts(2))))
    assert reasons(r)[-1] == "too_late"


def test_open_promises_are_never_evicted():
    config = EngineConfig(retention=60)
    r = run([promise("w", "max_wait", {"max_seconds": 5})], config=config, watermark=unix(1000))
    assert r.out.evicted_ids == [] and r.status("w") == "open"


def test_outcome_changes_are_reported_once_per_change():
    r = run(
        [
            deliver_by(),
            observe("x", "other", "delivered", ts(50)),
            observe("d", "p", "delivered", ts(47)),
        ]
    )
    assert r.out.outcome_changes == [("p", "broken"), ("p", "kept")]


def _parsed(event: dict):
    from promise_tracker.schemas import parse

    raw = line(event)
    return parse(raw), raw


def test_state_stays_bounded_on_an_endless_stream():
    """Closed promises, their observation ids and their tombstones are all forgotten in time."""
    config = EngineConfig(retention=DAY)
    events = []
    for hour in range(24 * 30):  # 30 days, one promise an hour, each delivered on time
        pid = f"p{hour}"
        events.append(promise(pid, "deliver_by", {"due_at": ts(hour + 5)}, at=ts(hour)))
        events.append(observe(f"d{hour}", pid, "delivered", ts(hour + 1)))
    r = run(events, config=config)
    sizes = (len(r.engine.promises), len(r.engine._observations), len(r.engine._tombstones))
    assert all(size <= 24 * 2 + 6 for size in sizes), sizes
    assert len(r.out.evicted_ids) > 24 * 25


def test_regression_instants_outside_years_1_to_9999_do_not_crash_the_wording():
    """Review finding: '0001-01-01T00:30:00+01:00' is valid input but year 0 in UTC."""
    r = run(
        [
            promise("old", "deliver_by", {"due_at": "0001-01-01T00:30:00+01:00"}),
            promise("far", "deadline", {"open_until": "9999-12-31T23:30:00-01:00"}),
            observe("e", "far", "deadline_enforced", ts(1)),
        ]
    )
    assert r.out.reasons() == {"old": ["not_delivered"], "far": ["enforced_early"]}
    assert all(v.observed for v in r.out.emissions)


def test_regression_orphan_ttl_runs_from_the_watermark_that_counts_the_orphan():
    """Review finding: the TTL started before the orphan's own time moved the watermark."""
    r = run(
        [
            promise("early", "deliver_by", {"due_at": ts(100)}, at=ts(0)),
            observe("d", "p", "delivered", ts(12)),
            observe("x", "early", "page_reached", ts(24), page="a"),
            deliver_by(due_h=48),
        ]
    )
    assert r.out.rejects == [] and r.status("p") == "kept"


def test_many_observations_of_one_promise_stay_linear():
    """A hostile flood at one promise (late page views before its goal) must not go quadratic."""
    import time

    goal = observe("goal", "p", "page_reached", ts(10), page="pose")
    views = [
        observe(f"v{i}", "p", "page_reached", ts(1, i * 0.01), page="x") for i in range(20_000)
    ]
    started = time.perf_counter()
    r = run([promise("p", "max_steps", {"max_steps": 3, "goal": "pose"}), goal, *views])
    assert time.perf_counter() - started < 20  # quadratic counting took minutes
    (v,) = r.out.active().values()
    assert v.excess == 20_001 - 3

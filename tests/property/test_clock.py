"""The clock of a within_seconds promise (SPEC v2 3), as properties of the whole engine."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.property.strategies import CALENDARS, CONFIG, FAST, HOURS
from tests.support import observe, promise, run, ts

WITHIN = st.sampled_from([600, 3600, 4 * 3600, 9 * 3600, 30 * 3600])


def due(events: list[dict]) -> float | None:
    """D of promise p after the events (None: infinite)."""
    r = run(events, config=CONFIG)
    return r.engine.promises["p"].close_time


@st.composite
def marks(draw) -> list[dict]:
    """Pauses and resumes at random times (some before the promise: they do not count)."""
    return [
        observe(f"m{i}", "p", draw(st.sampled_from(["paused", "resumed"])), ts(draw(HOURS)))
        for i in range(draw(st.integers(0, 5)))
    ]


@FAST
@given(st.data())
def test_d_never_decreases_when_a_pause_is_added(data):
    terms = {"within_seconds": data.draw(WITHIN)}
    calendar = data.draw(CALENDARS)
    if calendar:
        terms["calendar"] = calendar
    issued = promise("p", "deliver_by", terms, at=ts(data.draw(HOURS)))
    before = data.draw(marks())
    pause = observe("extra", "p", "paused", ts(data.draw(HOURS)))
    d_before, d_after = due([issued, *before]), due([issued, *before, pause])
    inf = float("inf")
    assert (inf if d_after is None else d_after) >= (inf if d_before is None else d_before)


@FAST
@given(st.data())
def test_round_the_clock_equals_an_absolute_due_time(data):
    """No calendar and no pause: within_seconds is due_at = t0 + within_seconds, with the
    same violations, outcomes and warnings."""
    at, within = data.draw(HOURS), data.draw(WITHIN)
    later = [
        observe(f"o{i}", "p", data.draw(st.sampled_from(["delivered", "cancelled"])), ts(h))
        for i, h in enumerate(data.draw(st.lists(HOURS, max_size=3)))
    ]
    clock = ts(data.draw(st.floats(0, 60).map(lambda h: round(h, 2))))
    tick = promise("clock", "max_wait", {"max_seconds": 60}, at=clock)  # moves W
    relative = run(
        [promise("p", "deliver_by", {"within_seconds": within}, at=ts(at)), *later, tick],
        config=CONFIG,
    )
    due_at = ts(at, seconds=within)
    absolute = run(
        [promise("p", "deliver_by", {"due_at": due_at}, at=ts(at)), *later, tick], config=CONFIG
    )
    a, b = relative.engine.promises["p"], absolute.engine.promises["p"]
    assert a.close_time == b.close_time
    assert (a.status, a.closed_at) == (b.status, b.closed_at)

    def said(r):
        violations = {(v.reason, v.occurred_at, v.excess, v.state) for v in r.out.emissions}
        warnings = {(w.label, w.warn_at, w.state, w.outcome, w.due_at) for w in r.out.warnings}
        return violations, warnings

    assert said(relative) == said(absolute)

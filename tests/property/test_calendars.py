"""SPEC 2.1 and 3: what must hold of a business clock whatever the calendar, start and amount.

Random calendars use zones with odd clock changes (a gap at midnight in Santiago, half-hour
changes on Lord Howe, Ramadan in Casablanca, +12:45 in Chatham) and boundaries inside them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from promise_tracker.calendars import ALWAYS, Calendar, load_calendars

CASES = Path(__file__).resolve().parents[1] / "conformance" / "cases" / "v2"
CONFORMANCE = load_calendars(CASES / "calendars.toml")
CHECKS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Africa/Casablanca",
    "Pacific/Chatham",
    "Asia/Kolkata",
]
# minutes after local midnight, many of them near the usual clock-change hours
MARKS = [0, 15, 30, 60, 90, 105, 120, 135, 150, 165, 180, 210, 540, 720, 780, 1080, 1410, 1440]
YEAR_2026 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
instants = st.floats(min_value=YEAR_2026, max_value=YEAR_2026 + 365 * 86400)


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    if draw(st.booleans()):
        return draw(st.sampled_from(list(CONFORMANCE.values())))
    week = {}
    for weekday in range(7):
        marks = sorted(draw(st.sets(st.sampled_from(MARKS), max_size=6)))
        week[weekday] = list(zip(marks[::2], marks[1::2], strict=False))
    assume(any(week.values()))
    holidays = draw(st.frozensets(st.dates(date(2025, 12, 1), date(2027, 3, 1)), max_size=30))
    return Calendar(
        "random",
        draw(st.sampled_from(ZONES)),
        week,
        (lambda year: {d for d in holidays if d.year == year}) if holidays else None,
    )


def amounts(calendar: Calendar) -> st.SearchStrategy[float]:
    """Up to six weeks of the calendar's open time, so that no walk takes years."""
    weekly = sum(end - start for day in calendar.week for start, end in day) * 60
    return st.floats(min_value=0.001, max_value=6 * weekly)


def reference_advance(calendar: Calendar, start: float, seconds: float) -> float | None:
    """Day by day, without the clock's slabs and chunks: the union of the mapped local days'
    intervals walked in order; None when the answer is beyond the 80 days looked at."""
    first = datetime.fromtimestamp(start, UTC).date() - timedelta(days=2)
    pieces = sorted(i for n in range(80) for i in calendar.day_intervals(first + timedelta(n)))
    joined: list[list[int]] = []
    for a, b in pieces:
        if joined and a <= joined[-1][1]:
            joined[-1][1] = max(joined[-1][1], b)
        else:
            joined.append([a, b])
    left = seconds
    for a, b in joined:
        if b <= start:
            continue
        begin = max(a, start)
        if b - begin >= left:
            return begin + left
        left -= b - begin
    return None


@CHECKS
@given(instants, st.floats(min_value=0, max_value=1e9), st.floats(min_value=0, max_value=1e9))
def test_the_24_7_clock_is_exactly_t0_plus_within_seconds(t0, seconds, span):
    assert ALWAYS.advance(t0, seconds) == t0 + seconds
    assert ALWAYS.open_seconds(t0, t0 + span) == (t0 + span) - t0 or span == 0


@CHECKS
@given(st.data())
def test_open_seconds_undoes_advance_and_advance_gives_the_first_instant(data):
    calendar = data.draw(calendars())
    start, seconds = data.draw(instants), data.draw(amounts(calendar))
    due = calendar.advance(start, seconds)
    assert due >= start
    assert abs(calendar.open_seconds(start, due) - seconds) <= 1e-6
    assert calendar.open_seconds(start, due - 0.001) < seconds - 0.0005


@CHECKS
@given(st.data())
def test_advance_is_monotone_in_the_amount(data):
    calendar = data.draw(calendars())
    start = data.draw(instants)
    small, large = sorted((data.draw(amounts(calendar)), data.draw(amounts(calendar))))
    assert calendar.advance(start, small) <= calendar.advance(start, large)


@CHECKS
@given(st.data())
def test_advance_is_monotone_in_the_start(data):
    calendar = data.draw(calendars())
    early, late = sorted((data.draw(instants), data.draw(instants)))
    seconds = data.draw(amounts(calendar))
    assert calendar.advance(early, seconds) <= calendar.advance(late, seconds)


@CHECKS
@given(st.data())
def test_open_seconds_adds_up_over_consecutive_spans(data):
    calendar = data.draw(calendars())
    a, b, c = sorted(data.draw(instants) for _ in range(3))
    whole = calendar.open_seconds(a, c)
    assert abs(whole - calendar.open_seconds(a, b) - calendar.open_seconds(b, c)) <= 1e-6


@CHECKS
@given(st.data())
def test_advance_equals_a_day_by_day_walk(data):
    calendar = data.draw(calendars())
    start, seconds = data.draw(instants), data.draw(amounts(calendar))
    expected = reference_advance(calendar, start, seconds)
    assume(expected is not None)
    assert abs(calendar.advance(start, seconds) - expected) <= 1e-6

#!/usr/bin/env python3
"""The business clock, measured against the 24/7 clock in the same run.

    python3 bench/calendars.py [--calls 20000] [--seed 1]

``Calendar.advance`` for a five-business-day promise (144,000 s = 5 x 8 h) on ``support-eu``
of the v2 conformance calendars (Europe/Paris, two intervals a weekday, a holiday list and the
French public holidays), from ``--calls`` start instants spread at random over 2026:

- warm: the clock's day, slab and week caches already hold 2026 (a running engine's steady
  state: promises arrive in time order, so their days are mostly known); best of 5 passes;
- cold: the caches emptied before every call (the closed dates of the year stay known), only
  the call timed: what a promise in a stretch of days nobody asked about yet costs;
- first call: a freshly loaded calendar, which also expands the year's holidays (once a year
  per calendar);
- the 24/7 clock (``ALWAYS``, a promise that names no calendar) on the same starts: the floor.

Every answer is checked (``open_seconds(start, D) == 144000`` and D's local time is within
business hours); a wrong answer exits 1. A benchmark, not a test: no number is too slow.
Figures go to stdout and bench/out/calendar.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from promise_tracker.calendars import ALWAYS, Calendar, load_calendars  # noqa: E402

CALENDARS = ROOT / "tests" / "conformance" / "cases" / "v2" / "calendars.toml"
FIVE_DAYS = 5 * 8 * 3600
OUT = ROOT / "bench" / "out"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    year = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    rng = random.Random(args.seed)
    starts = [year + rng.random() * 365 * 86400 for _ in range(args.calls)]

    started = time.perf_counter()
    eu = load_calendars(CALENDARS)["support-eu"]
    loaded = time.perf_counter() - started
    first = _timed_once(eu, starts[0])
    for start in starts:  # fill the caches for 2026
        eu.advance(start, FIVE_DAYS)
    rows = [
        ("support-eu, warm", _best_pass(eu.advance, starts)),
        ("support-eu, cold", _cold(eu, starts[: max(1, args.calls // 10)])),
        ("support-eu, first call after loading", first),
        ("24/7 (ALWAYS), baseline", _best_pass(ALWAYS.advance, starts)),
    ]
    wrong = _wrong_answers(eu, starts)
    _print(rows, loaded, args.calls, wrong)
    OUT.mkdir(parents=True, exist_ok=True)
    figures = {
        "calls": args.calls,
        "python": platform.python_version(),
        "load_calendars_s": loaded,
        "us_per_call": {name: us for name, us in rows},
        "wrong_answers": wrong,
    }
    (OUT / "calendar.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return 1 if wrong else 0


def _best_pass(advance: Callable[[float, float], float], starts: list[float]) -> float:
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for start in starts:
            advance(start, FIVE_DAYS)
        best = min(best, time.perf_counter() - began)
    return best / len(starts) * 1e6


def _cold(calendar: Calendar, starts: list[float]) -> float:
    total = 0
    for start in starts:
        calendar.cache_clear()
        began = time.perf_counter_ns()
        calendar.advance(start, FIVE_DAYS)
        total += time.perf_counter_ns() - began
    return total / len(starts) / 1000


def _timed_once(calendar: Calendar, start: float) -> float:
    began = time.perf_counter_ns()
    calendar.advance(start, FIVE_DAYS)
    return (time.perf_counter_ns() - began) / 1000


def _wrong_answers(calendar: Calendar, starts: list[float]) -> int:
    paris, wrong = ZoneInfo("Europe/Paris"), 0
    for start in starts:
        due = calendar.advance(start, FIVE_DAYS)
        local = datetime.fromtimestamp(due, paris)
        minutes = local.hour * 60 + local.minute + local.second / 60
        in_hours = local.weekday() < 5 and (540 < minutes <= 750 or 810 < minutes <= 1080)
        if abs(calendar.open_seconds(start, due) - FIVE_DAYS) > 1e-6 or not in_hours:
            wrong += 1
    return wrong


def _print(rows: list[tuple[str, float]], loaded: float, calls: int, wrong: int) -> None:
    python = platform.python_version()
    print(f"advance(t0, {FIVE_DAYS}) from {calls} starts over 2026, Python {python}")
    print(f"load_calendars(calendars.toml): {loaded * 1000:.1f} ms")
    print(f"{'clock':<40} {'us/call':>9} {'calls/s':>11}")
    for name, us in rows:
        print(f"{name:<40} {us:>9.2f} {1e6 / us:>11,.0f}")
    print(f"wrong answers: {wrong}")


if __name__ == "__main__":
    sys.exit(main())

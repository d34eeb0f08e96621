"""The numbers of "can we keep this?" from one history: pure, no I/O (docs/check.md).

A history is the decided outcomes (kept or broken) of one service, channel and kind over a
window, each reduced to the value its verdict was decided on (streams/records.py):

* ``values``: the measured values, sorted;
* ``open_ended``: for the outcomes where nothing was measured, what their terms allowed,
  sorted. For the kinds whose terms are an upper bound (hold_seconds, steps_to_goal,
  delivery_seconds, early_seconds) nothing measured means it never happened (never
  delivered, goal never reached): no terms keep it. For ``up_seconds`` (channels_available,
  a lower bound) it means no outage during the ``allowed`` seconds: it keeps any terms
  up to that long and says nothing about longer ones (it is not comparable with them).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

QUANTILES = (0.5, 0.9, 0.95, 0.99)
LOWER_BOUND = frozenset({"up_seconds"})  # the terms say "at least", not "at most"


@dataclass(frozen=True)
class History:
    kept: int
    broken: int
    measure: str
    values: list[float]  # sorted
    open_ended: list[float]  # sorted


@dataclass(frozen=True)
class Chance:
    """What the history says of one threshold: ``kept`` of ``comparable`` outcomes."""

    kept: int
    comparable: int

    @property
    def probability(self) -> float | None:
        return self.kept / self.comparable if self.comparable else None


def chance(history: History, threshold: float) -> Chance:
    """How many comparable outcomes' measures satisfy the threshold."""
    values, open_ended = history.values, history.open_ended
    if history.measure in LOWER_BOUND:
        # kept: no outage before ``threshold``; an open-ended outcome counts only if its own
        # window was at least that long
        held = len(open_ended) - bisect.bisect_left(open_ended, threshold)
        kept = len(values) - bisect.bisect_left(values, threshold) + held
        return Chance(kept, len(values) + held)
    return Chance(bisect.bisect_right(values, threshold), len(values) + len(open_ended))


def quantile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least a share q of the values at or below."""
    if not values:
        return None
    rank = max(1, math.ceil(q * len(values) - 1e-9))
    return values[rank - 1]


def quantiles(history: History) -> dict[str, float | None]:
    return {f"{q:g}": quantile(history.values, q) for q in QUANTILES}


def tightest(history: History, confidence: float, min_history: int) -> float | None:
    """The tightest threshold kept with at least ``confidence`` over at least
    ``min_history`` comparable outcomes: the smallest bound (the largest for a lower bound);
    None when no threshold is."""
    if history.measure in LOWER_BOUND:
        for candidate in sorted(set(history.values) | set(history.open_ended), reverse=True):
            found = chance(history, candidate)
            if found.comparable >= min_history and found.probability >= confidence:  # type: ignore[operator]
                return candidate
        return None
    everything = len(history.values) + len(history.open_ended)
    if everything < min_history:
        return None
    rank = max(1, math.ceil(confidence * everything - 1e-9))
    return history.values[rank - 1] if rank <= len(history.values) else None


def round_to_grid(seconds: float, up: bool) -> float:
    """A duration as people would say it: whole seconds under 2 minutes, whole minutes
    under 2 hours, whole hours beyond; rounded up (an upper bound) or down (a lower one)."""
    step = 1 if seconds < 120 else 60 if seconds < 7_200 else 3_600
    turn = math.ceil if up else math.floor
    return float(turn(seconds / step - (1e-9 if up else -1e-9)) * step)


def duration_text(seconds: float) -> str:
    """3 days 4 hours, 90 minutes, 45 seconds: the two largest units."""
    seconds = round(seconds)
    parts = []
    for name, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts[:2]) or "0 seconds"

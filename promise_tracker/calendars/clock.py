"""The clock of a ``within_seconds`` promise (SPEC 2.1, 3): when a business calendar is open.

Pure: no file or network I/O. A calendar is a time zone, the open intervals of each weekday
in local time and a function that says which local dates of a year are closed; the loader
(``load.py``) builds one from the TOML file. Instants are float Unix seconds (UTC).

How local intervals become instants (SPEC 2.1): each local interval of a date that is not
closed is mapped through the zone with ``fold=0`` (a skipped local time takes the offset in
force before the change; a repeated one, its first occurrence), "24:00" being the next local
day's 00:00. A mapped interval whose end is not after its start is empty, and the open time is
the union of the mapped intervals, so intervals that overlap or touch once mapped are one.

Speed: the union is computed once per UTC day ("slab", ``[k * DAY, (k + 1) * DAY)``) and its
open total once per run of seven slabs ("chunk"), both cached, so finding the due time of a
five-business-day promise walks about eight cached slabs and never minutes. The mapped
boundaries are whole seconds (zone offsets are), so the sums are exact until the one
fractional step at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY = 86_400
MINUTES_PER_DAY = 24 * 60
CHUNK_SLABS = 7
# a calendar closed for this many chunks in a row (~10 years) never runs again: D is infinite
MAX_CLOSED_CHUNKS = 522
# the first and last local dates a datetime can map (their neighbours must exist too)
_FIRST_DAY = date.min.toordinal() + 1
_LAST_DAY = date.max.toordinal() - 1
_EPOCH_DAY = date(1970, 1, 1).toordinal()

# minutes after local midnight, start inclusive, end exclusive; the end may be 1440 ("24:00")
LocalInterval = tuple[int, int]
# the local open intervals of each weekday, 0 = Monday ... 6 = Sunday; a missing day is closed
Week = Mapping[int, Sequence[LocalInterval]]
# the closed local dates of a year (holidays), asked once per year and cached
ClosedDays = Callable[[int], Collection[date]]
# one UTC day: its open intervals (sorted, disjoint, not touching, whole seconds) and total
Slab = tuple[tuple[tuple[int, int], ...], int]


class Calendar:
    """When a business clock runs: weekly local open intervals in a zone, minus closed dates.

    ``open_seconds`` and ``advance`` are the two questions the engine asks; they are inverse to
    each other: ``open_seconds(a, advance(a, s)) == s``.
    """

    __slots__ = (
        "name",
        "zone",
        "week",
        "is_always_open",
        "_closed",
        "_closed_in",
        "_local_day",
        "_slab",
        "_chunk_total",
    )

    def __init__(
        self,
        name: str,
        zone: str | tzinfo,
        week: Week,
        closed: ClosedDays | None = None,
        *,
        cache_days: int = 4096,
    ):
        self.name = name
        self.zone: tzinfo = ZoneInfo(zone) if isinstance(zone, str) else zone
        self.week: tuple[tuple[LocalInterval, ...], ...] = tuple(
            _normalised_day(name, weekday, week.get(weekday, ())) for weekday in range(7)
        )
        if not any(self.week):
            raise ValueError(f"calendar {name!r} has no open interval on any day")
        self._closed = closed
        # every local day open from 00:00 to 24:00 and none closed: the union is the whole
        # timeline in any zone, so the answers are exact sums (SPEC: absent calendar is 24/7)
        self.is_always_open = closed is None and all(
            d == ((0, MINUTES_PER_DAY),) for d in self.week
        )
        self._closed_in = lru_cache(maxsize=64)(self._closed_dates)
        self._local_day = lru_cache(maxsize=cache_days)(self._map_local_day)
        self._slab = lru_cache(maxsize=cache_days)(self._compute_slab)
        self._chunk_total = lru_cache(maxsize=cache_days // CHUNK_SLABS)(self._compute_chunk)

    def __repr__(self) -> str:
        return f"Calendar({self.name!r}, {str(self.zone)!r})"

    # the two questions of the engine

    def open_seconds(self, start: float, end: float) -> float:
        """How many seconds of ``[start, end)`` are inside an open interval (0 if end <= start)."""
        if not end > start:
            return 0.0
        if self.is_always_open:
            return end - start
        if math.isinf(end):
            return math.inf
        first, last = _slab_of(start), _slab_of(end)
        if first == last:
            return float(_clipped(self._slab(first)[0], start, end))
        total: float = _clipped(self._slab(first)[0], start, end)
        k = first + 1
        while k < last:
            if k % CHUNK_SLABS == 0 and k + CHUNK_SLABS <= last:
                total += self._chunk_total(k // CHUNK_SLABS)
                k += CHUNK_SLABS
            else:
                total += self._slab(k)[1]
                k += 1
        return float(total + _clipped(self._slab(last)[0], start, end))

    def advance(self, start: float, seconds: float) -> float:
        """The first instant t >= start at which the clock has run ``seconds`` since start.

        When the amount is used up exactly at the end of an open interval, that end is the
        answer (not the start of the next one). ``math.inf`` if the calendar stays closed for
        about ten years in a row (e.g. an ICS rule that closes every open day).
        """
        if not seconds >= 0:
            raise ValueError(f"advance: seconds must be >= 0, not {seconds!r}")
        if seconds == 0:
            return start
        if self.is_always_open or math.isinf(seconds):
            return start + seconds
        remaining: float = seconds
        k = _slab_of(start)
        for open_from, open_until in self._slab(k)[0]:
            if open_until <= start:
                continue
            begin = open_from if open_from > start else start
            if open_until - begin >= remaining:
                return float(begin + remaining)
            remaining -= open_until - begin
        k += 1
        closed_chunks = 0
        while True:
            if k % CHUNK_SLABS == 0:
                chunk = self._chunk_total(k // CHUNK_SLABS)
                while chunk < remaining:
                    closed_chunks = closed_chunks + 1 if chunk == 0 else 0
                    if closed_chunks > MAX_CLOSED_CHUNKS:
                        return math.inf
                    remaining -= chunk
                    k += CHUNK_SLABS
                    chunk = self._chunk_total(k // CHUNK_SLABS)
            pieces, total = self._slab(k)
            if total < remaining:
                remaining -= total
                k += 1
                continue
            for open_from, open_until in pieces:
                if open_until - open_from >= remaining:
                    return float(open_from + remaining)
                remaining -= open_until - open_from

    # what the answers are built from (public for tests and tools)

    def closed_on(self, day: date) -> bool:
        """Whether the local date ``day`` is closed as a whole (a holiday)."""
        return day in self._closed_in(day.year)

    def day_intervals(self, day: date) -> tuple[tuple[int, int], ...]:
        """The open intervals of the local date ``day`` as Unix seconds, as mapped (not yet
        joined with the neighbouring days'); empty on a holiday."""
        return self._local_day(day)

    def cache_clear(self) -> None:
        """Forget the mapped days, slabs and chunks (the closed dates per year are kept)."""
        self._local_day.cache_clear()
        self._slab.cache_clear()
        self._chunk_total.cache_clear()

    # cached steps

    def _closed_dates(self, year: int) -> frozenset[date]:
        return frozenset(self._closed(year)) if self._closed is not None else frozenset()

    def _map_local_day(self, day: date) -> tuple[tuple[int, int], ...]:
        if day in self._closed_in(day.year):
            return ()
        mapped = []
        for start, end in self.week[day.weekday()]:
            open_from = _instant(day, start, self.zone)
            open_until = _instant(day, end, self.zone)
            if open_until > open_from:
                mapped.append((open_from, open_until))
        return tuple(mapped)

    def _compute_slab(self, k: int) -> Slab:
        lo, hi = k * DAY, (k + 1) * DAY
        middle = _EPOCH_DAY + k
        pieces = []
        # a local day maps within one UTC day either side of its own (|offset| < 24 h)
        for ordinal in (middle - 1, middle, middle + 1):
            if _FIRST_DAY <= ordinal <= _LAST_DAY:
                for open_from, open_until in self._local_day(date.fromordinal(ordinal)):
                    open_from, open_until = max(open_from, lo), min(open_until, hi)
                    if open_until > open_from:
                        pieces.append((open_from, open_until))
        joined = _union(pieces)
        return joined, sum(open_until - open_from for open_from, open_until in joined)

    def _compute_chunk(self, chunk: int) -> int:
        first = chunk * CHUNK_SLABS
        return sum(self._slab(k)[1] for k in range(first, first + CHUNK_SLABS))


def always() -> Calendar:
    """The 24/7 clock of a promise that names no calendar: ``advance`` is ``start + seconds``."""
    return ALWAYS


def _normalised_day(
    name: str, weekday: int, intervals: Sequence[LocalInterval]
) -> tuple[LocalInterval, ...]:
    ordered = sorted((int(start), int(end)) for start, end in intervals)
    for start, end in ordered:
        if not 0 <= start < end <= MINUTES_PER_DAY:
            raise ValueError(f"calendar {name!r} weekday {weekday}: bad interval {start}-{end}")
    for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False):
        if start < end:
            raise ValueError(f"calendar {name!r} weekday {weekday}: intervals overlap")
    return _union(ordered)


def _union(pieces: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, with overlapping or touching intervals joined."""
    joined: list[tuple[int, int]] = []
    for start, end in sorted(pieces):
        if joined and start <= joined[-1][1]:
            if end > joined[-1][1]:
                joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return tuple(joined)


def _instant(day: date, minutes: int, zone: tzinfo) -> int:
    """Local ``day`` at ``minutes`` after midnight (1440: the next day's 00:00), fold=0."""
    if minutes == MINUTES_PER_DAY:
        day, minutes = day + timedelta(days=1), 0
    local = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=zone)
    return int(local.timestamp())


def _slab_of(instant: float) -> int:
    return int(instant // DAY)


def _clipped(pieces: tuple[tuple[int, int], ...], start: float, end: float) -> float:
    total: float = 0
    for open_from, open_until in pieces:
        overlap = min(open_until, end) - max(open_from, start)
        if overlap > 0:
            total += overlap
    return total


ALWAYS = Calendar("24/7", UTC, {weekday: [(0, MINUTES_PER_DAY)] for weekday in range(7)})

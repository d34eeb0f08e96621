"""A due-time queue: ids grouped by due time, the times in a heap of plain floats.

Cheaper than a heap of (time, id) tuples: float comparisons instead of tuple comparisons,
and one heap entry for all ids due at the same instant.
"""

from __future__ import annotations

import heapq


class TimerQueue:
    def __init__(self) -> None:
        self._times: list[float] = []
        self._due: dict[float, list[str]] = {}

    def add(self, when: float, key: str) -> None:
        keys = self._due.get(when)
        if keys is None:
            self._due[when] = [key]
            heapq.heappush(self._times, when)
        else:
            keys.append(key)

    def next_due(self) -> float:
        """The earliest due time, or infinity when empty."""
        return self._times[0] if self._times else float("inf")

    def pop_due(self, until: float) -> list[str]:
        """Remove and return the keys due at or before ``until``, earliest first."""
        times, due = self._times, self._due
        out: list[str] = []
        while times and times[0] <= until:
            out.extend(due.pop(heapq.heappop(times)))
        return out

    def pop_before(self, until: float) -> list[str]:
        """Remove and return the keys due strictly before ``until``."""
        times, due = self._times, self._due
        out: list[str] = []
        while times and times[0] < until:
            out.extend(due.pop(heapq.heappop(times)))
        return out

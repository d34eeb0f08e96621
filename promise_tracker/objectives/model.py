"""An objective: which promises count, the keep-rate they must reach, and over what window.

Pure: no files, no clock. ``load.py`` builds these from an OpenSLO v1 YAML file
(docs/objectives.md); the alert rules, the budget panels and the report read them.

Good = kept, total = kept + broken: expired promises (nothing was measured) and cancelled ones
count for neither, as everywhere else (``promise_tracker/measures.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

FILTER_KEYS = ("service", "channel", "kind")
"""The outcome columns a filter may name; a promise label is ``label:<key>``."""
LABEL_PREFIX = "label:"
PAGE_MIN_DECIDED = 20
"""Decided promises the long window must hold before a burn pages (the low-traffic guard)."""


@dataclass(frozen=True)
class Window:
    """The time an objective is judged over: rolling (the last ``seconds``) or a calendar
    month or quarter in ``timezone``."""

    kind: Literal["rolling", "calendar"]
    seconds: float | None
    unit: Literal["month", "quarter"] | None
    timezone: str = "UTC"

    def bounds(self, now: float) -> tuple[float, float]:
        """[start, end) in Unix seconds of the window that holds ``now``: for a rolling window
        the last ``seconds`` up to ``now``; for a calendar one the whole month or quarter
        (calendar quarters: January, April, July, October), its end in the future."""
        if self.kind == "rolling":
            assert self.seconds is not None
            return now - self.seconds, now
        zone = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(now, zone)
        step = 3 if self.unit == "quarter" else 1
        first = (local.month - 1) // step * step + 1
        start = datetime(local.year, first, 1, tzinfo=zone)
        after = first + step
        end = datetime(local.year + (after - 1) // 12, (after - 1) % 12 + 1, 1, tzinfo=zone)
        return start.timestamp(), end.timestamp()

    def describe(self) -> str:
        """In words, e.g. ``rolling 28 days``, ``calendar month (Europe/Paris)``."""
        if self.kind == "rolling":
            assert self.seconds is not None
            days, rest = divmod(self.seconds, 86400)
            if rest == 0:
                return f"rolling {int(days)} day{'s' if days != 1 else ''}"
            return f"rolling {_hours(self.seconds)}"
        return f"calendar {self.unit} ({self.timezone})"


@dataclass(frozen=True)
class Objective:
    """One OpenSLO ``SLO`` document: the promises of ``filters`` must keep ``target`` of
    those decided in each ``window``."""

    name: str
    display_name: str | None
    service: str
    filters: Mapping[str, str] = field(hash=False)  # a dict: hashed by the other fields
    target: float
    window: Window
    description: str | None
    page_min_decided: int = field(default=PAGE_MIN_DECIDED)
    """The low-traffic guard: fewer decided promises than this in a page's long window file a
    ticket instead of paging."""

    def window_bounds(self, now: float) -> tuple[float, float]:
        """[start, end) Unix seconds of the current window (``Window.bounds``)."""
        return self.window.bounds(now)

    @property
    def error_budget(self) -> float:
        """The share of decided promises that may break: 1 - target."""
        return 1.0 - self.target

    @property
    def title(self) -> str:
        """The name people read: the display name, else the name."""
        return self.display_name or self.name

    @property
    def labels(self) -> Mapping[str, str]:
        """The promise-label filters, by label key (``label:tier`` -> ``tier``)."""
        return {
            key[len(LABEL_PREFIX) :]: value
            for key, value in self.filters.items()
            if key.startswith(LABEL_PREFIX)
        }


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"

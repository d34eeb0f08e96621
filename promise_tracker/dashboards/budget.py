"""An objective's error budget as one ClickHouse query: the figures of the budget panels on the
leadership dashboard and of the report's objectives, from the same text, so they cannot
disagree (docs/dashboards.md, "Error budgets"; docs/report.md).

The query is written for Grafana: "now" is ``$__toTime`` (the end of the dashboard's time
range) and tables are unqualified (the data source's ``defaultDatabase``). The report runs it
after the same macro expansion Grafana's plugin does (``dashboards/macros.py``), with the end
of its period as ``$__toTime``.

Definitions, over the promises the objective selects (``objectives/sql.py``), decided (kept
or broken: expired and cancelled count for neither) from the window's start to now:

* keep-rate = kept / (kept + broken) (``measures.KEEP_RATE``);
* allowed = (1 - target) x decided: the promises the objective lets break;
* remaining = allowed - broken (negative once overspent), and remaining / allowed;
* burn rate now = (broken / decided over the last hour) / (1 - target): 1 spends exactly what
  the objective allows, 0 when nothing was decided in that hour;
* runs out: if the last hour's pace goes on, the budget shrinks by broken - (1 - target) x
  decided each hour, and the remaining is gone after remaining / that many hours; "never" when
  it does not shrink (burn rate now 1 or less) or would last past the window (a calendar
  window's end; a rolling window's length from now), "exhausted" when nothing remains.
"""

from __future__ import annotations

import re

from promise_tracker import measures as m
from promise_tracker.objectives import sql as o
from promise_tracker.objectives.model import Objective, Window

NOW = "$__toTime"
"""The time the figures are for: Grafana's (and the report's) end of the time range."""
HOUR = 3600
_ZONE = re.compile(r"[A-Za-z0-9_+\-/]{1,64}")

# the columns of ``figures``, in order: what the panels and the report read
COLUMNS = (
    "target",
    "window_start",
    "kept",
    "broken",
    "decided",
    "keep_rate",
    "allowed",
    "remaining",
    "remaining_ratio",
    "decided_last_hour",
    "broken_last_hour",
    "burn_rate_now",
    "runs_out_at",
    "runs_out",
)
EXHAUSTED = "exhausted"
NEVER = "never"


def _zone(window: Window) -> str:
    """The window's time zone, checked to be a zone name before it is written into the SQL
    (ClickHouse takes zones as constant strings only)."""
    if not _ZONE.fullmatch(window.timezone):
        raise ValueError(f"time zone {window.timezone!r} is not a zone name")
    return window.timezone


def window_start(window: Window, now: str) -> str:
    """The window's first instant for ``now`` (a DateTime64 expression): ``now`` minus the
    rolling length, or the first midnight of the month or quarter in the window's zone."""
    if window.kind == "rolling":
        assert window.seconds is not None
        return f"{now} - toIntervalMillisecond({round(window.seconds * 1000)})"
    zone = _zone(window)
    start_of = "toStartOfQuarter" if window.unit == "quarter" else "toStartOfMonth"
    return f"toDateTime64({start_of}(toTimeZone({now}, '{zone}')), 6, '{zone}')"


def horizon(window: Window, now: str, start: str) -> str:
    """How far the budget is forecast: a calendar window's end (its budget starts afresh
    there), a rolling window's length from ``now`` (what broke before then has left it)."""
    if window.kind == "rolling":
        assert window.seconds is not None
        return f"{now} + toIntervalMillisecond({round(window.seconds * 1000)})"
    months = 3 if window.unit == "quarter" else 1
    return f"{start} + toIntervalMonth({months})"


def _counts(objective: Objective, since: str, inclusive: bool) -> str:
    """Kept and broken of the objective's promises decided from ``since`` to now."""
    after = ">=" if inclusive else ">"
    return f"""SELECT {m.KEPT} AS kept, {m.BROKEN} AS broken, {m.KEEP_RATE} AS keep_rate
        FROM outcomes FINAL
        WHERE closed_at {after} {since}
          AND closed_at <= now_at
          AND {o.DECIDED}
          AND {o.selects(objective)}"""


def figures(objective: Objective, now: str = NOW) -> str:
    """One row: the objective's budget figures at ``now`` (columns ``COLUMNS``, and the
    steps between them)."""
    # 1 - target to 12 places: 1 - 0.9 is 0.09999999999999998 in binary, and 200 decided
    # promises must allow 20 failures, not 19.999999999999996
    budget = f"{round(objective.error_budget, 12)!r}"
    start = window_start(objective.window, "now_at")
    return f"""
WITH toDateTime64({now}, 6, 'UTC') AS now_at,
     {start} AS window_start,
     {horizon(objective.window, "now_at", "window_start")} AS horizon_at
SELECT {objective.target!r} AS target,
       window_start,
       w.kept AS kept,
       w.broken AS broken,
       kept + broken AS decided,
       w.keep_rate AS keep_rate,
       round({budget} * decided, 9) AS allowed,
       round(allowed - broken, 9) AS remaining,
       remaining / nullIf(allowed, 0) AS remaining_ratio,
       h.kept + h.broken AS decided_last_hour,
       h.broken AS broken_last_hour,
       ifNull(broken_last_hour / nullIf(decided_last_hour, 0), 0) / {budget} AS burn_rate_now,
       round(broken_last_hour - {budget} * decided_last_hour, 9) / {HOUR} AS shrink_per_second,
       toUnixTimestamp64Micro(now_at) / 1e6 AS now_unix,
       now_unix + remaining / shrink_per_second AS gone_unix,
       remaining > 0 AND shrink_per_second > 0
           AND gone_unix < toUnixTimestamp64Micro(horizon_at) / 1e6 AS runs_out_in_window,
       if(runs_out_in_window, toDateTime64(if(runs_out_in_window, gone_unix, now_unix), 6, 'UTC'),
          NULL) AS runs_out_at,
       multiIf(decided > 0 AND remaining <= 0, '{EXHAUSTED}',
               runs_out_at IS NULL, '{NEVER}',
               formatDateTime(runs_out_at, '%Y-%m-%d %H:%i UTC')) AS runs_out
FROM ({_counts(objective, "window_start", inclusive=True)}) AS w
CROSS JOIN ({_counts(objective, f"now_at - toIntervalSecond({HOUR})", inclusive=False)}) AS h
"""


# --- in words: each figure's panel description (and the report's note), one sentence ------


def percent(share: float) -> str:
    """0.995 -> "99.5%"; 0.010000000000000009 -> "1%"."""
    return f"{share * 100:.6g}%"


def selection(objective: Objective) -> str:
    """Which promises count, in words: "the promises of eurorail/web on web of kind
    max_steps"."""
    filters = objective.filters
    words = f"the promises of {filters.get('service', objective.service)}"
    if "channel" in filters:
        words += f" on {filters['channel']}"
    if "kind" in filters:
        words += f" of kind {filters['kind']}"
    labels = ", ".join(f"{k}={v}" for k, v in sorted(objective.labels.items()))
    return words + (f" labelled {labels}" if labels else "")


def period(window: Window) -> str:
    """When the promises counted were decided: "in the last 28 days", "since this calendar
    month began (Europe/Paris)"."""
    if window.kind == "rolling":
        assert window.seconds is not None
        return f"in the last {_length(window.seconds)}"
    return f"since this calendar {window.unit} began ({window.timezone})"


def _length(seconds: float) -> str:
    days, rest = divmod(seconds, 86400)
    if rest == 0:
        return f"{days:g} day{'s' if days != 1 else ''}"
    return f"{seconds / 3600:g} hours"


def _horizon_words(window: Window) -> str:
    if window.kind == "rolling":
        assert window.seconds is not None
        return f"{_length(window.seconds)} from now (the window's length)"
    return f"the end of the {window.unit} (the budget starts afresh then)"


def explain(objective: Objective) -> dict[str, str]:
    """Each figure's definition for this objective, in one sentence that can be checked by
    hand; keyed by its column in ``figures``."""
    what, when = selection(objective), period(objective.window)
    target, budget = percent(objective.target), percent(objective.error_budget)
    return {
        "keep_rate": (
            f"Kept / (kept + broken) of {what} decided {when}, against the objective of "
            f"{target}; expired and cancelled promises count for neither."
        ),
        "remaining": (
            f"Promises that may still break: {budget} of {what} decided (kept + broken) "
            f"{when}, minus those broken; below zero once the budget is overspent."
        ),
        "remaining_ratio": (
            f"The promises that may still break / the promises allowed to break ({budget} of "
            f"those decided {when}): 100 % untouched, 0 % spent, below 0 overspent."
        ),
        "burn_rate_now": (
            f"Broken / decided in the last hour, divided by the {budget} the objective allows "
            f"to break: 1 spends exactly that, 2 twice as fast, 0 when none was decided."
        ),
        "runs_out": (
            f"If the last hour goes on, the budget shrinks by (broken - {budget} x decided) "
            f"each hour and runs out after remaining / that many hours; never if it does not "
            f"shrink or would last past {_horizon_words(objective.window)}, exhausted when "
            f"nothing remains."
        ),
    }

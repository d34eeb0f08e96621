"""The report's numbers, read from the store with the dashboards' own SQL.

Each query is a panel's (``dashboards/queries.py``, ``dashboards/budget.py``) or written
here in the same form (``$__timeFilter`` and friends), and it runs after the expansion
Grafana and its ClickHouse plugin apply (``dashboards/macros.py``) for the report's period,
with every dashboard variable at "All": so the report and the dashboard, over the same range,
run the same text. The dashboards name tables bare (the data source's database); here they
are qualified with the store's database, which a server's HTTP interface needs (no session).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from promise_tracker.dashboards import budget
from promise_tracker.dashboards import queries as q
from promise_tracker.dashboards.macros import ALL, Request, dashboard_sql
from promise_tracker.dashboards.queries import ACTIVE, FILTERS, FORESEEN
from promise_tracker.measures import BROKEN, KEEP_RATE, KEPT
from promise_tracker.objectives.model import Objective
from promise_tracker.sinks.store import Store

DAY = 86_400
TABLES = ("outcomes", "promises", "violations", "violation_events", "rejects", "warnings")
_TABLE = re.compile(r"\b(FROM|JOIN)\s+(" + "|".join(TABLES) + r")\b")
ALL_VARIABLES = {"service": [ALL], "channel": [ALL], "kind": [ALL], "violation_id": ""}
WORST_SHOWN = 15  # of the worst-broken panel's 50 rows

# Keep-rate per service over the period, worst first: "where are we worst".
BY_SERVICE = f"""
SELECT service,
       {KEPT} AS kept,
       {BROKEN} AS broken,
       countIf(status = 'expired') AS unverifiable,
       {KEEP_RATE} AS keep_rate
FROM outcomes FINAL
WHERE $__timeFilter(closed_at)
  AND status != 'open'
GROUP BY service
ORDER BY keep_rate ASC NULLS LAST, broken DESC, service
"""

# The broken promises a contradiction warning foretold (the count is the leadership panel's,
# ``FORESEEN_BREACHES``), newest breach first, each once, with the warning's words: what the
# promise said beside what the capability it relied on allowed. The warning is the one named
# by the promise's latest foreseen violation; its row may be missing (``detail`` NULL).
FORESEEN_SHOWN = 10
FORESEEN_LIST = f"""
WITH broken AS (
    SELECT promise_id,
           max(occurred_at) AS occurred,
           argMax(service, occurred_at) AS service,
           argMax(channel, occurred_at) AS channel,
           argMax(kind, occurred_at) AS kind,
           argMax(reason, occurred_at) AS reason,
           argMax(promise_text, occurred_at) AS customer_read,
           argMax(predicted_by, occurred_at) AS warning_id
    FROM violations FINAL
    WHERE {ACTIVE}
      AND {FORESEEN}
      AND $__timeFilter(occurred_at)
      AND {FILTERS}
    GROUP BY promise_id
    ORDER BY occurred DESC, promise_id
    LIMIT {FORESEEN_SHOWN}
)
SELECT broken.occurred AS occurred,
       broken.promise_id AS promise_id,
       broken.service AS service,
       broken.channel AS channel,
       broken.kind AS kind,
       broken.reason AS reason,
       broken.customer_read AS customer_read,
       warned.label AS contradiction,
       warned.detail AS detail,
       warned.warn_at AS warned
FROM broken
LEFT JOIN (
    SELECT warning_id, label, detail, warn_at
    FROM warnings FINAL
    WHERE warning_id IN (SELECT warning_id FROM broken)
) AS warned ON warned.warning_id = broken.warning_id
ORDER BY occurred DESC, promise_id
"""

# Input rejected in the period, by reason: data the figures above cannot include.
REJECTS_BY_REASON = """
SELECT reason, count() AS rejects
FROM rejects FINAL
WHERE $__timeFilter(rejected_at)
GROUP BY reason
ORDER BY rejects DESC, reason
"""


@dataclass(frozen=True)
class Period:
    """The report's range in Unix seconds, and the chart's step: a day, or an hour for a
    period of two days or less."""

    start: float
    end: float

    @property
    def step(self) -> int:
        return DAY if self.end - self.start > 2 * DAY else 3600

    def request(self) -> Request:
        return Request(self.start, self.end, self.step * 1000, ALL_VARIABLES)


def qualified(sql: str) -> str:
    """The dashboards' bare table names, in the store's database (``{db}``)."""
    return _TABLE.sub(r"\1 {db}.\2", sql)


def expanded(sql: str, period: Period) -> str:
    """A panel's SQL as the report runs it: Grafana's expansion for the period, tables
    qualified. Tests run this very text to check the page."""
    return qualified(dashboard_sql(sql.strip(), period.request()))  # as the panel holds it


def run(store: Store, sql: str, period: Period) -> list[dict[str, Any]]:
    return store.rows(expanded(sql, period))


@dataclass(frozen=True)
class Budget:
    """An objective and its budget figures (``budget.COLUMNS``) at the period's end."""

    objective: Objective
    figures: dict[str, Any]


@dataclass(frozen=True)
class Figures:
    """Everything on the page, as the store answered."""

    period: Period
    where: str  # the store, without credentials
    counts: dict[str, int]  # kept, broken, unverifiable, cancelled
    keep_rate: float | None
    customers_affected: int
    cost: dict[str, float]  # the excess panel: minutes on hold, hours late, ...
    budgets: list[Budget] = field(default_factory=list)
    trend: list[dict[str, Any]] = field(default_factory=list)  # time, service, keep_rate
    by_service: list[dict[str, Any]] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)  # reason, rejects
    warnings: dict[str, int] = field(default_factory=dict)  # saved, broken_anyway
    # could_have_been_caught, broken_promises: the leadership panel's
    foreseen: dict[str, int] = field(default_factory=dict)
    foreseen_list: list[dict[str, Any]] = field(default_factory=list)  # newest first


# what each query answers, by the name the page uses: the browser test reruns them
def queries(objectives: Sequence[Objective] = ()) -> dict[str, str]:
    found = {
        "counts": q.OUTCOME_COUNTS,
        "keep_rate": q.KEEP_RATE,
        "customers_affected": q.CUSTOMERS_AFFECTED,
        "cost": q.TOTAL_EXCESS,
        "trend": q.keep_rate_over_time("service"),
        "by_service": BY_SERVICE,
        "worst": q.WORST_BROKEN,
        "rejects": REJECTS_BY_REASON,
        "warnings": q.WARNINGS_SAVED,
        "foreseen": q.FORESEEN_BREACHES,
        "foreseen_list": FORESEEN_LIST,
    }
    for objective in objectives:
        found[f"budget:{objective.name}"] = budget.figures(objective)
    return found


def read(
    store: Store, period: Period, objectives: Sequence[Objective] = (), where: str = ""
) -> Figures:
    """Every figure of the report, from ``store``, for ``period``."""
    sql = queries(objectives)
    counts = run(store, sql["counts"], period)[0]
    return Figures(
        period=period,
        where=where,
        counts={k: int(v) for k, v in counts.items()},
        keep_rate=run(store, sql["keep_rate"], period)[0]["keep_rate"],
        customers_affected=int(
            run(store, sql["customers_affected"], period)[0]["customers_affected"]
        ),
        cost={k: float(v or 0) for k, v in run(store, sql["cost"], period)[0].items()},
        budgets=[Budget(o, run(store, sql[f"budget:{o.name}"], period)[0]) for o in objectives],
        trend=run(store, sql["trend"], period),
        by_service=run(store, sql["by_service"], period),
        worst=run(store, sql["worst"], period)[:WORST_SHOWN],
        rejects=run(store, sql["rejects"], period),
        warnings={k: int(v) for k, v in run(store, sql["warnings"], period)[0].items()},
        foreseen={k: int(v) for k, v in run(store, sql["foreseen"], period)[0].items()},
        foreseen_list=run(store, sql["foreseen_list"], period),
    )

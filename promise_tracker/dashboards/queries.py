"""Every query of the dashboards and alert rules, in one place: ClickHouse SQL for the
ClickHouse data source (tables unqualified: the data source's ``defaultDatabase`` names the
database) and PromQL for the worker's and sink's metrics.

Conventions, so that the panels tell the truth:

* tables are read with FINAL: a re-delivered or superseded row must not count twice;
* keep-rate = kept / (kept + broken). ``expired`` (nothing was measured) is shown apart as
  unverifiable and is never counted as kept; cancelled promises count for neither;
* an outcome counts at ``closed_at`` (when it became final, in event time), a violation at
  ``occurred_at``; a retracted violation (state ``retracted``) counts nowhere;
* template variables are quoted with ``${var:singlequote}`` and guarded by
  ``$__conditionalAll`` so that "All" adds no filter at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from promise_tracker import measures as m
from promise_tracker.objectives import sql as o
from promise_tracker.objectives.model import Objective
from promise_tracker.streams.capabilities import CONTRADICTION

# --- filters ------------------------------------------------------------------------------


def _where_in(column: str) -> str:
    """The filter of a multi-value variable named like its column. Its values are hex (its
    texts are the names): a quote or backslash in a name (a service is the events' free-text
    ``source``) never reaches the SQL, where Grafana's quoting escapes quotes but not
    backslashes. A value typed into a dashboard URL still can: the data source's user must
    be read-only (deploy/grafana/provisioning/datasources)."""
    return f"$__conditionalAll(hex({column}) IN (${{{column}:singlequote}}), ${column})"


def variable(column: str, where: str = "1=1") -> str:
    """A variable's values (hex) and texts (the names), from the outcomes."""
    return (
        f"SELECT DISTINCT hex({column}) AS value, {column} AS text FROM outcomes "
        f"WHERE {where} ORDER BY text"
    )


SERVICE = _where_in("service")
CHANNEL = _where_in("channel")
KIND = _where_in("kind")
FILTERS = f"{SERVICE}\n  AND {CHANNEL}\n  AND {KIND}"
ACTIVE = "state = 'active'"

# --- template variables ---------------------------------------------------------------------

VARIABLE_SERVICE = variable("service")
VARIABLE_CHANNEL = variable("channel", SERVICE)
VARIABLE_KIND = variable("kind", SERVICE)

# --- leadership ------------------------------------------------------------------------------

KEEP_RATE = f"""
SELECT {m.KEEP_RATE} AS keep_rate
FROM outcomes FINAL
WHERE $__timeFilter(closed_at)
  AND {FILTERS}
"""

OUTCOME_COUNTS = f"""
SELECT countIf(status = 'kept') AS kept,
       countIf(status = 'broken') AS broken,
       countIf(status = 'expired') AS unverifiable,
       countIf(status = 'cancelled') AS cancelled
FROM outcomes FINAL
WHERE $__timeFilter(closed_at)
  AND {FILTERS}
"""


def keep_rate_over_time(dimension: str) -> str:
    """Keep-rate per interval, one series per value of ``dimension`` (a column name)."""
    return f"""
SELECT $__timeInterval(closed_at) AS time,
       {dimension},
       {m.KEEP_RATE} AS keep_rate
FROM outcomes FINAL
WHERE $__timeFilter(closed_at)
  AND status IN ('kept', 'broken')
  AND {FILTERS}
GROUP BY time, {dimension}
ORDER BY time, {dimension}
"""


KEEP_RATE_TABLE = f"""
SELECT service,
       channel,
       kind,
       {m.KEPT} AS kept,
       {m.BROKEN} AS broken,
       countIf(status = 'expired') AS unverifiable,
       countIf(status = 'cancelled') AS cancelled,
       {m.KEEP_RATE} AS keep_rate
FROM outcomes FINAL
WHERE $__timeFilter(closed_at)
  AND {FILTERS}
GROUP BY service, channel, kind
ORDER BY keep_rate ASC NULLS LAST, broken DESC, service, channel, kind
"""

BROKEN_BY_REASON = f"""
SELECT reason,
       uniqExact(promise_id) AS broken_promises
FROM violations FINAL
WHERE {ACTIVE}
  AND $__timeFilter(occurred_at)
  AND {FILTERS}
GROUP BY reason
ORDER BY broken_promises DESC, reason
"""

CUSTOMERS_AFFECTED = f"""
SELECT uniqExact(subject) AS customers_affected
FROM violations FINAL
WHERE {ACTIVE}
  AND subject IS NOT NULL
  AND $__timeFilter(occurred_at)
  AND {FILTERS}
"""

# A violation a contradiction warning foretold (issue 16): the promise's terms contradicted a
# declared capability before it broke; predicted_by is that warning's id (the report's list
# of these promises uses the same test)
FORESEEN = "predicted_by IS NOT NULL"

# Broken promises whose breach a contradiction warning foretold, out of all broken promises
FORESEEN_BREACHES = f"""
SELECT uniqExactIf(promise_id, {FORESEEN}) AS could_have_been_caught,
       uniqExact(promise_id) AS broken_promises
FROM violations FINAL
WHERE {ACTIVE}
  AND $__timeFilter(occurred_at)
  AND {FILTERS}
"""

TOTAL_EXCESS = f"""
SELECT sumIf(excess, reason = 'wait_exceeded') / 60 AS minutes_on_hold_beyond_promise,
       sumIf(excess, reason = 'delivered_late') / 3600 AS hours_delivered_late,
       sumIf(excess, reason = 'enforced_early') / 86400 AS days_closed_early,
       sumIf(excess, reason = 'too_many_steps') AS extra_steps
FROM violations FINAL
WHERE {ACTIVE}
  AND $__timeFilter(occurred_at)
  AND {FILTERS}
"""

# Worst first: paging severity, then promises with nothing delivered at all (no excess: not
# delivered, goal never reached, channel down), then the largest excess in time, then steps.
WORST_BROKEN = f"""
SELECT occurred_at AS occurred,
       service,
       channel,
       kind,
       reason,
       promise_text AS customer_read,
       expected,
       observed,
       multiIf(excess IS NULL, 'nothing delivered',
               unit = 'steps', concat(toString(excess), ' extra steps'),
               formatReadableTimeDelta(excess)) AS beyond_promise,
       severity,
       promise_id,
       violation_id
FROM violations FINAL
WHERE {ACTIVE}
  AND $__timeFilter(occurred_at)
  AND {FILTERS}
ORDER BY severity = 'page' DESC,
         excess IS NULL DESC,
         unit = 'seconds' DESC,
         excess DESC,
         occurred_at DESC
LIMIT 50
"""

# Event time of the breach to the first time the pipeline said so (violation_events keeps
# every emission; a violation's first active one is its detection).
DETECTION_LATENCY = f"""
SELECT $__timeInterval(first_occurred) AS time,
       quantile(0.5)(latency_s) AS p50,
       quantile(0.95)(latency_s) AS p95,
       max(latency_s) AS worst
FROM (
    SELECT violation_id,
           argMin(occurred_at, detected_at) AS first_occurred,
           dateDiff('millisecond', argMin(occurred_at, detected_at), min(detected_at)) / 1000
               AS latency_s
    FROM violation_events FINAL
    WHERE {ACTIVE}
      AND violation_id IN (SELECT violation_id FROM violations FINAL WHERE {FILTERS})
    GROUP BY violation_id
)
WHERE $__timeFilter(first_occurred)
GROUP BY time
ORDER BY time
"""

# --- on-call -------------------------------------------------------------------------------

VIOLATIONS_LAST_HOUR = f"""
SELECT count() AS violations
FROM violations FINAL
WHERE {ACTIVE}
  AND detected_at > $__toTime - INTERVAL 1 HOUR
  AND detected_at <= $__toTime
  AND {SERVICE}
"""

VIOLATIONS_BY_REASON = f"""
SELECT $__timeInterval(detected_at) AS time,
       reason,
       count() AS violations
FROM violations FINAL
WHERE {ACTIVE}
  AND $__timeFilter(detected_at)
  AND {SERVICE}
GROUP BY time, reason
ORDER BY time, reason
"""

RECENT_VIOLATIONS = f"""
SELECT detected_at AS detected,
       service,
       channel,
       reason,
       severity,
       promise_text AS customer_read,
       expected,
       observed,
       promise_id,
       violation_id
FROM violations FINAL
WHERE {ACTIVE}
  AND $__timeFilter(detected_at)
  AND {SERVICE}
  AND $__conditionalAll(violation_id = ${{violation_id:singlequote}}, $violation_id)
ORDER BY detected_at DESC, violation_id
LIMIT 200
"""

# SPEC 4.1: promises about to break while they can still be kept, the least time left first
# (null when the promise is paused or counts steps: last). Not limited to the time range:
# what is at risk is at risk now.
AT_RISK_NOW = f"""
SELECT promise_id,
       service,
       channel,
       label,
       promise_text AS customer_read,
       warn_at,
       due_at,
       dateDiff('second', now64(3), due_at) AS seconds_left,
       warning_id
FROM warnings FINAL
WHERE state = 'active'
  AND {SERVICE}
ORDER BY seconds_left ASC NULLS LAST, warn_at, warning_id
LIMIT 200
"""

# An at-risk warning (SPEC 4.1), not a contradiction with a declared capability (those have
# their own figure, FORESEEN_BREACHES)
AT_RISK = f"NOT startsWith(label, '{CONTRADICTION}')"

# Warned promises that were then kept (the warning saved them) beside those that broke
# anyway: each promise once, whatever its number of warning labels
WARNINGS_SAVED = f"""
SELECT uniqExactIf(promise_id, outcome = 'kept') AS saved,
       uniqExactIf(promise_id, outcome = 'broken') AS broken_anyway
FROM warnings FINAL
WHERE state = 'resolved'
  AND {AT_RISK}
  AND $__timeFilter(warn_at)
  AND {FILTERS}
"""

REJECT_RATE = """
SELECT $__timeInterval(rejected_at) AS time,
       reason,
       count() * 60 / $__interval_s AS rejects_per_minute
FROM rejects FINAL
WHERE $__timeFilter(rejected_at)
GROUP BY time, reason
ORDER BY time, reason
"""

RECENT_REJECTS = """
SELECT rejected_at AS rejected,
       reason,
       message,
       origin,
       origin_part AS partition,
       origin_offset AS offset,
       substring(raw, 1, 200) AS first_bytes
FROM rejects FINAL
WHERE $__timeFilter(rejected_at)
ORDER BY rejected_at DESC, reject_id
LIMIT 100
"""

# Detection to storage: how long a violation took from the worker to a dashboard row.
SINK_LAG = """
SELECT $__timeInterval(stored_at) AS time,
       quantile(0.5)(lag_s) AS p50,
       quantile(0.99)(lag_s) AS p99
FROM (
    SELECT stored_at, dateDiff('millisecond', detected_at, stored_at) / 1000 AS lag_s
    FROM violation_events FINAL
    WHERE $__timeFilter(stored_at)
)
GROUP BY time
ORDER BY time
"""

# Seconds from the newest stored row to the end of the range: grows when nothing arrives.
SINCE_LAST_ROW = """
SELECT dateDiff('second', max(stored_at), $__toTime) AS seconds_since_last_row
FROM outcomes
WHERE stored_at <= $__toTime
"""

# --- PromQL (the worker's and sink's /metrics) ----------------------------------------------

PROM_EVENTS_IN = "sum by (topic) (rate(promise_tracker_events_total[$__rate_interval]))"
PROM_LATE_EVENTS = "sum(rate(promise_tracker_late_events_total[$__rate_interval]))"
PROM_WATERMARK_DELAY = "max by (partition) (promise_tracker_watermark_delay_seconds)"
PROM_SINK_LAG = "max(promise_tracker_sink_lag_seconds)"
PROM_ALERT_QUEUE = "sum(promise_tracker_alert_queue_depth)"
PROM_REJECTS = "sum by (reason) (rate(promise_tracker_rejects_total[$__rate_interval]))"

# --- alert rules (no browser stage: no template variables) ----------------------------------

OBJECTIVE = 0.99
"""The keep-rate held against a service that no objective names (docs/objectives.md): its
rules file tickets, never pages; a service's owners page on the objective they wrote."""


def _least_burn(short: str, budget: float) -> str:
    """The smaller of the burn rates over the whole range (the long window) and over the rows
    of ``short``: both must exceed the threshold, so ``> N`` is the workbook's two-window
    condition. A window with no decided promise burns nothing."""
    return f"""least(
           ifNull(countIf(status = 'broken') / nullIf(count(), 0), 0),
           ifNull(countIf(status = 'broken' AND {short})
                  / nullIf(countIf({short}), 0), 0)
       ) / {budget:.6g} AS burn_rate"""


def _short(minutes: int) -> str:
    return f"closed_at > $__toTime - INTERVAL {minutes} MINUTE"


def burn_rate(short_minutes: int, excluded: Sequence[str] = ()) -> str:
    """Per service but the ``excluded`` ones (those an objective names), the smaller of two
    burn rates against ``OBJECTIVE``: over the rule's range (the long window, ``$__fromTime``
    to ``$__toTime``) and over its last ``short_minutes``."""
    return f"""
SELECT service,
       {_least_burn(_short(short_minutes), 1 - OBJECTIVE)}
FROM outcomes FINAL
WHERE closed_at > $__fromTime
  AND closed_at <= $__toTime
  AND {o.DECIDED}
  AND {o.none_of(list(excluded))}
GROUP BY service
ORDER BY service
"""


def objective_burn_rate(objective: Objective, short_minutes: int, page_guard: bool) -> str:
    """The objective's burn rate: the smaller of the rates over the rule's range (the long
    window) and its last ``short_minutes``, as error ratio / (1 - target). With
    ``page_guard``, a ``severity`` column: ``page`` when the long window holds at least the
    objective's ``page_min_decided`` decided promises, else ``ticket`` (the low-traffic
    guard: too few promises to wake anyone for)."""
    severity = (
        f"if(count() >= {objective.page_min_decided}, 'page', 'ticket') AS severity,\n       "
        if page_guard
        else ""
    )
    return f"""
SELECT service,
       {severity}{_least_burn(_short(short_minutes), objective.error_budget)}
FROM outcomes FINAL
WHERE closed_at > $__fromTime
  AND closed_at <= $__toTime
  AND {o.DECIDED}
  AND {o.selects(objective)}
GROUP BY service
"""


DLQ_SPIKE_MIN_PER_MINUTE = 10  # below this many rejects a minute, no spike is worth a page

# Rejects a minute over the last 5 minutes against the rest of the rule's range: the ratio
# (the baseline floored at one a minute), or 0 when the recent rate is too small to matter.
DLQ_SPIKE = f"""
SELECT if(recent >= {DLQ_SPIKE_MIN_PER_MINUTE}, recent / greatest(baseline, 1), 0) AS spike
FROM (
    SELECT countIf(rejected_at > $__toTime - INTERVAL 5 MINUTE) / 5 AS recent,
           countIf(rejected_at <= $__toTime - INTERVAL 5 MINUTE)
               / greatest(dateDiff('minute', $__fromTime, $__toTime) - 5, 1) AS baseline
    FROM rejects FINAL
    WHERE rejected_at > $__fromTime
      AND rejected_at <= $__toTime
)
"""

# Seconds since the store last took a row, while promises are open (else 0): the pipeline
# has stalled when this grows although something is still waiting for a verdict.
STALLED = """
SELECT if(open_promises > 0, dateDiff('second', last_row, $__toTime), 0) AS stalled_seconds
FROM (
    SELECT (SELECT max(stored_at) FROM outcomes) AS last_row,
           (SELECT count() FROM outcomes FINAL WHERE status = 'open') AS open_promises
)
"""

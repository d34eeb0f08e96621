"""Grafana alert rules for what one violation does not show: a service burning its error
budget too fast, a dead-letter spike, a stalled pipeline. Written as a provisioning file
with the contact point (Alertmanager) and the policy; SQL in queries.py.

Each broken promise pages by itself through the worker's pager (sinks/); these rules are
about the aggregate, and carry ``severity`` so that Alertmanager routes them like the rest.
"""

from __future__ import annotations

from typing import Any

from promise_tracker.dashboards import queries as q
from promise_tracker.dashboards.grafana import CLICKHOUSE_PLUGIN, CLICKHOUSE_UID, TABLE
from promise_tracker.dashboards.oncall import UID as ONCALL_UID

FOLDER = "Promise tracker"
GROUP = "promise-tracker"
INTERVAL_MS = 1000  # the query model's intervalMs: Grafana's default for alert queries
STALLED_MINUTES = 10
DLQ_SPIKE_FACTOR = 5

# (uid, title, long window s, short window min, burn-rate factor): the Google SRE
# workbook's multiwindow, multi-burn-rate alerts; both page.
BURN_RATES = [
    ("promise-burn-fast", "Keep-rate burning its error budget fast", 3600, 5, 14.4),
    ("promise-burn-slow", "Keep-rate burning its error budget", 6 * 3600, 30, 6.0),
]


def _sql_query(sql: str, seconds: int) -> dict[str, Any]:
    return {
        "refId": "A",
        "datasourceUid": CLICKHOUSE_UID,
        "relativeTimeRange": {"from": seconds, "to": 0},
        "model": {
            "datasource": {"type": CLICKHOUSE_PLUGIN, "uid": CLICKHOUSE_UID},
            "editorType": "sql",
            "format": TABLE,
            "intervalMs": INTERVAL_MS,
            "maxDataPoints": 43200,
            "queryType": "table",
            "rawSql": sql.strip(),
            "refId": "A",
        },
    }


def _above(threshold: float) -> dict[str, Any]:
    """Expression B: every row of A (one per string-column labels) above the threshold."""
    return {
        "refId": "B",
        "datasourceUid": "__expr__",
        "relativeTimeRange": {"from": 0, "to": 0},
        "model": {
            "conditions": [{"evaluator": {"params": [threshold], "type": "gt"}}],
            "datasource": {"type": "__expr__", "uid": "__expr__"},
            "expression": "A",
            "refId": "B",
            "type": "threshold",
        },
    }


def _rule(
    uid: str,
    title: str,
    sql: str,
    seconds: int,
    threshold: float,
    wait: str,
    no_data: str,
    summary: str,
    description: str,
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "condition": "B",
        "data": [_sql_query(sql, seconds), _above(threshold)],
        "for": wait,
        "noDataState": no_data,
        "execErrState": "Error",
        "labels": {"severity": "page", "team": "promise-tracker"},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"/d/{ONCALL_UID}",
        },
        "isPaused": False,
    }


def burn_rate_rule(uid: str, title: str, long_s: int, short_min: int, factor: float) -> dict:
    budget = 1 - q.OBJECTIVE
    return _rule(
        uid,
        title,
        q.burn_rate(short_min),
        long_s,
        factor,
        "2m",
        "OK",  # nothing decided in the window: nothing burns
        f"{{{{ $labels.service }}}} breaks promises {factor:g}x faster than its objective "
        f"allows ({long_s // 3600}h and {short_min}m windows)",
        f"Objective: keep {q.OBJECTIVE:.0%} of promises (error budget {budget:.0%}). At "
        f"{factor:g}x the budget burns within {30 * 24 / factor:.0f} hours of a 30-day month.",
    )


def dlq_spike_rule() -> dict[str, Any]:
    return _rule(
        "promise-dlq-spike",
        "Dead-letter spike",
        q.DLQ_SPIKE,
        3600,
        DLQ_SPIKE_FACTOR,
        "5m",
        "OK",
        f"Rejected events are arriving {DLQ_SPIKE_FACTOR}x faster than in the past hour",
        "A producer is sending events the contract refuses; see the rejects by reason on the "
        "on-call dashboard. The events are in the dead-letter topic with their bytes.",
    )


def stalled_rule() -> dict[str, Any]:
    return _rule(
        "promise-pipeline-stalled",
        "Pipeline stalled",
        q.STALLED,
        3600,
        STALLED_MINUTES * 60,
        "0s",
        "Alerting",  # no answer at all is no better
        f"Nothing reached ClickHouse for {STALLED_MINUTES} minutes while promises are open",
        "Check the workers, the sink and Kafka (on-call dashboard: since the last stored row, "
        "watermark delay).",
    )


def provisioning(alertmanager_url: str = "http://alertmanager:9093") -> dict[str, Any]:
    """The whole alerting provisioning file: rules, contact point and policy."""
    rules = [burn_rate_rule(*spec) for spec in BURN_RATES]
    rules += [dlq_spike_rule(), stalled_rule()]
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": "1m", "rules": rules}],
        "contactPoints": [
            {
                "orgId": 1,
                "name": "alertmanager",
                "receivers": [
                    {
                        "uid": "promise-tracker-alertmanager",
                        "type": "prometheus-alertmanager",
                        "settings": {"url": alertmanager_url},
                    }
                ],
            }
        ],
        "policies": [
            {
                "orgId": 1,
                "receiver": "alertmanager",
                "group_by": ["alertname", "service"],
            }
        ],
    }

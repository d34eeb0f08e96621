"""Grafana alert rules for what one violation does not show: an objective burning its error
budget, a dead-letter spike, a stalled pipeline. Written as a provisioning file with the
contact point (Alertmanager) and the policy; SQL in queries.py.

Each broken promise pages by itself through the worker's pager (sinks/); these rules are
about the aggregate, and carry ``severity`` so that Alertmanager routes them like the rest.
Per objective of the objectives file (docs/objectives.md), the SRE workbook's multiwindow,
multi-burn-rate rules (``TIERS``); a service no objective names is held to ``q.OBJECTIVE``
by two rules that ticket (``BURN_RATES``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promise_tracker.dashboards import queries as q
from promise_tracker.dashboards.grafana import CLICKHOUSE_PLUGIN, CLICKHOUSE_UID, TABLE
from promise_tracker.dashboards.oncall import UID as ONCALL_UID
from promise_tracker.objectives.model import Objective, Window

FOLDER = "Promise tracker"
GROUP = "promise-tracker"
OBJECTIVES_GROUP = "objectives"
INTERVAL_MS = 1000  # the query model's intervalMs: Grafana's default for alert queries
STALLED_MINUTES = 10
DLQ_SPIKE_FACTOR = 5
UID_MAX = 40  # Grafana's limit on a rule uid


@dataclass(frozen=True)
class Tier:
    """One of the workbook's burn-rate conditions: the burn rate over both windows above
    ``factor``. A paging tier pages only past the objective's low-traffic guard."""

    key: str  # the rule uid's suffix
    title: str
    long_s: int
    short_min: int
    factor: float
    pages: bool


# The Google SRE workbook's multiwindow, multi-burn-rate alerts (chapter 5, "Alerting on
# SLOs"): 2 % of a 30-day budget spent in an hour or 5 % in six hours pages; 10 % in three
# days files a ticket.
TIERS = (
    Tier("fast", "burning its error budget fast", 3600, 5, 14.4, pages=True),
    Tier("slow", "burning its error budget", 6 * 3600, 30, 6.0, pages=True),
    Tier("ticket", "burning its error budget slowly", 3 * 86400, 6 * 60, 1.0, pages=False),
)

# (uid, title, long window s, short window min, burn-rate factor) for the services no
# objective names, against q.OBJECTIVE: the two fast tiers, as tickets (nobody chose 99 %).
BURN_RATES = [
    ("promise-burn-fast", "No objective: keep-rate burning a 99% budget fast", 3600, 5, 14.4),
    ("promise-burn-slow", "No objective: keep-rate burning a 99% budget", 6 * 3600, 30, 6.0),
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
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "condition": "B",
        "data": [_sql_query(sql, seconds), _above(threshold)],
        "for": wait,
        "noDataState": no_data,
        "execErrState": "Error",
        # a rule's label wins over a query's column of the same name: a rule whose query
        # says the severity has none here
        "labels": {"severity": "page", "team": "promise-tracker"} if labels is None else labels,
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"/d/{ONCALL_UID}",
        },
        "isPaused": False,
    }


def burn_rate_rule(
    uid: str,
    title: str,
    long_s: int,
    short_min: int,
    factor: float,
    excluded: Sequence[str] = (),
) -> dict[str, Any]:
    """A service no objective names, held to q.OBJECTIVE: tickets, never pages."""
    budget = 1 - q.OBJECTIVE
    return _rule(
        uid,
        title,
        q.burn_rate(short_min, excluded),
        long_s,
        factor,
        "2m",
        "OK",  # nothing decided in the window: nothing burns
        f"{{{{ $labels.service }}}} breaks promises {factor:g}x faster than a {q.OBJECTIVE:.0%} "
        f"keep-rate allows ({_span(long_s)} and {short_min}m windows); it has no objective",
        f"No objective names this service, so it is held to a default keep-rate of "
        f"{q.OBJECTIVE:.0%} (error budget {budget:.0%}) and files a ticket, never a page. "
        "Write its objective (docs/objectives.md) so that its owners decide what pages.",
        {"severity": "ticket", "team": "promise-tracker"},
    )


def objective_rules(objective: Objective) -> list[dict[str, Any]]:
    """The objective's three burn-rate rules (``TIERS``)."""
    return [_objective_rule(objective, tier) for tier in TIERS]


def _objective_rule(objective: Objective, tier: Tier) -> dict[str, Any]:
    windows = f"{_span(tier.long_s)} and {_span(tier.short_min * 60)}"
    labels = {"objective": objective.name, "team": "promise-tracker"}
    guard = ""
    if tier.pages:
        guard = (
            '{{ if eq $labels.severity "ticket" }} Fewer than '
            f"{objective.page_min_decided} promises were decided in the last "
            f"{_span(tier.long_s)}: too few to page for, so this is a ticket (the low-traffic "
            "guard).{{ end }}"
        )
    else:
        labels["severity"] = "ticket"
    return _rule(
        _uid(objective.name, tier.key),
        f"{objective.name}: {tier.title}",
        q.objective_burn_rate(objective, tier.short_min, page_guard=tier.pages),
        tier.long_s,
        tier.factor,
        "2m",
        "OK",  # nothing decided in the window: nothing burns
        f"{_literal(objective.title)}: promises breaking at {tier.factor:g}x the rate the "
        f"objective allows ({windows} windows)",
        f"Objective {objective.name}: keep {_percent(objective.target)} of decided promises "
        f"over {objective.window.describe()} (error budget {_percent(objective.error_budget)}"
        f"). Burning at {tier.factor:g}x, that budget is gone in "
        f"{_gone(objective.window, tier.factor)}.{guard}",
        labels,
    )


def _uid(name: str, key: str) -> str:
    """``slo-NAME-KEY``, the name shortened and a hash of it added when that is too long."""
    uid = f"slo-{name}-{key}"
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    room = UID_MAX - len(f"slo--{digest}-{key}")
    return f"slo-{name[:room].rstrip('-')}-{digest}-{key}"


def _literal(text: str) -> str:
    """Text from the objectives file, kept out of Grafana's templating: no ``{{``."""
    return text.replace("{{", "{ {").replace("}}", "} }")


def _span(seconds: float) -> str:
    """``5m``, ``6h``, ``3d``."""
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds // 60)}m"


def _percent(share: float) -> str:
    return f"{share * 100:.6g}%"


def _gone(window: Window, factor: float) -> str:
    """How long the whole budget of ``window`` lasts at ``factor`` times its sustainable
    rate; calendar windows taken as 30 (month) or 91 (quarter) days."""
    if window.seconds is not None:
        days, about = window.seconds / 86400, ""
    else:
        days, about = (30.0 if window.unit == "month" else 91.0), "about "
    hours = days * 24 / factor
    if hours < 48:
        return f"{about}{hours:.0f} hours"
    return f"{about}{hours / 24:.0f} days"


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


def provisioning(
    objectives: Sequence[Objective] = (), alertmanager_url: str = "http://alertmanager:9093"
) -> dict[str, Any]:
    """The whole alerting provisioning file: rules (the objectives' in a group of their own),
    contact point and policy."""
    named = [objective.service for objective in objectives]
    rules = [burn_rate_rule(*spec, excluded=named) for spec in BURN_RATES]
    rules += [dlq_spike_rule(), stalled_rule()]
    groups = [{"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": "1m", "rules": rules}]
    if objectives:
        burns = [rule for objective in objectives for rule in objective_rules(objective)]
        groups.append(
            {
                "orgId": 1,
                "name": OBJECTIVES_GROUP,
                "folder": FOLDER,
                "interval": "1m",
                "rules": burns,
            }
        )
    return {
        "apiVersion": 1,
        "groups": groups,
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

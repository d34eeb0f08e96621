"""The leadership dashboard: how well the company keeps its promises, by service, channel and
kind, what the broken ones cost customers, and each objective's error budget. One function
per panel; SQL in queries.py, an objective's budget figures in budget.py."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as gcommon
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    BigValueTextMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    Threshold,
    ThresholdsMode,
)

from promise_tracker.dashboards import budget
from promise_tracker.dashboards import queries as q
from promise_tracker.dashboards.grafana import (
    CLICKHOUSE,
    SQL,
    TABLE,
    TIME_SERIES,
    multi_variable,
    numbered,
)
from promise_tracker.objectives.model import Objective

UID = "promise-tracker-leadership"


def keep_rate() -> stat.Panel:
    return (
        stat.Panel()
        .title("Keep-rate")
        .description(
            "Promises kept / (kept + broken), decided in the time range. Unverifiable "
            "(expired: nothing was measured) and cancelled promises count for neither."
        )
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.KEEP_RATE, TABLE))
        .unit("percentunit")
        .decimals(2)
        .min(0)
        .max(1)
        .graph_mode(BigValueGraphMode.NONE)
        .height(5)
        .span(6)
    )


def outcome_counts() -> stat.Panel:
    return (
        stat.Panel()
        .title("Promises decided")
        .description(
            "Kept, broken, unverifiable (expired with nothing measured: not counted as kept) "
            "and cancelled, by the time each was decided."
        )
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.OUTCOME_COUNTS, TABLE))
        .unit("short")
        .graph_mode(BigValueGraphMode.NONE)
        .height(5)
        .span(10)
    )


def customers_affected() -> stat.Panel:
    return (
        stat.Panel()
        .title("Customers affected")
        .description("Distinct subjects with at least one broken promise in the time range.")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.CUSTOMERS_AFFECTED, TABLE))
        .unit("short")
        .graph_mode(BigValueGraphMode.NONE)
        .height(5)
        .span(8)
    )


def total_excess() -> stat.Panel:
    return (
        stat.Panel()
        .title("What the broken promises cost customers")
        .description(
            "Minutes on hold beyond the promised wait, hours delivered late, days a window "
            "closed early, and steps beyond the promised number."
        )
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.TOTAL_EXCESS, TABLE))
        .decimals(1)
        .graph_mode(BigValueGraphMode.NONE)
        .height(5)
        .span(24)
    )


def warnings_saved() -> stat.Panel:
    return (
        stat.Panel()
        .title("Warned in time: kept, and broken anyway")
        .description(
            "Promises that got an at-risk warning in the time range and were then kept (the "
            "warning saved them), beside those that broke anyway; each promise counted once."
        )
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.WARNINGS_SAVED, TABLE))
        .unit("short")
        .graph_mode(BigValueGraphMode.NONE)
        .height(5)
        .span(24)
    )


def foreseen_breaches() -> stat.Panel:
    return (
        stat.Panel()
        .title("Broken promises we could have caught before issuing them")
        .description(
            "Broken promises (active violations in the time range) whose terms contradicted a "
            "declared capability before the breach (a contradiction warning said so), beside "
            "all broken promises; each promise counted once."
        )
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.FORESEEN_BREACHES, TABLE))
        .unit("short")
        .graph_mode(BigValueGraphMode.NONE)
        .height(5)
        .span(24)
    )


def _keep_rate_over_time(dimension: str, title: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description("Kept / (kept + broken) per interval, by when each promise was decided.")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.keep_rate_over_time(dimension), TIME_SERIES))
        .unit("percentunit")
        .min(0)
        .max(1)
        .height(8)
        .span(8)
    )


def keep_rate_by_service() -> timeseries.Panel:
    return _keep_rate_over_time("service", "Keep-rate by service")


def keep_rate_by_channel() -> timeseries.Panel:
    return _keep_rate_over_time("channel", "Keep-rate by channel")


def keep_rate_by_kind() -> timeseries.Panel:
    return _keep_rate_over_time("kind", "Keep-rate by kind")


def keep_rate_table() -> table.Panel:
    return (
        table.Panel()
        .title("Keep-rate by service, channel and kind")
        .description("Worst first. Unverifiable and cancelled are shown apart.")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.KEEP_RATE_TABLE, TABLE))
        .height(8)
        .span(14)
    )


def broken_by_reason() -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title("Broken promises by reason")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.BROKEN_BY_REASON, TABLE))
        .orientation(VizOrientation.HORIZONTAL)
        .unit("short")
        .height(8)
        .span(10)
    )


def worst_broken() -> table.Panel:
    return (
        table.Panel()
        .title("Worst broken promises")
        .description(
            "The exact words the customer read, the channel, what was promised and what "
            "happened. Paging severity first, then nothing delivered at all, then the "
            "largest excess."
        )
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.WORST_BROKEN, TABLE))
        .height(12)
        .span(24)
    )


def detection_latency() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Detection latency")
        .description(
            "From the breach (event time) to the pipeline's first violation for it: for an "
            "absence (not delivered, goal not reached), from the due time."
        )
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.DETECTION_LATENCY, TIME_SERIES))
        .unit("s")
        .height(8)
        .span(24)
    )


# --- error budgets: five panels per objective, one row each -----------------------------


def _budget_stat(
    objective: Objective, figure: str, title: str, steps: Sequence[tuple[float | None, str]]
) -> stat.Panel:
    """One figure of the objective's budget query (every panel of an objective runs the same
    query and shows its own column), described in the words of ``budget.explain``."""
    return (
        stat.Panel()
        .title(f"{title} · {objective.title}")
        .description(budget.explain(objective)[figure])
        .datasource(CLICKHOUSE)
        .with_target(SQL(budget.figures(objective), TABLE))
        .reduce_options(
            gcommon.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields(f"/^{figure}$/")
        )
        .thresholds(
            gdash.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=value, color=color) for value, color in steps])
        )
        .color_mode(BigValueColorMode.VALUE)
        .text_mode(BigValueTextMode.VALUE)
        .graph_mode(BigValueGraphMode.NONE)
        .height(4)
    )


def budget_keep_rate(objective: Objective) -> stat.Panel:
    title = f"Keep-rate, objective {budget.percent(objective.target)}"
    steps = [(None, "red"), (objective.target, "green")]
    return (
        _budget_stat(objective, "keep_rate", title, steps).unit("percentunit").decimals(2).span(6)
    )


def budget_remaining(objective: Objective) -> stat.Panel:
    steps = [(None, "red"), (0, "green")]
    title = "Promises that may still break"
    return _budget_stat(objective, "remaining", title, steps).unit("short").decimals(1).span(5)


def budget_remaining_ratio(objective: Objective) -> stat.Panel:
    steps = [(None, "red"), (0, "green")]
    return (
        _budget_stat(objective, "remaining_ratio", "Error budget left", steps)
        .unit("percentunit")
        .decimals(1)
        .span(4)
    )


def budget_burn_rate(objective: Objective) -> stat.Panel:
    steps = [(None, "green"), (1, "orange"), (6, "red")]
    return (
        _budget_stat(objective, "burn_rate_now", "Burn rate now", steps)
        .unit("x")
        .decimals(2)
        .span(4)
    )


def budget_runs_out(objective: Objective) -> stat.Panel:
    return (
        _budget_stat(objective, "runs_out", "Budget runs out", [(None, "text")])
        .color_mode(BigValueColorMode.NONE)
        .span(5)
    )


def budget_panels(objective: Objective) -> list[stat.Panel]:
    """The objective's row: keep-rate against target, the budget left in promises and in
    percent, the burn rate now and when the budget runs out (docs/dashboards.md)."""
    return [
        budget_keep_rate(objective),
        budget_remaining(objective),
        budget_remaining_ratio(objective),
        budget_burn_rate(objective),
        budget_runs_out(objective),
    ]


def dashboard(objectives: Sequence[Objective] = ()) -> gdash.Dashboard:
    """The dashboard; with ``objectives`` (the objectives file), a row of budget panels for
    each, at the end."""
    board = (
        gdash.Dashboard("Promise keeping")
        .uid(UID)
        .description("How well we keep the promises we make to customers.")
        .tags(["promise-tracker"])
        .timezone("utc")
        .time("now-30d", "now")
        .refresh("5m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .readonly()
        .with_variable(multi_variable("service", "Service", q.VARIABLE_SERVICE))
        .with_variable(multi_variable("channel", "Channel", q.VARIABLE_CHANNEL))
        .with_variable(multi_variable("kind", "Kind", q.VARIABLE_KIND))
        .with_panel(keep_rate())
        .with_panel(outcome_counts())
        .with_panel(customers_affected())
        .with_panel(total_excess())
        .with_panel(warnings_saved())
        .with_panel(foreseen_breaches())
        .with_panel(keep_rate_by_service())
        .with_panel(keep_rate_by_channel())
        .with_panel(keep_rate_by_kind())
        .with_panel(keep_rate_table())
        .with_panel(broken_by_reason())
        .with_panel(worst_broken())
        .with_panel(detection_latency())
    )
    for objective in objectives:
        for panel in budget_panels(objective):
            board = board.with_panel(panel)
    return numbered(board)

"""The leadership dashboard: how well the company keeps its promises, by service, channel and
kind, and what the broken ones cost customers. One function per panel; SQL in queries.py."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.models.common import BigValueGraphMode, VizOrientation
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from promise_tracker.dashboards import queries as q
from promise_tracker.dashboards.grafana import (
    CLICKHOUSE,
    SQL,
    TABLE,
    TIME_SERIES,
    multi_variable,
    numbered,
)

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


def dashboard() -> gdash.Dashboard:
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
        .with_panel(keep_rate_by_service())
        .with_panel(keep_rate_by_channel())
        .with_panel(keep_rate_by_kind())
        .with_panel(keep_rate_table())
        .with_panel(broken_by_reason())
        .with_panel(worst_broken())
        .with_panel(detection_latency())
    )
    return numbered(board)

"""The on-call dashboard: what broke in the last hour, bad input, and whether the pipeline
keeps up. Alerts link here with ``var-violation_id``. One function per panel; queries in
queries.py (ClickHouse for what is stored, Prometheus for the worker's own state)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models.common import BigValueGraphMode
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from promise_tracker.dashboards import queries as q
from promise_tracker.dashboards.grafana import (
    CLICKHOUSE,
    PROMETHEUS,
    SQL,
    TABLE,
    TIME_SERIES,
    multi_variable,
    numbered,
    promql,
)

UID = "promise-tracker-oncall"


def violations_last_hour() -> stat.Panel:
    return (
        stat.Panel()
        .title("Violations in the last hour")
        .description("Active violations detected in the hour before the end of the range.")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.VIOLATIONS_LAST_HOUR, TABLE))
        .unit("short")
        .graph_mode(BigValueGraphMode.NONE)
        .height(5)
        .span(6)
    )


def since_last_row() -> stat.Panel:
    return (
        stat.Panel()
        .title("Since the last stored row")
        .description("Grows when nothing reaches ClickHouse: the worker or the sink stalled.")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.SINCE_LAST_ROW, TABLE))
        .unit("s")
        .graph_mode(BigValueGraphMode.NONE)
        .height(5)
        .span(6)
    )


def alert_queue() -> stat.Panel:
    return (
        stat.Panel()
        .title("Alerts waiting for Alertmanager")
        .description("The pager's retry queue: grows while Alertmanager cannot be reached.")
        .datasource(PROMETHEUS)
        .with_target(promql(q.PROM_ALERT_QUEUE))
        .unit("short")
        .height(5)
        .span(6)
    )


def events_in() -> stat.Panel:
    return (
        stat.Panel()
        .title("Events in")
        .datasource(PROMETHEUS)
        .with_target(promql(q.PROM_EVENTS_IN, "{{topic}}"))
        .unit("reqps")
        .height(5)
        .span(6)
    )


def violations_by_reason() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Violations by reason")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.VIOLATIONS_BY_REASON, TIME_SERIES))
        .unit("short")
        .height(8)
        .span(12)
    )


def reject_rate() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Rejects (dead-letter) per minute by reason")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.REJECT_RATE, TIME_SERIES))
        .unit("short")
        .height(8)
        .span(12)
    )


def recent_violations() -> table.Panel:
    return (
        table.Panel()
        .title("Violations, newest first")
        .description("Set violation_id (alerts link here with it) to see one violation.")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.RECENT_VIOLATIONS, TABLE))
        .height(10)
        .span(24)
    )


def at_risk_now() -> table.Panel:
    return (
        table.Panel()
        .title("At risk now")
        .description(
            "Open promises past a warning point (SPEC 4.1), the least time left first: the "
            "words the customer read, when the warning came, and the seconds until the due "
            "time (empty while paused, or for a journey out of steps). Not limited to the "
            "time range."
        )
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.AT_RISK_NOW, TABLE))
        .height(8)
        .span(24)
    )


def late_events() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Late events")
        .description("Events older than the watermark, per second: applied, and counted.")
        .datasource(PROMETHEUS)
        .with_target(promql(q.PROM_LATE_EVENTS, "late"))
        .unit("reqps")
        .height(8)
        .span(8)
    )


def watermark_delay() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Watermark delay")
        .description(
            "Wall clock minus each partition's watermark: absence violations fire this much "
            "after their due time."
        )
        .datasource(PROMETHEUS)
        .with_target(promql(q.PROM_WATERMARK_DELAY, "partition {{partition}}"))
        .unit("s")
        .height(8)
        .span(8)
    )


def sink_lag() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Sink lag")
        .description("From detection to the row in ClickHouse (p50, p99).")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.SINK_LAG, TIME_SERIES))
        .unit("s")
        .height(8)
        .span(8)
    )


def recent_rejects() -> table.Panel:
    return (
        table.Panel()
        .title("Latest rejects")
        .description("Where each came from (topic, partition, offset) and its first bytes.")
        .datasource(CLICKHOUSE)
        .with_target(SQL(q.RECENT_REJECTS, TABLE))
        .height(10)
        .span(24)
    )


def dashboard() -> gdash.Dashboard:
    board = (
        gdash.Dashboard("Promise tracker on-call")
        .uid(UID)
        .description("Broken promises as they happen, bad input, and pipeline health.")
        .tags(["promise-tracker"])
        .timezone("utc")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .readonly()
        .with_variable(multi_variable("service", "Service", q.VARIABLE_SERVICE))
        .with_variable(gdash.TextBoxVariable("violation_id").label("Violation id"))
        .with_panel(violations_last_hour())
        .with_panel(since_last_row())
        .with_panel(alert_queue())
        .with_panel(events_in())
        .with_panel(violations_by_reason())
        .with_panel(reject_rate())
        .with_panel(recent_violations())
        .with_panel(at_risk_now())
        .with_panel(late_events())
        .with_panel(watermark_delay())
        .with_panel(sink_lag())
        .with_panel(recent_rejects())
    )
    return numbered(board)

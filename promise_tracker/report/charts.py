"""The report's charts: Vega-Lite specifications written with Altair, rendered to static SVG
by vl-convert (the Vega-Lite compiler and Vega renderer, run in-process: no browser, no
network), to be inlined in the page. Times are drawn in UTC, whatever the machine's zone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import altair as alt
import vl_convert

from promise_tracker.report.figures import Budget

# the Vega-Lite version Altair writes ("v6.4.1" -> "6.4"), which vl-convert must compile
VEGA_LITE = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
CONFIG = {
    "font": FONT,
    "view": {"stroke": "#d0d4da"},
    "axis": {"labelColor": "#333", "titleColor": "#333", "gridColor": "#eceef1"},
}


def svg(chart: alt.TopLevelMixin) -> str:
    """The chart as an SVG element (no XML prolog), for inlining."""
    spec = chart.to_dict()
    text: str = vl_convert.vegalite_to_svg(spec, vl_version=VEGA_LITE, config=CONFIG)
    return text[text.index("<svg") :] if "<svg" in text else text


def _millis(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp() * 1000
    return float(value) * 1000


def keep_rate_trend(rows: Sequence[dict[str, Any]], step_seconds: int) -> alt.FacetChart:
    """Keep-rate per service per day (or hour): one small chart per service, on one scale
    from 0 to 100 %, so that services compare at a glance."""
    values = [
        {"time": _millis(r["time"]), "service": r["service"], "keep_rate": r["keep_rate"]}
        for r in rows
        if r["keep_rate"] is not None
    ]
    label = "%d %b" if step_seconds >= 86_400 else "%d %b %H:%M"
    base = (
        alt.Chart(alt.Data(values=values))
        .mark_line(point=alt.OverlayMarkDef(size=18), strokeWidth=1.6)
        .encode(
            x=alt.X(
                "time:T",
                title=None,
                scale=alt.Scale(type="utc"),
                axis=alt.Axis(format=label, labelAngle=0, tickCount=4, labelFontSize=9),
            ),
            y=alt.Y(
                "keep_rate:Q",
                title="keep-rate",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", tickCount=3),
            ),
            tooltip=[alt.Tooltip("keep_rate:Q", format=".1%")],
        )
        .properties(width=190, height=80)
    )
    return base.facet(
        facet=alt.Facet("service:N", title=None, header=alt.Header(labelFontSize=11)),
        columns=4,
    )


def budgets_left(budgets: Sequence[Budget]) -> alt.LayerChart:
    """Error budget left per objective, as a share of what it allows to break: green while
    some is left, red once overspent; the bar stops at -100 % and the label says the rest."""
    values = [
        {
            "objective": b.objective.title,
            "left": b.figures["remaining_ratio"],
            "shown": max(-1.0, min(1.0, b.figures["remaining_ratio"])),
            "label": f"{b.figures['remaining_ratio']:.0%}",
        }
        for b in budgets
        if b.figures["remaining_ratio"] is not None
    ]
    base = alt.Chart(alt.Data(values=values)).encode(
        y=alt.Y("objective:N", title=None, sort=None, axis=alt.Axis(labelLimit=330))
    )
    bars = base.mark_bar(height=12).encode(
        x=alt.X(
            "shown:Q",
            title="error budget left",
            scale=alt.Scale(domain=[-1, 1]),
            axis=alt.Axis(format="%"),
        ),
        color=alt.condition(alt.datum.left >= 0, alt.value("#2e7d32"), alt.value("#c62828")),
    )
    labels = base.mark_text(align="left", dx=4, fontSize=10).encode(
        x=alt.value(424), text="label:N"
    )
    zero = alt.Chart(alt.Data(values=[{"x": 0}])).mark_rule(color="#555").encode(x="x:Q")
    height = max(60, 20 * len(values))
    return (bars + labels + zero).properties(width=420, height=height)

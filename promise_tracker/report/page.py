"""The report as one self-contained HTML page: its style inline, its charts inline SVG, no
script and nothing fetched, so that it opens anywhere and prints as it shows.

Every number is written as ``<span data-figure="NAME" data-value="EXACT">shown</span>``: what
the store answered, beside what a reader sees, so that a test can hold one to the other.
Everything that came from the data (a service, the words a customer read) is escaped.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Iterable
from typing import Any

from promise_tracker.dashboards import budget
from promise_tracker.report import charts
from promise_tracker.report.figures import Budget, Figures
from promise_tracker.schemas.reject import REASON_MEANINGS
from promise_tracker.streams.capabilities import CONTRADICTION

COST = (
    ("minutes_on_hold_beyond_promise", "minutes on hold beyond the promised wait"),
    ("hours_delivered_late", "hours delivered late"),
    ("days_closed_early", "days a promised window closed early"),
    ("extra_steps", "steps beyond the promised number"),
)

DEFINITIONS = (
    (
        "Keep-rate",
        "kept / (kept + broken); expired (nothing measured) and cancelled promises "
        "count for neither.",
    ),
    (
        "Promises that may still break",
        "(1 - target) x decided promises in the window, minus "
        "those broken; below zero once overspent.",
    ),
    (
        "Error budget left",
        "the promises that may still break / the promises the objective "
        "allows to break, (1 - target) x decided.",
    ),
    (
        "Burn rate now",
        "broken / decided in the last hour, divided by (1 - target): 1 spends "
        "exactly what the objective allows, 0 when nothing was decided.",
    ),
    (
        "Budget runs out",
        "if the last hour goes on, remaining / (broken - (1 - target) x "
        "decided per hour) hours from now; never if the budget is not shrinking or would last "
        "past the window (a calendar window's end, a rolling window's length from now); "
        "exhausted when nothing remains.",
    ),
)


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def count(value: Any) -> str:
    return f"{int(value):,}"


def rate(value: Any) -> str:
    return "no data" if value is None else f"{float(value):.2%}"


def share(value: Any) -> str:
    return "no data" if value is None else f"{float(value):.1%}"


def amount(value: Any) -> str:
    return f"{float(value):,.1f}"


def times(value: Any) -> str:
    return f"{float(value):.2f}×"


def when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return dt.datetime.fromtimestamp(float(value), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def figure(name: str, value: Any, show: Callable[[Any], str], title: str = "") -> str:
    """A number as shown, with the exact value the store gave beside it."""
    exact = "" if value is None else repr(value) if isinstance(value, float) else str(value)
    hint = f' title="{esc(title)}"' if title else ""
    return (
        f'<span data-figure="{esc(name)}" data-value="{esc(exact)}"{hint}>{esc(show(value))}</span>'
    )


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], css: str = "") -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def _chart(name: str, svg: str) -> str:
    return f'<figure class="chart" data-chart="{esc(name)}">{svg}</figure>'


def summary(f: Figures) -> str:
    c = f.counts
    decided = c["kept"] + c["broken"]
    return (
        '<p class="summary">'
        f"{figure('decided', decided, count)} promises decided: "
        f"{figure('kept', c['kept'], count)} kept and {figure('broken', c['broken'], count)} "
        f"broken, a keep-rate of <strong>{figure('keep_rate', f.keep_rate, rate)}</strong>. "
        f"{figure('unverifiable', c['unverifiable'], count)} could not be verified (nothing "
        f"was measured) and {figure('cancelled', c['cancelled'], count)} were cancelled. "
        f"{figure('customers_affected', f.customers_affected, count)} customers had a "
        "promise broken.</p>"
    )


def _budget_row(b: Budget) -> list[str]:
    o, r, words = b.objective, b.figures, budget.explain(b.objective)
    name = f"budget:{o.name}"

    def cell(column: str, show: Callable[[Any], str]) -> str:
        return figure(f"{name}:{column}", r[column], show, words.get(column, ""))

    return [
        f'<span class="objective">{esc(o.title)}</span>'
        f'<span class="what"><code class="name">{esc(o.name)}</code> '
        f"{esc(budget.selection(o))}</span>",
        f"{esc(o.window.describe())}<br><small>since {esc(when(r['window_start']))}</small>",
        figure(f"{name}:target", r["target"], budget.percent),
        cell("keep_rate", rate),
        figure(f"{name}:decided", r["decided"], count),
        figure(f"{name}:broken", r["broken"], count),
        cell("remaining", amount),
        cell("remaining_ratio", share),
        cell("burn_rate_now", times),
        cell("runs_out", str),
    ]


def objectives(f: Figures) -> str:
    if not f.budgets:
        return (
            "<p>No objectives were given: pass <code>--objectives FILE</code> (OpenSLO SLO "
            "documents, docs/objectives.md) to see each one's error budget.</p>"
        )
    head = [
        "Objective", "Window", "Target", "Keep-rate", "Decided", "Broken",
        "May still break", "Budget left", "Burn rate now", "Runs out",
    ]  # fmt: skip
    table = _table(head, (_budget_row(b) for b in f.budgets), "budgets")
    shown = [b for b in f.budgets if b.figures["remaining_ratio"] is not None]
    chart = _chart("budgets", charts.svg(charts.budgets_left(shown))) if shown else ""
    terms = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in DEFINITIONS)
    return (
        f'{table}{chart}<dl class="definitions">{terms}</dl>'
        '<p class="note">Each objective is judged over its own window up to the end of the '
        "period; hover a number for its definition with this objective's figures.</p>"
    )


def by_service(f: Figures) -> str:
    if not f.by_service:
        return "<p>No promise was decided in this period.</p>"
    chart = ""
    if f.trend:
        chart = _chart("trend", charts.svg(charts.keep_rate_trend(f.trend, f.period.step)))
    rows = (
        [
            esc(r["service"]),
            figure(f"service:{r['service']}:keep_rate", r["keep_rate"], rate),
            figure(f"service:{r['service']}:kept", r["kept"], count),
            figure(f"service:{r['service']}:broken", r["broken"], count),
            figure(f"service:{r['service']}:unverifiable", r["unverifiable"], count),
        ]
        for r in f.by_service
    )
    head = ["Service (worst first)", "Keep-rate", "Kept", "Broken", "Unverifiable"]
    return chart + _table(head, rows, "services")


def worst(f: Figures) -> str:
    if not f.worst:
        return "<p>No promise was broken in this period.</p>"
    rows = (
        [
            esc(when(r["occurred"])),
            f"{esc(r['service'])}<br><small>{esc(r['channel'])} · {esc(r['kind'])}</small>",
            f"<q>{esc(r['customer_read'])}</q>" if r["customer_read"] else "<em>no text</em>",
            esc(r["expected"]),
            esc(r["observed"]),
            figure(f"worst:{r['violation_id']}:beyond", r["beyond_promise"], str),
        ]
        for r in f.worst
    )
    head = ["When", "Service", "What the customer read", "Promised", "What happened", "Beyond"]
    return _table(head, rows, "worst")


def _seconds(value: Any) -> float:
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


def ahead(warned: Any, broke: Any) -> str:
    """How long before the breach the warning was given: '25 days before', '6 h before',
    'at once'."""
    seconds = _seconds(broke) - _seconds(warned)
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.0f} days before"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} h before"
    return f"{seconds / 60:.0f} min before" if seconds >= 60 else "at once"


def _contradiction(r: dict[str, Any]) -> str:
    """The warning's words, or, were they not stored, the capability its label names."""
    if r["detail"]:
        return esc(r["detail"])
    capability = str(r["contradiction"] or "").removeprefix(CONTRADICTION)
    return f"<em>contradicts {esc(capability or 'a declared capability')}</em>"


def _warned(r: dict[str, Any]) -> str:
    if not r["contradiction"]:  # no warning row joined (its columns read as defaults)
        return "<em>not stored</em>"
    return f"{esc(when(r['warned']))}<br><small>{esc(ahead(r['warned'], r['occurred']))}</small>"


def foreseen(f: Figures) -> str:
    n_caught = f.foreseen.get("could_have_been_caught", 0)
    n_broken = f.foreseen.get("broken_promises", 0)
    caught = figure("foreseen:could_have_been_caught", n_caught, count)
    total = figure("foreseen:broken_promises", n_broken, count)
    if n_broken == 0:
        return f"<p>No promise was broken in this period ({total}): none to catch ({caught}).</p>"
    if n_caught == 0:
        return (
            f"<p>None ({caught}) of the {total} broken promises had a contradiction warning in "
            "force: not one contradicted a declared capability it relied on before it broke."
            "</p>"
        )
    lead = (
        f"<p><strong>{caught}</strong> of the {total} broken promises had a contradiction "
        "warning in force before they broke: their terms contradicted a declared capability "
        "they relied on (a shop's window, a channel's dependency), and the warning said so as "
        "soon as both were known: when the promise was issued, or when the capability was "
        "declared after it.</p>"
    )
    rows = (
        [
            esc(when(r["occurred"])),
            f"{esc(r['service'])}<br><small>{esc(r['channel'])} · {esc(r['kind'])}</small>",
            f"<q>{esc(r['customer_read'])}</q>" if r["customer_read"] else "<em>no text</em>",
            _contradiction(r),
            _warned(r),
        ]
        for r in f.foreseen_list
    )
    head = ["Broke", "Service", "What the customer read", "The contradiction", "Warned"]
    shown = len(f.foreseen_list)
    more = n_caught > shown
    note = f'<p class="note">The {shown} most recent, newest first.</p>' if more else ""
    return lead + _table(head, rows, "foreseen") + note


def cost(f: Figures) -> str:
    items = "".join(
        f"<li>{figure(f'cost:{key}', f.cost[key], amount)} {esc(words)}</li>" for key, words in COST
    )
    return (
        f'<ul class="cost">{items}<li>{figure("customers", f.customers_affected, count)} '
        "customers affected (distinct customers with a broken promise)</li></ul>"
    )


def warnings(f: Figures) -> str:
    saved, anyway = f.warnings.get("saved", 0), f.warnings.get("broken_anyway", 0)
    return (
        "<p>Of the promises an at-risk warning named in this period (SPEC 4.1: warned while "
        f"they could still be kept), {figure('warnings:saved', saved, count)} were then "
        f"kept and {figure('warnings:broken_anyway', anyway, count)} broke anyway.</p>"
    )


def rejects(f: Figures) -> str:
    if not f.rejects:
        return "<p>No input was rejected in this period: every event counted.</p>"
    total = sum(int(r["rejects"]) for r in f.rejects)
    rows = [
        [
            esc(r["reason"]),
            figure(f"rejects:{r['reason']}", r["rejects"], count),
            esc(REASON_MEANINGS.get(r["reason"], "")),
        ]
        for r in f.rejects
    ]
    rows.append(["<strong>total</strong>", figure("rejects:total", total, count), ""])
    return (
        "<p>Events refused as they arrived: the promises and deliveries they carried are in "
        "none of the figures above. Each one is kept with its original bytes (the "
        "<code>rejects</code> table) for its sender to fix.</p>"
        + _table(["Reason", "Events", "What it means"], rows, "rejects")
    )


def render(f: Figures, generated: float) -> str:
    """The whole page."""
    start, end = when(f.period.start), when(f.period.end)
    title = f"Promise keeping, {start[:10]} to {end[:10]}"
    sections = [
        ("objectives", "Objectives and their error budgets", objectives(f)),
        ("services", "Keep-rate by service", by_service(f)),
        ("worst", "The worst broken promises", worst(f)),
        ("foreseen", "Broken promises we could have caught before issuing them", foreseen(f)),
        ("cost", "What the broken promises cost customers", cost(f)),
        ("warnings", "Promises warned in time", warnings(f)),
        ("rejects", "Rejected input that hides data", rejects(f)),
    ]
    body = "".join(
        f'<section id="{key}"><h2>{esc(heading)}</h2>{content}</section>'
        for key, heading, content in sections
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{STYLE}</style>
</head>
<body data-period-start="{f.period.start!r}" data-period-end="{f.period.end!r}">
<header>
<h1>{esc(title)}</h1>
<p class="period">From {esc(start)} to {esc(end)}. Generated {esc(when(generated))} from
{esc(f.where)}.</p>
{summary(f)}
</header>
{body}
<footer>promise-tracker report · every figure comes from the same SQL as the leadership
dashboard (docs/report.md)</footer>
</body>
</html>
"""


STYLE = """
@page { size: A4 landscape; margin: 12mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font: 14px/1.45 "DejaVu Sans", Helvetica, Arial, sans-serif; color: #1d2329;
       margin: 0 auto; padding: 24px; max-width: 1200px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #1d2329;
     break-after: avoid; }
.period, .note, footer { color: #555; font-size: 12px; }
.summary { font-size: 16px; background: #f3f5f7; padding: 10px 14px; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; font-size: 12.5px; }
th { text-align: left; background: #e8ebef; padding: 6px 8px; font-weight: 600; }
td { padding: 6px 8px; border-bottom: 1px solid #e1e4e8; vertical-align: top; }
tr { break-inside: avoid; }
td span[data-figure] { font-variant-numeric: tabular-nums; white-space: nowrap; }
.objective { display: block; font-weight: 600; }
.what { display: block; color: #555; font-size: 11.5px; }
code.name { white-space: nowrap; color: #1d2329; }
q { font-style: italic; }
figure.chart { margin: 12px 0; break-inside: avoid; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
dl.definitions { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px;
                 font-size: 12px; color: #333; }
dl.definitions dt { font-weight: 600; }
dl.definitions dd { margin: 0; }
ul.cost { font-size: 15px; }
footer { margin-top: 32px; border-top: 1px solid #e1e4e8; padding-top: 8px; }
"""

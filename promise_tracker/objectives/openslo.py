"""One OpenSLO v1 ``SLO`` document (a parsed YAML mapping) into an ``Objective``, or every
problem with it. The shape we accept is docs/objectives.md; what OpenSLO allows and we do not
support (timeslices, threshold indicators, references, alert policies, other kinds) is
refused by its name, never ignored.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from promise_tracker.objectives.model import (
    LABEL_PREFIX,
    PAGE_MIN_DECIDED,
    Objective,
    Window,
)
from promise_tracker.schemas.models import CHANNELS, PROMISE_KINDS

API_VERSION = "openslo/v1"
SOURCE_TYPE = "promise-tracker"
MIN_DECIDED_ANNOTATION = "promise-tracker/page-min-decided"
NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DURATION = re.compile(r"([1-9][0-9]*)([a-zA-Z])")
ROLLING_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
CALENDAR_UNITS = {"1M": "month", "1Q": "quarter"}
OUTCOMES = {"good": "kept", "bad": "broken", "total": "decided"}

# Fields OpenSLO v1 defines that we refuse, by path (list indices dropped, the ratio's good,
# bad and total as *), with why and what to do instead.
_RATIO = "spec.indicator.spec.ratioMetric"
_RAW = "raw ratios are not supported; count good (outcome: kept) and total (outcome: decided)"
_TIMESLICES = "Timeslices budgeting is not supported; use budgetingMethod: Occurrences and "
_COMPOSITE = "composite objectives are not supported; one indicator per SLO, under spec.indicator"
_THRESHOLD = "threshold objectives (op, value) are not supported; give only target"
REFUSED = {
    "spec.indicatorRef": "a reference to an SLI document is not supported; write the "
    "indicator inline under spec.indicator",
    "spec.alertPolicies": "alert policies are not read: the alert rules are generated from "
    "the objective (docs/objectives.md); remove it",
    "spec.indicator.spec.thresholdMetric": "threshold indicators are not supported: a "
    "promise is kept or broken; use ratioMetric with good (kept) and total (decided)",
    f"{_RATIO}.rawType": _RAW,
    f"{_RATIO}.raw": _RAW,
    f"{_RATIO}.*.metricSource.metricSourceRef": "a reference to a DataSource document is not "
    "supported; write the metricSource with type: promise-tracker inline",
    "spec.objectives.op": _THRESHOLD,
    "spec.objectives.value": _THRESHOLD,
    "spec.objectives.timeSliceTarget": _TIMESLICES + "remove timeSliceTarget",
    "spec.objectives.timeSliceWindow": _TIMESLICES + "remove timeSliceWindow",
    "spec.objectives.indicator": _COMPOSITE,
    "spec.objectives.indicatorRef": _COMPOSITE,
    "spec.objectives.compositeWeight": _COMPOSITE,
}
KINDS_REFUSED = {
    "SLI": "write the indicator inline under spec.indicator of an SLO",
    "Service": "an SLO's spec.service names the promises' source directly; remove it",
    "DataSource": "the data source is promise-tracker's own store; remove it",
    "AlertPolicy": "alert rules are generated from each SLO; remove it",
    "AlertCondition": "alert rules are generated from each SLO; remove it",
    "AlertNotificationTarget": "route alerts in Alertmanager (docs/alerting.md); remove it",
}


@dataclass
class Document:
    """One document of the file, and the problems found in it so far."""

    file: str
    number: int  # 1-based, in file order
    name: str = "?"
    problems: list[str] = field(default_factory=list)

    def fail(self, where: str, problem: str) -> None:
        """One problem at the field path ``where`` ("" for the whole document)."""
        field = f" {where}" if where else ""
        self.problems.append(f"{self.file}: document {self.number} ({self.name}){field}: {problem}")

    def mapping(self, node: Any, where: str, known: tuple[str, ...]) -> dict[str, Any]:
        """``node`` as a mapping, with every key that is not in ``known`` reported (refused by
        name when OpenSLO defines it); {} if it is not a mapping."""
        if not isinstance(node, dict):
            self.fail(where, f"must be a mapping, not {_show(node)}; see docs/objectives.md")
            return {}
        for key in node:
            path = f"{where}.{key}" if where else str(key)
            if key in known:
                continue
            why = REFUSED.get(_generic(path))
            if why:
                self.fail(path, why)
            else:
                hint = _close(str(key), known) or f"known: {', '.join(known)}"
                self.fail(path, f"unknown field; remove it or fix its spelling ({hint})")
        return {k: v for k, v in node.items() if k in known}

    def text(self, node: Any, where: str, required: bool = True) -> str | None:
        if node is None:
            if required:
                self.fail(where, "missing; give it (see docs/objectives.md)")
            return None
        if not isinstance(node, str) or not node.strip():
            self.fail(where, f"must be non-empty text, not {_show(node)}; quote it")
            return None
        return node


def objective(doc: Document, node: Any) -> Objective | None:
    """The objective of one document, or None with its problems in ``doc.problems``."""
    named = node.get("metadata") if isinstance(node, dict) else None
    if isinstance(named, dict) and isinstance(named.get("name"), str):
        doc.name = named["name"]  # every problem of the document says its name
    top = doc.mapping(node, "", ("apiVersion", "kind", "metadata", "spec"))
    if not top:
        return None
    metadata = doc.mapping(top.get("metadata"), "metadata", _META)
    name = doc.text(metadata.get("name"), "metadata.name")
    if name is not None:
        if not NAME.fullmatch(name):
            doc.fail(
                "metadata.name",
                "must be lower-case letters, digits and '-' (at most 63, "
                "starting and ending with a letter or digit), as OpenSLO requires; rename it",
            )
    version, kind = top.get("apiVersion"), top.get("kind")
    if version != API_VERSION:
        doc.fail(
            "apiVersion", f"{_show(version)} is not supported; write apiVersion: {API_VERSION}"
        )
    if kind != "SLO":
        why = KINDS_REFUSED.get(str(kind), "only SLO documents are read; remove it")
        doc.fail("kind", f"{_show(kind)} is not supported: {why}")
        return None
    spec = doc.mapping(top.get("spec"), "spec", _SPEC)
    service = doc.text(spec.get("service"), "spec.service")
    display = doc.text(metadata.get("displayName"), "metadata.displayName", required=False)
    described = doc.text(spec.get("description"), "spec.description", required=False)
    _budgeting(doc, spec.get("budgetingMethod"))
    filters = _indicator(doc, spec.get("indicator"), service)
    window = _window(doc, spec.get("timeWindow"))
    target = _target(doc, spec.get("objectives"))
    guard = _min_decided(doc, metadata.get("annotations"))
    if doc.problems or None in (name, service, filters, window, target):
        return None
    assert name and service and filters is not None and window and target is not None
    return Objective(name, display, service, filters, target, window, described, guard)


_META = ("name", "displayName", "labels", "annotations")
_SPEC = ("description", "service", "indicator", "budgetingMethod", "timeWindow", "objectives")


def _budgeting(doc: Document, method: Any) -> None:
    if method == "Occurrences":
        return
    where = "spec.budgetingMethod"
    if method in ("Timeslices", "RatioTimeslices"):
        doc.fail(
            where,
            f"{method} is not supported: a promise is counted once, kept or "
            "broken; write budgetingMethod: Occurrences",
        )
    elif method is None:
        doc.fail(where, "missing; write budgetingMethod: Occurrences")
    else:
        doc.fail(where, f"{_show(method)} is not an OpenSLO budgeting method; write Occurrences")


def _indicator(doc: Document, node: Any, service: str | None) -> dict[str, str] | None:
    where = "spec.indicator"
    if node is None:
        doc.fail(where, "missing; give a ratioMetric over promise-tracker (docs/objectives.md)")
        return None
    indicator = doc.mapping(node, where, ("metadata", "spec"))
    doc.mapping(indicator.get("metadata", {}), f"{where}.metadata", _META)
    spec = doc.mapping(indicator.get("spec"), f"{where}.spec", ("ratioMetric",))
    if "ratioMetric" not in spec:
        if isinstance(indicator.get("spec"), dict) and "thresholdMetric" not in indicator["spec"]:
            doc.fail(
                f"{where}.spec.ratioMetric",
                "missing; give good (outcome: kept) and total (outcome: decided)",
            )
        return None
    where = f"{where}.spec.ratioMetric"
    ratio = doc.mapping(spec["ratioMetric"], where, ("counter", "good", "bad", "total"))
    if "counter" in ratio and not isinstance(ratio["counter"], bool):
        doc.fail(f"{where}.counter", f"must be true or false, not {_show(ratio['counter'])}")
    given = [part for part in ("good", "bad") if part in ratio]
    if len(given) != 1 or "total" not in ratio:
        doc.fail(where, "give total and exactly one of good and bad (docs/objectives.md)")
    selected = {p: _source(doc, ratio[p], f"{where}.{p}", p) for p in (*given, "total")}
    total = selected.get("total")
    for part in given:
        if selected[part] and total is not None and selected[part] != total:
            doc.fail(
                f"{where}.{part}",
                f"selects other promises than total ({selected[part]} "
                f"against {total}); give {part} the same filters as total, or none",
            )
    if total is None or service is None:
        return None
    named = total.pop("service", service)
    if named != service:
        doc.fail(
            f"{where}.total.metricSource.spec.service",
            f"{named!r} is not spec.service ({service!r}); remove it, the SLO's service applies",
        )
    return {"service": service, **total}


def _source(doc: Document, node: Any, where: str, part: str) -> dict[str, str]:
    """The filters of one counted part (good, bad or total) of the ratio."""
    metric = doc.mapping(node, where, ("metricSource",))
    where = f"{where}.metricSource"
    source = doc.mapping(metric.get("metricSource"), where, ("type", "spec"))
    if source.get("type") != SOURCE_TYPE:
        doc.fail(
            f"{where}.type",
            f"{_show(source.get('type'))} is not supported; write "
            f"type: {SOURCE_TYPE} (promise outcomes)",
        )
    where = f"{where}.spec"
    spec = source.get("spec")
    if not isinstance(spec, dict):
        doc.fail(where, f"must be a mapping with outcome: {OUTCOMES[part]}, not {_show(spec)}")
        spec = {}
    for key in spec:
        if key not in _SOURCE_SPEC:
            hint = _close(str(key), _SOURCE_SPEC) or f"{{{key}: VALUE}} for a promise label"
            doc.fail(
                f"{where}.{key}",
                f"unknown filter; filter by service, channel, kind or labels ({hint})",
            )
    outcome = spec.get("outcome")
    if outcome != OUTCOMES[part]:
        doc.fail(
            f"{where}.outcome",
            f"{_show(outcome)}: {part} counts {_COUNTS[part]}; write outcome: {OUTCOMES[part]}",
        )
    filters: dict[str, str] = {}
    for key, allowed in (("service", None), ("channel", CHANNELS), ("kind", PROMISE_KINDS)):
        value = doc.text(spec.get(key), f"{where}.{key}", required=False)
        if value is not None and allowed and value not in allowed:
            doc.fail(
                f"{where}.{key}", f"{value!r} is not a promise {key}; one of {', '.join(allowed)}"
            )
        elif value is not None:
            filters[key] = value
    labels = _string_map(doc, spec.get("labels"), f"{where}.labels")
    filters.update({LABEL_PREFIX + key: value for key, value in sorted(labels.items())})
    return filters


_SOURCE_SPEC = ("outcome", "service", "channel", "kind", "labels")
_COUNTS = {
    "good": "kept promises",
    "bad": "broken promises",
    "total": "decided promises (kept or broken; expired and cancelled count for neither)",
}


def _window(doc: Document, node: Any) -> Window | None:
    where = "spec.timeWindow"
    if not isinstance(node, list) or len(node) != 1:
        doc.fail(
            where,
            f"must be a list of one window, not {_show(node)}; e.g. "
            "[{duration: 28d, isRolling: true}]",
        )
        return None
    where += "[0]"
    window = doc.mapping(node[0], where, ("duration", "isRolling", "calendar"))
    rolling, duration = window.get("isRolling", False), window.get("duration")
    if not isinstance(rolling, bool):
        doc.fail(f"{where}.isRolling", f"must be true or false, not {_show(rolling)}")
        return None
    if rolling:
        return _rolling(doc, where, window)
    if "calendar" not in window:
        doc.fail(
            where,
            "a window that is not rolling needs calendar: {startTime, timeZone}; "
            "or write isRolling: true",
        )
        return None
    if duration not in CALENDAR_UNITS:
        doc.fail(
            f"{where}.duration",
            f"{_show(duration)} is not supported for a calendar "
            "window; write 1M (a month) or 1Q (a quarter)",
        )
        return None
    unit = CALENDAR_UNITS[duration]
    calendar = doc.mapping(window["calendar"], f"{where}.calendar", ("startTime", "timeZone"))
    zone = _zone(doc, calendar.get("timeZone"), f"{where}.calendar.timeZone")
    _start(doc, calendar.get("startTime"), f"{where}.calendar.startTime", unit)
    if zone is None:
        return None
    return Window("calendar", None, "month" if unit == "month" else "quarter", zone)


def _rolling(doc: Document, where: str, window: dict[str, Any]) -> Window | None:
    if "calendar" in window:
        doc.fail(
            f"{where}.calendar",
            "a rolling window has no calendar; remove it, or write "
            "isRolling: false for a calendar month or quarter",
        )
    duration = window.get("duration")
    match = DURATION.fullmatch(duration) if isinstance(duration, str) else None
    if match is None or match[2] not in ROLLING_UNITS:
        doc.fail(
            f"{where}.duration",
            f"{_show(duration)} is not a rolling duration; write "
            "a number and m, h, d or w (e.g. 28d); for a calendar month or quarter write "
            "isRolling: false with calendar",
        )
        return None
    return Window("rolling", float(int(match[1]) * ROLLING_UNITS[match[2]]), None, "UTC")


def _zone(doc: Document, node: Any, where: str) -> str | None:
    if node is None:
        return "UTC"
    name = doc.text(node, where)
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        example = _close(name, sorted(available_timezones())) or "write e.g. Europe/Paris or UTC"
        doc.fail(where, f"{name!r} is not an IANA time zone; {example}")
        return None
    return name


def _start(doc: Document, node: Any, where: str, unit: str) -> None:
    """OpenSLO's ``startTime`` anchors the windows: it must begin a month (or a calendar
    quarter) at midnight, local time, or the windows would not be calendar months."""
    if node is None:
        return
    start: datetime | None = None
    if isinstance(node, datetime):
        start = node
    elif isinstance(node, date):
        start = datetime.combine(node, time())
    elif isinstance(node, str):
        try:
            start = datetime.fromisoformat(node)
        except ValueError:
            pass
    form = "'2026-01-01 00:00:00' (local time in timeZone)"
    if start is None:
        doc.fail(where, f"{_show(node)} is not a date and time; write e.g. {form}")
    elif start.utcoffset() is not None:
        doc.fail(where, f"{_show(node)} has an offset; write the local time, e.g. {form}")
    elif start.day != 1 or start.time() != time() or (unit == "quarter" and start.month % 3 != 1):
        first = (
            "a calendar quarter (January, April, July or October)"
            if unit == "quarter"
            else "a month"
        )
        doc.fail(where, f"{_show(node)} does not start {first} at midnight; write e.g. {form}")


def _target(doc: Document, node: Any) -> float | None:
    where = "spec.objectives"
    if not isinstance(node, list) or len(node) != 1:
        many = isinstance(node, list) and len(node) > 1
        doc.fail(
            where,
            (
                f"has {len(node)} objectives; one per SLO is supported: write one SLO "
                "document per target"
                if many
                else f"must be a list of one objective, not {_show(node)}; e.g. [{{target: 0.99}}]"
            ),
        )
        return None
    where += "[0]"
    item = doc.mapping(node[0], where, ("displayName", "target", "targetPercent"))
    doc.text(item.get("displayName"), f"{where}.displayName", required=False)
    if "target" in item and "targetPercent" in item:
        doc.fail(where, "give target or targetPercent, not both")
        return None
    percent = "targetPercent" in item
    key, scale = ("targetPercent", 100.0) if percent else ("target", 1.0)
    value = item.get(key)
    if value is None:
        doc.fail(
            f"{where}.target",
            "missing; give the share of decided promises to keep, e.g. target: 0.99",
        )
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < scale:
        bounds = "0 and 100, e.g. 99.5" if percent else "0 and 1, e.g. 0.99 for 99 %"
        doc.fail(f"{where}.{key}", f"{_show(value)} is not strictly between {bounds}")
        return None
    return float(value) / scale


def _min_decided(doc: Document, node: Any) -> int:
    annotations = _string_map(doc, node, "metadata.annotations", numbers=True)
    where = f"metadata.annotations.{MIN_DECIDED_ANNOTATION}"
    for key in annotations:
        if key.startswith("promise-tracker/") and key != MIN_DECIDED_ANNOTATION:
            doc.fail(
                f"metadata.annotations.{key}",
                f"unknown promise-tracker annotation; the one there is: {MIN_DECIDED_ANNOTATION}",
            )
    value = annotations.get(MIN_DECIDED_ANNOTATION)
    if value is None:
        return PAGE_MIN_DECIDED
    if not value.isdigit():
        doc.fail(where, f'{value!r} is not a whole number of promises; e.g. "20"')
        return PAGE_MIN_DECIDED
    return int(value)


def _string_map(doc: Document, node: Any, where: str, numbers: bool = False) -> dict[str, str]:
    """A mapping of text to text (labels, annotations); a number is taken as its text where
    ``numbers``."""
    if node is None:
        return {}
    if not isinstance(node, dict):
        doc.fail(where, f"must be a mapping of names to values, not {_show(node)}")
        return {}
    found = {}
    for key, value in node.items():
        if numbers and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(key, str) or not key or not isinstance(value, str):
            doc.fail(f"{where}.{key}", f"{_show(value)}: names and values must be text; quote them")
        else:
            found[key] = value
    return found


def _close(word: str, known: Iterable[str]) -> str | None:
    """``did you mean X?`` for the known word closest to a misspelt one, if any is close."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {close[0]}?" if close else None


def _generic(path: str) -> str:
    """The path as REFUSED names it: no list indices, the ratio's parts as *."""
    path = re.sub(r"\[\d+\]", "", path)
    return re.sub(r"\.(good|bad|total)\.", ".*.", path)


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    shown = repr(value) if isinstance(value, str) else str(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."

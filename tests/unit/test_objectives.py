"""The objectives file (docs/objectives.md): OpenSLO v1 SLO documents into typed objectives,
every problem reported with its document, field and fix, and the windows' bounds."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from promise_tracker.errors import ObjectivesError, SettingsError
from promise_tracker.objectives.load import check_objectives, load_objectives
from promise_tracker.objectives.model import Objective, Window
from promise_tracker.synthetic import SERVICES
from tests.cli import cli
from tests.support import ROOT

EXAMPLE = ROOT / "examples" / "objectives.yaml"


def _slo(name: str = "shop-checkout") -> dict[str, Any]:
    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": name, "displayName": "Checkout in three steps"},
        "spec": {
            "description": "What the checkout page promises.",
            "service": "shop/checkout",
            "budgetingMethod": "Occurrences",
            "timeWindow": [{"duration": "28d", "isRolling": True}],
            "indicator": {
                "metadata": {"name": "checkout-keep-rate"},
                "spec": {
                    "ratioMetric": {
                        "counter": True,
                        "good": _source("kept"),
                        "total": _source("decided"),
                    }
                },
            },
            "objectives": [{"displayName": "99%", "target": 0.99}],
        },
    }


def _source(outcome: str, **filters: Any) -> dict[str, Any]:
    return {"metricSource": {"type": "promise-tracker", "spec": {"outcome": outcome, **filters}}}


def _write(tmp_path: Path, *documents: Any) -> Path:
    path = tmp_path / "objectives.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def _spec(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]


def _ratio(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["indicator"]["spec"]["ratioMetric"]


def _total(d: dict[str, Any]) -> dict[str, Any]:
    return _ratio(d)["total"]["metricSource"]["spec"]


def _window(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["timeWindow"][0]


def _calendar(duration: str = "1M", start: Any = "2026-01-01 00:00:00", zone: Any = "UTC"):
    def change(d: dict[str, Any]) -> None:
        d["spec"]["timeWindow"] = [
            {
                "duration": duration,
                "isRolling": False,
                "calendar": {"startTime": start, "timeZone": zone},
            }
        ]

    return change


def _objective(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        d["spec"]["objectives"] = [fields]

    return change


RATIO = "spec.indicator.spec.ratioMetric"
TOTAL = f"{RATIO}.total.metricSource.spec"

# (what is changed, the field named, the words of the problem and its fix)
CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    ("unknown top field", lambda d: d.update(extra=1), "extra", "unknown field"),
    (
        "misspelt field",
        lambda d: _window(d).update(durration="28d"),
        "spec.timeWindow[0].durration",
        "unknown field; remove it or fix its spelling (did you mean duration?)",
    ),
    ("old api version", lambda d: d.update(apiVersion="openslo/v1alpha"), "apiVersion",
     "'openslo/v1alpha' is not supported; write apiVersion: openslo/v1"),
    ("SLI document", lambda d: d.update(kind="SLI"), "kind",
     "'SLI' is not supported: write the indicator inline under spec.indicator of an SLO"),
    ("Service document", lambda d: d.update(kind="Service"), "kind", "'Service' is not supported"),
    ("unknown kind", lambda d: d.update(kind="Dashboard"), "kind", "only SLO documents are read"),
    ("Timeslices", lambda d: _spec(d).update(budgetingMethod="Timeslices"),
     "spec.budgetingMethod", "Timeslices is not supported: a promise is counted once"),
    ("RatioTimeslices", lambda d: _spec(d).update(budgetingMethod="RatioTimeslices"),
     "spec.budgetingMethod", "RatioTimeslices is not supported"),
    ("no budgeting", lambda d: _spec(d).pop("budgetingMethod"), "spec.budgetingMethod",
     "missing; write budgetingMethod: Occurrences"),
    ("bad budgeting", lambda d: _spec(d).update(budgetingMethod="Events"), "spec.budgetingMethod",
     "'Events' is not an OpenSLO budgeting method; write Occurrences"),
    ("threshold indicator",
     lambda d: d["spec"]["indicator"].update(spec={"thresholdMetric": {"metricSource": {}}}),
     "spec.indicator.spec.thresholdMetric", "threshold indicators are not supported"),
    ("raw ratio", lambda d: _ratio(d).update(rawType="success"), f"{RATIO}.rawType",
     "raw ratios are not supported"),
    ("indicator reference", lambda d: _spec(d).update(indicatorRef="checkout"),
     "spec.indicatorRef", "a reference to an SLI document is not supported"),
    ("alert policies", lambda d: _spec(d).update(alertPolicies=["x"]), "spec.alertPolicies",
     "the alert rules are generated from the objective"),
    ("data source reference",
     lambda d: _ratio(d)["good"]["metricSource"].update(metricSourceRef="ch"),
     f"{RATIO}.good.metricSource.metricSourceRef", "a reference to a DataSource document"),
    ("other source type", lambda d: _ratio(d)["total"]["metricSource"].update(type="Prometheus"),
     f"{RATIO}.total.metricSource.type",
     "'Prometheus' is not supported; write type: promise-tracker"),
    ("target 1", _objective(target=1), "spec.objectives[0].target",
     "1 is not strictly between 0 and 1, e.g. 0.99 for 99 %"),
    ("target 0", _objective(target=0), "spec.objectives[0].target", "not strictly between 0 and 1"),
    ("target 99", _objective(target=99), "spec.objectives[0].target", "99 is not strictly between"),
    ("negative target", _objective(target=-0.5), "spec.objectives[0].target", "not strictly"),
    ("text target", _objective(target="0.99"), "spec.objectives[0].target",
     "'0.99' is not strictly"),
    ("no target", _objective(displayName="x"), "spec.objectives[0].target",
     "missing; give the share of decided promises to keep, e.g. target: 0.99"),
    ("target percent 100", _objective(targetPercent=100), "spec.objectives[0].targetPercent",
     "100 is not strictly between 0 and 100"),
    ("both targets", _objective(target=0.9, targetPercent=90), "spec.objectives[0]",
     "give target or targetPercent, not both"),
    ("two objectives",
     lambda d: _spec(d).update(objectives=[{"target": 0.9}, {"target": 0.99}]),
     "spec.objectives", "has 2 objectives; one per SLO is supported"),
    ("threshold objective", _objective(target=0.99, op="lte", value=2),
     "spec.objectives[0].op", "threshold objectives (op, value) are not supported"),
    ("timeslice target", _objective(target=0.99, timeSliceTarget=0.9),
     "spec.objectives[0].timeSliceTarget", "Timeslices budgeting is not supported"),
    ("composite", _objective(target=0.99, compositeWeight=2),
     "spec.objectives[0].compositeWeight", "composite objectives are not supported"),
    ("unknown filter", lambda d: _total(d).update(region="eu"), f"{TOTAL}.region",
     "unknown filter; filter by service, channel, kind or labels ({region: VALUE}"),
    ("misspelt filter", lambda d: _total(d).update(chanel="sms"), f"{TOTAL}.chanel",
     "unknown filter; filter by service, channel, kind or labels (did you mean channel?)"),
    ("misspelt zone", _calendar(zone="Europe/Pariss"), "spec.timeWindow[0].calendar.timeZone",
     "'Europe/Pariss' is not an IANA time zone; did you mean Europe/Paris?"),
    ("unknown channel", lambda d: _total(d).update(channel="fax"), f"{TOTAL}.channel",
     "'fax' is not a promise channel; one of email, card"),
    ("unknown kind filter", lambda d: _total(d).update(kind="deliver-by"), f"{TOTAL}.kind",
     "'deliver-by' is not a promise kind; one of deadline"),
    ("number label", lambda d: _total(d).update(labels={"tier": 1}), f"{TOTAL}.labels.tier",
     "1: names and values must be text; quote them"),
    ("other service", lambda d: _total(d).update(service="shop/other"), f"{TOTAL}.service",
     "'shop/other' is not spec.service ('shop/checkout'); remove it"),
    ("good counts broken", lambda d: _ratio(d).update(good=_source("broken")),
     f"{RATIO}.good.metricSource.spec.outcome",
     "'broken': good counts kept promises; write outcome: kept"),
    ("total counts kept", lambda d: _ratio(d).update(total=_source("kept")),
     f"{TOTAL}.outcome", "total counts decided promises (kept or broken; expired and cancelled"),
    ("good narrower than total", lambda d: _ratio(d).update(good=_source("kept", channel="sms")),
     f"{RATIO}.good", "selects other promises than total"),
    ("good and bad", lambda d: _ratio(d).update(bad=_source("broken")), RATIO,
     "give total and exactly one of good and bad"),
    ("no indicator", lambda d: _spec(d).pop("indicator"), "spec.indicator", "missing"),
    ("unknown zone", _calendar(zone="Mars/Olympus_Mons"), "spec.timeWindow[0].calendar.timeZone",
     "'Mars/Olympus_Mons' is not an IANA time zone; write e.g. Europe/Paris or UTC"),
    ("calendar year", _calendar(duration="1Y"), "spec.timeWindow[0].duration",
     "'1Y' is not supported for a calendar window; write 1M (a month) or 1Q (a quarter)"),
    ("two calendar months", _calendar(duration="2M"), "spec.timeWindow[0].duration",
     "'2M' is not supported"),
    ("rolling month", lambda d: _window(d).update(duration="1M"), "spec.timeWindow[0].duration",
     "'1M' is not a rolling duration; write a number and m, h, d or w (e.g. 28d)"),
    ("duration in words", lambda d: _window(d).update(duration="28 days"),
     "spec.timeWindow[0].duration", "'28 days' is not a rolling duration"),
    ("start mid-month", _calendar(start="2026-01-15 00:00:00"),
     "spec.timeWindow[0].calendar.startTime", "does not start a month at midnight"),
    ("quarter from February", _calendar("1Q", start="2026-02-01 00:00:00"),
     "spec.timeWindow[0].calendar.startTime", "does not start a calendar quarter (January, April"),
    ("start with an offset", _calendar(start="2026-01-01T00:00:00+02:00"),
     "spec.timeWindow[0].calendar.startTime", "has an offset; write the local time"),
    ("start not a time", _calendar(start="soon"), "spec.timeWindow[0].calendar.startTime",
     "'soon' is not a date and time"),
    ("isRolling text", lambda d: _window(d).update(isRolling="yes"),
     "spec.timeWindow[0].isRolling", "must be true or false, not 'yes'"),
    ("rolling with a calendar", lambda d: _window(d).update(calendar={"timeZone": "UTC"}),
     "spec.timeWindow[0].calendar", "a rolling window has no calendar"),
    ("not rolling, no calendar", lambda d: _window(d).update(isRolling=False),
     "spec.timeWindow[0]", "a window that is not rolling needs calendar"),
    ("two windows",
     lambda d: _spec(d).update(timeWindow=[{"duration": "7d", "isRolling": True}] * 2),
     "spec.timeWindow", "must be a list of one window"),
    ("no service", lambda d: _spec(d).pop("service"), "spec.service", "missing; give it"),
    ("no name", lambda d: d["metadata"].pop("name"), "metadata.name", "missing"),
    ("bad name", lambda d: d["metadata"].update(name="Shop_Checkout"), "metadata.name",
     "must be lower-case letters, digits and '-'"),
    ("bad guard", lambda d: d["metadata"].update(
        annotations={"promise-tracker/page-min-decided": "many"}),
     "metadata.annotations.promise-tracker/page-min-decided", "'many' is not a whole number"),
    ("unknown annotation", lambda d: d["metadata"].update(
        annotations={"promise-tracker/page-after": "5m"}),
     "metadata.annotations.promise-tracker/page-after", "unknown promise-tracker annotation"),
    ("spec not a mapping", lambda d: d.update(spec=["x"]), "spec", "must be a mapping, not ['x']"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_every_problem_names_its_document_field_and_fix(tmp_path, change, field, words):
    document = _slo()
    change(document)
    name = document["metadata"].get("name", "?")
    problems = check_objectives(_write(tmp_path, document))
    prefix = f"{tmp_path / 'objectives.yaml'}: document 1 ({name}) {field}: "
    assert any(p.startswith(prefix) and words in p for p in problems), problems
    with pytest.raises(ObjectivesError) as raised:
        load_objectives(tmp_path / "objectives.yaml")
    assert raised.value.problems == problems
    assert str(raised.value).splitlines() == problems


def test_a_valid_document_is_a_typed_objective(tmp_path):
    document = _slo()
    _total(document).update(channel="web", kind="max_steps", labels={"team": "growth"})
    document["metadata"]["annotations"] = {"promise-tracker/page-min-decided": 50, "other/x": "y"}
    [objective] = load_objectives(_write(tmp_path, document))
    assert objective == Objective(
        name="shop-checkout",
        display_name="Checkout in three steps",
        service="shop/checkout",
        filters={
            "service": "shop/checkout",
            "channel": "web",
            "kind": "max_steps",
            "label:team": "growth",
        },
        target=0.99,
        window=Window("rolling", 28 * 86400.0, None, "UTC"),
        description="What the checkout page promises.",
        page_min_decided=50,
    )
    assert objective.labels == {"team": "growth"}
    assert objective.error_budget == pytest.approx(0.01)


def test_the_other_accepted_shapes(tmp_path):
    bad = _slo("bad-form")
    _ratio(bad).pop("good")
    _ratio(bad)["bad"] = _source("broken")
    percent = _slo("percent")
    percent["spec"]["objectives"] = [{"targetPercent": 99.5}]
    quarter = _slo("quarter")
    _calendar("1Q", dt.date(2026, 4, 1), "Europe/Paris")(quarter)  # a YAML date
    month = _slo("month")
    _calendar("1M", None, None)(month)
    month["spec"]["timeWindow"][0]["calendar"] = {}  # no start, no zone: months in UTC
    objectives = load_objectives(_write(tmp_path, bad, percent, quarter, month))
    assert [o.name for o in objectives] == ["bad-form", "percent", "quarter", "month"]
    assert objectives[0].target == 0.99
    assert objectives[1].target == pytest.approx(0.995)
    assert objectives[2].window == Window("calendar", None, "quarter", "Europe/Paris")
    assert objectives[3].window == Window("calendar", None, "month", "UTC")
    assert objectives[1].window.describe() == "rolling 28 days"
    assert objectives[2].window.describe() == "calendar quarter (Europe/Paris)"


def test_every_problem_of_every_document_is_listed(tmp_path):
    first = _slo("first")
    first["spec"]["budgetingMethod"] = "Timeslices"
    first["spec"]["objectives"] = [{"target": 2}]
    _total(first)["region"] = "eu"
    second = _slo("first")  # the same name again
    third = {"apiVersion": "openslo/v1", "kind": "SLI", "metadata": {"name": "sli"}}
    problems = check_objectives(_write(tmp_path, first, second, third))
    where = tmp_path / "objectives.yaml"
    assert [p.split(":")[1].strip() for p in problems] == [
        "document 1 (first) spec.budgetingMethod",
        "document 1 (first) spec.indicator.spec.ratioMetric.total.metricSource.spec.region",
        "document 1 (first) spec.objectives[0].target",
        "document 2 (first) metadata.name",
        "document 3 (sli) kind",
    ], problems
    assert all(p.startswith(f"{where}: ") for p in problems)
    assert "document 1 has this name too" in problems[3]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "holds no SLO documents; write one per objective"),
        ("---\n---\n", "holds no SLO documents"),
        ("kind: SLO\nkind: SLO\n", "line 2, column 1: key 'kind' is given twice"),
        ("spec: [unclosed\n", "does not parse as YAML (line 2, column 1:"),
        ("- a list\n", "document 1 (?): must be a mapping, not ['a list']"),
    ],
)
def test_files_that_cannot_be_read_as_objectives(tmp_path, text, words):
    path = tmp_path / "objectives.yaml"
    path.write_text(text)
    problems = check_objectives(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: ")
    assert words in problems[0], problems


def test_a_missing_or_binary_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert check_objectives(missing) == [
        f"{missing}: cannot be read (No such file or directory); give the path of an "
        "objectives file"
    ]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe")
    assert check_objectives(binary) == [f"{binary}: is not UTF-8 text; save it as UTF-8 YAML"]
    with pytest.raises(SettingsError) as raised:  # the settings family: exit 2
        load_objectives(missing)
    assert raised.value.exit_code == 2


def test_the_check_command(tmp_path):
    done = cli("objectives", "check", str(EXAMPLE))
    objectives = load_objectives(EXAMPLE)
    assert done.returncode == 0 and done.stdout == f"{len(objectives)} objectives OK\n"
    first = _slo()
    first["spec"]["objectives"] = [{"target": 1.5}]
    second = _slo("other")
    second["kind"] = "AlertPolicy"
    path = _write(tmp_path, first, second)
    done = cli("objectives", "check", str(path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == check_objectives(path)
    assert len(done.stderr.splitlines()) == 2


# --- the example file --------------------------------------------------------------------


def _issuers(path: Path) -> set[str]:
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {e["source"] for e in lines if e["type"] == "promise.issued"}


def test_the_example_has_one_objective_per_example_service():
    objectives = load_objectives(EXAMPLE)
    services = [o.service for o in objectives]
    assert len(services) == len(set(services))
    stories = set().union(*(_issuers(p) for p in (ROOT / "examples").glob("*.jsonl")))
    synthetic = {s for names in SERVICES.values() for s in names}
    assert set(services) == stories | synthetic
    kinds = {(o.window.kind, o.window.unit) for o in objectives}
    assert kinds == {("rolling", None), ("calendar", "month"), ("calendar", "quarter")}
    assert any(o.labels for o in objectives) and any("channel" in o.filters for o in objectives)
    assert any(o.page_min_decided != 20 for o in objectives)


# --- windows -------------------------------------------------------------------------------


def _utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_rolling_window_bounds():
    window = Window("rolling", 28 * 86400.0, None, "UTC")
    assert window.bounds(1_800_000_000.0) == (1_800_000_000.0 - 28 * 86400, 1_800_000_000.0)


@pytest.mark.parametrize(
    ("unit", "zone", "now", "start", "end"),
    [
        # a month in UTC, and across the year's end
        ("month", "UTC", _utc(2026, 3, 15, 12), _utc(2026, 3, 1), _utc(2026, 4, 1)),
        ("month", "UTC", _utc(2026, 12, 31, 23, 59), _utc(2026, 12, 1), _utc(2027, 1, 1)),
        # in Paris, 23:30 UTC on 31 December is already January: the window is January's
        ("month", "Europe/Paris", _utc(2026, 12, 31, 23, 30), _utc(2026, 12, 31, 23),
         _utc(2027, 1, 31, 23)),
        # March in Paris: starts at UTC+1, ends at UTC+2 (summer time begins on the 29th)
        ("month", "Europe/Paris", _utc(2026, 3, 10), _utc(2026, 2, 28, 23), _utc(2026, 3, 31, 22)),
        ("quarter", "UTC", _utc(2026, 5, 20), _utc(2026, 4, 1), _utc(2026, 7, 1)),
        ("quarter", "UTC", _utc(2026, 11, 2), _utc(2026, 10, 1), _utc(2027, 1, 1)),
        ("quarter", "America/New_York", _utc(2026, 4, 1, 3), _utc(2026, 1, 1, 5),
         _utc(2026, 4, 1, 4)),
    ],
)  # fmt: skip
def test_calendar_window_bounds(unit, zone, now, start, end):
    objective = Objective(
        "o", None, "s", {"service": "s"}, 0.99, Window("calendar", None, unit, zone), None
    )
    assert objective.window_bounds(now) == (start, end)


def test_objectives_are_values():
    objective = load_objectives(EXAMPLE)[0]
    with pytest.raises(AttributeError):
        objective.target = 0.5  # type: ignore[misc]
    assert copy.deepcopy(objective) == objective
    assert len({objective, copy.deepcopy(objective)}) == 1  # usable as a key

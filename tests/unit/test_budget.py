"""The error budget figures (promise_tracker/dashboards/budget.py) on real chdb, held to the
same figures computed here, independently, from the replay's output file (outcomes.jsonl)
of the panels' dataset: the example stories and a generated stream, replayed into chdb.

The window's start is taken from ``Objective.window_bounds`` (Python's zoneinfo), not from
the SQL, so a calendar month or quarter in a zone with daylight saving is checked too."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from promise_tracker.dashboards import budget, leadership
from promise_tracker.dashboards.grafana import to_json
from promise_tracker.dashboards.macros import ALL, Request, dashboard_sql
from promise_tracker.objectives.load import load_objectives
from promise_tracker.objectives.model import Objective, Window
from promise_tracker.report import figures as report_figures
from promise_tracker.sinks.migrate import migrate
from promise_tracker.sinks.store import ClickHouseStore
from tests.support import ROOT
from tests.unit import test_panels as panels

# the panels' dataset (a module fixture: seeded once for this module)
seeded = panels.seeded

HOUR = 3600
DAY = 86_400
ALL_VARIABLES = {"service": [ALL], "channel": [ALL], "kind": [ALL], "violation_id": ""}


def _objective(name: str, filters: dict[str, str], target: float, window: Window) -> Objective:
    return Objective(
        name=name,
        display_name=None,
        service=filters["service"],
        filters=filters,
        target=target,
        window=window,
        description=None,
    )


ROLLING_28D = Window("rolling", 28 * DAY, None, "UTC")
OBJECTIVES = [
    # lenient enough (the stream keeps about 70 %) that the budget is left, and an hour that
    # breaks more than 40 % of its promises makes it shrink: a date
    _objective("checkout", {"service": "shop/checkout"}, 0.6, ROLLING_28D),
    _objective(
        "fulfilment-web",
        {"service": "shop/fulfilment", "channel": "web", "kind": "deliver_by"},
        0.55,
        Window("rolling", 2 * DAY, None, "UTC"),
    ),
    _objective(
        "branches-spring",
        {"service": "bank/branches", "label:campaign": "spring-2026"},
        0.5,
        Window("calendar", None, "month", "Europe/Paris"),
    ),
    _objective(
        "marketing-quarter",
        {"service": "prestige/marketing"},
        0.99,
        Window("calendar", None, "quarter", "America/New_York"),
    ),
    _objective("story-card", {"service": panels.STORY + "prestige/marketing"}, 0.9, ROLLING_28D),
]


def _matches(objective: Objective, outcome: dict) -> bool:
    for key, value in objective.filters.items():
        if key.startswith("label:"):
            if outcome["labels"].get(key[len("label:") :]) != value:
                return False
        elif outcome[key] != value:
            return False
    return True


@dataclass
class Expected:
    kept: int
    broken: int
    keep_rate: float | None
    allowed: float
    remaining: float
    remaining_ratio: float | None
    burn_rate_now: float
    runs_out_at: float | None
    runs_out: str  # "never", "exhausted" or "date"


def expected(objective: Objective, outcomes: list[dict], at: float) -> Expected:
    """The definitions of docs/dashboards.md, applied to the replay's outcome records."""
    start, end = objective.window_bounds(at)
    horizon = end if objective.window.kind == "calendar" else at + objective.window.seconds
    decided = [
        x
        for x in outcomes
        if x["status"] in ("kept", "broken")
        and x["closed_at"] is not None
        and _matches(objective, x)
    ]
    window = [x for x in decided if start <= x["closed_at"] <= at]
    hour = [x for x in decided if at - HOUR < x["closed_at"] <= at]
    kept = sum(x["status"] == "kept" for x in window)
    broken = len(window) - kept
    budget_share = 1 - objective.target
    allowed = budget_share * len(window)
    remaining = allowed - broken
    broken_hour = sum(x["status"] == "broken" for x in hour)
    burn = (broken_hour / len(hour)) / budget_share if hour else 0.0
    shrink = (broken_hour - budget_share * len(hour)) / HOUR
    runs_out_at = None
    if remaining > 1e-9 and shrink > 1e-12 and at + remaining / shrink < horizon:
        runs_out_at = at + remaining / shrink
    if window and remaining <= 1e-9:
        runs_out = "exhausted"
    else:
        runs_out = "never" if runs_out_at is None else "date"
    return Expected(
        kept=kept,
        broken=broken,
        keep_rate=kept / len(window) if window else None,
        allowed=allowed,
        remaining=remaining,
        remaining_ratio=remaining / allowed if allowed else None,
        burn_rate_now=burn,
        runs_out_at=runs_out_at,
        runs_out=runs_out,
    )


def _figures(store: ClickHouseStore, objective: Objective, at: float) -> dict:
    """The budget query as Grafana sends it, with the range ending at ``at``."""
    request = Request(at - 30 * DAY, at, DAY * 1000, ALL_VARIABLES)
    rows = store.rows(dashboard_sql(budget.figures(objective), request))
    assert len(rows) == 1 and set(budget.COLUMNS) <= rows[0].keys()
    return rows[0]


def _approx(value: float | None):
    return None if value is None else pytest.approx(value, rel=1e-9, abs=1e-9)


def _check(got: dict, want: Expected, at: float, label: str) -> None:
    assert (got["kept"], got["broken"]) == (want.kept, want.broken), label
    assert got["decided"] == want.kept + want.broken, label
    assert got["keep_rate"] == _approx(want.keep_rate), label
    assert got["allowed"] == _approx(want.allowed), label
    assert got["remaining"] == _approx(want.remaining), label
    assert got["remaining_ratio"] == _approx(want.remaining_ratio), label
    assert got["burn_rate_now"] == _approx(want.burn_rate_now), label
    if want.runs_out == "date":
        assert got["runs_out_at"].timestamp() == pytest.approx(want.runs_out_at, abs=1e-3), label
        assert got["runs_out"] == got["runs_out_at"].strftime("%Y-%m-%d %H:%M UTC"), label
    else:
        assert (got["runs_out"], got["runs_out_at"]) == (want.runs_out, None), label


def _hours(seeded) -> list[float]:
    """Every whole hour from the day before the stream's last decisions to just after them
    ($__toTime is whole seconds)."""
    last = max(x["closed_at"] for x in seeded.outcomes if x["closed_at"] is not None)
    end = int(last) + 1
    return [float(end - n * HOUR) for n in range(0, 36)]


def test_figures_equal_an_independent_computation_from_the_replay_files(seeded):
    seen: set[str] = set()
    for objective in OBJECTIVES:
        for at in _hours(seeded):
            want = expected(objective, seeded.outcomes, at)
            got = _figures(seeded.store, objective, at)
            _check(got, want, at, f"{objective.name} at {at:.0f}")
            seen.add(want.runs_out)
            assert got["target"] == objective.target
    # every branch of "runs out" was met (the hours are chosen so)
    assert seen == {"never", "exhausted", "date"}


def test_the_example_objectives_too(seeded):
    objectives = load_objectives(ROOT / "examples" / "objectives.yaml")
    at = _hours(seeded)[0]
    counted = 0
    for objective in objectives:
        want = expected(objective, seeded.outcomes, at)
        _check(_figures(seeded.store, objective, at), want, at, objective.name)
        counted += want.kept + want.broken
    assert counted > 1000  # the synthetic services have objectives in the example file


@pytest.mark.parametrize(
    "window",
    [
        ROLLING_28D,
        Window("rolling", 90 * 60, None, "UTC"),
        Window("calendar", None, "month", "Europe/Paris"),
        Window("calendar", None, "quarter", "America/New_York"),
        Window("calendar", None, "month", "Asia/Tokyo"),
        Window("calendar", None, "quarter", "Australia/Lord_Howe"),  # a half-hour DST shift
    ],
    ids=["28d", "90min", "month-paris", "quarter-new-york", "month-tokyo", "quarter-lord-howe"],
)
def test_window_start_in_sql_is_the_models(seeded, window):
    instants = [
        "2026-01-01T00:30:00Z",  # already January in Tokyo, still December in New York
        "2026-03-29T00:59:59Z",  # Paris, a second before summer time
        "2026-03-31T22:30:00Z",  # April in Paris, March in UTC
        "2026-04-05T15:30:00Z",  # Lord Howe leaves summer time
        "2026-10-01T03:59:59Z",  # September in New York
        "2026-11-01T06:00:00Z",  # New York leaves summer time
    ]
    for instant in instants:
        at = dt.datetime.fromisoformat(instant).timestamp()
        now = f"toDateTime64({at!r}, 6, 'UTC')"
        sql = (
            f"SELECT toUnixTimestamp64Micro({budget.window_start(window, now)}) / 1e6 AS start, "
            f"toUnixTimestamp64Micro({budget.horizon(window, now, 'start64')}) / 1e6 AS horizon "
            f"FROM (SELECT {budget.window_start(window, now)} AS start64)"
        )
        row = seeded.store.rows(sql)[0]
        start, end = window.bounds(at)
        assert row["start"] == start, (instant, window)
        if window.kind == "calendar":
            assert row["horizon"] == end, (instant, window)
        else:
            assert row["horizon"] == at + window.seconds


# --- scenarios a manager can check by hand -----------------------------------------------


@pytest.fixture
def scratch(seeded) -> Iterator[ClickHouseStore]:
    name = "budget_scratch"
    store = ClickHouseStore(seeded.store.path, name).connect()  # chdb: same directory
    store.command("DROP DATABASE IF EXISTS {db}")
    migrate(store)
    store.command("USE {db}")
    try:
        yield store
    finally:
        store.command("DROP DATABASE IF EXISTS {db}")
        store.close()


AT = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def _decided(store: ClickHouseStore, rows: list[tuple[str, float]], batch: str = "a") -> None:
    """(status, seconds before AT) rows of service s, each a promise of its own."""
    store.insert(
        "outcomes",
        ["promise_id", "status", "closed_at", "service", "channel", "kind", "issued_at"]
        + ["updated_at", "version"],
        [
            [f"{batch}-{n}", status, AT - ago, "s", "web", "deliver_by", AT - ago - 60] + [AT, 1]
            for n, (status, ago) in enumerate(rows)
        ],
    )


def test_by_hand_a_budget_running_out(scratch):
    # 100 decided in the window, 5 broken, objective 90 %: 10 may break, 5 still may (50 %).
    # The last hour: 10 decided, 4 broken: 40 % against 10 % allowed, a burn rate of 4; the
    # budget shrinks by 4 - 0.1 x 10 = 3 promises an hour: 5 / 3 hours = 6000 s from now.
    rows = [("broken", 600 + i) for i in range(4)] + [("kept", 900 + i) for i in range(6)]
    rows += [("broken", 5 * DAY)] + [("kept", 2 * DAY + i) for i in range(89)]
    _decided(scratch, rows)
    objective = _objective("s", {"service": "s"}, 0.9, ROLLING_28D)
    got = _figures(scratch, objective, AT)
    assert (got["decided"], got["broken"], got["allowed"], got["remaining"]) == (100, 5, 10, 5)
    assert got["remaining_ratio"] == 0.5
    assert got["burn_rate_now"] == pytest.approx(4)
    assert got["runs_out_at"].timestamp() == pytest.approx(AT + 6000)
    assert got["runs_out"] == "2027-01-15 09:40 UTC"


def test_by_hand_a_budget_spent_to_the_last_promise_is_exhausted(scratch):
    # objective 90 %, 200 decided, 20 broken: 20 allowed, none left (not -3.6e-15: 1 - 0.9
    # is 0.09999999999999998 in binary floating point)
    _decided(scratch, [("broken", 2 * HOUR + i) for i in range(20)])
    _decided(scratch, [("kept", 3 * HOUR + i) for i in range(180)], batch="b")
    objective = _objective("s", {"service": "s"}, 0.9, ROLLING_28D)
    got = _figures(scratch, objective, AT)
    assert (got["decided"], got["allowed"], got["remaining"]) == (200, 20.0, 0.0)
    assert (got["burn_rate_now"], got["runs_out"]) == (0.0, "exhausted")


def test_by_hand_a_budget_that_would_outlast_the_month_never_runs_out(scratch):
    # a calendar month in UTC: AT is 15 January 08:00. 1000 decided this month, 2 broken,
    # objective 99 %: 10 may break, 8 still may. The last hour broke 1 of 50 (2 %, a burn
    # rate of 2): the budget shrinks by 1 - 0.01 x 50 = 0.5 an hour and lasts 16 hours.
    # At 97 % the last hour's 1 of 50 is within the 1.5 allowed: it does not shrink, never.
    rows = [("broken", 1200)] + [("kept", 1500 + i) for i in range(49)]
    rows += [("broken", 3 * DAY)] + [("kept", 4 * DAY + i) for i in range(949)]
    _decided(scratch, rows)
    month = Window("calendar", None, "month", "UTC")
    got = _figures(scratch, _objective("s", {"service": "s"}, 0.99, month), AT)
    assert (got["decided"], got["remaining"], got["burn_rate_now"]) == (1000, 8.0, 2.0)
    assert got["runs_out_at"].timestamp() == pytest.approx(AT + 16 * HOUR)
    lenient = _figures(scratch, _objective("s", {"service": "s"}, 0.97, month), AT)
    assert lenient["runs_out"] == "never" and lenient["remaining"] == pytest.approx(28)
    # the same pace with a budget that lasts past the month's end: never (it starts afresh)
    _decided(scratch, [("kept", 5 * DAY + i) for i in range(30_000)], batch="big")
    late = _figures(scratch, _objective("s", {"service": "s"}, 0.99, month), AT)
    assert late["remaining"] == pytest.approx(308) and late["burn_rate_now"] == 2.0
    assert late["runs_out"] == "never"  # 308 / 0.5 = 616 hours: past 31 January


def test_nothing_decided_is_no_data_and_never(scratch):
    got = _figures(scratch, _objective("s", {"service": "s"}, 0.99, ROLLING_28D), AT)
    assert (got["decided"], got["keep_rate"], got["remaining_ratio"]) == (0, None, None)
    assert (got["burn_rate_now"], got["runs_out"]) == (0.0, "never")


# --- the dashboard's panels and the report run this very query -----------------------------


def _budget_panels(objectives: list[Objective]) -> list[dict]:
    board = json.loads(to_json(leadership.dashboard(objectives)))
    found = [p for p in board["panels"] if " · " in p["title"]]
    assert len(found) == 5 * len(objectives)
    return found


def test_each_objective_has_five_panels_on_one_query_with_one_sentence_each(seeded):
    objectives = load_objectives(ROOT / "examples" / "objectives.yaml")
    panels_found = _budget_panels(objectives)
    at = _hours(seeded)[0]
    request = Request(at - 30 * DAY, at, DAY * 1000, ALL_VARIABLES)
    for index, objective in enumerate(objectives):
        row = panels_found[5 * index : 5 * index + 5]
        assert {p["title"].split(" · ", 1)[1] for p in row} == {objective.title}
        sql = {p["targets"][0]["rawSql"] for p in row}
        assert sql == {budget.figures(objective).strip()}
        answer = seeded.store.rows(dashboard_sql(sql.pop(), request))[0]
        words = budget.explain(objective)
        shown = []
        for panel in row:
            column = re.fullmatch(r"/\^(\w+)\$/", panel["options"]["reduceOptions"]["fields"])
            assert column is not None and column.group(1) in answer
            shown.append(column.group(1))
            description = panel["description"]
            assert description == words[column.group(1)]
            # one sentence: one full stop, at its end
            assert description.endswith(".") and description.count(". ") == 0, description
        assert shown == ["keep_rate", "remaining", "remaining_ratio", "burn_rate_now", "runs_out"]
        assert sum(p["gridPos"]["w"] for p in row) == 24
        assert len({p["gridPos"]["y"] for p in row}) == 1


def test_the_report_runs_the_panels_text(seeded):
    objective = OBJECTIVES[0]
    panel = _budget_panels([objective])[0]
    period = report_figures.Period(1_770_000_000.0, 1_770_600_000.0)
    grafana = dashboard_sql(panel["targets"][0]["rawSql"], period.request())
    assert report_figures.expanded(budget.figures(objective), period) == (
        report_figures.qualified(grafana)
    )
    assert "{db}.outcomes FINAL" in report_figures.qualified(grafana)
    assert " outcomes FINAL" not in report_figures.qualified(grafana).replace("{db}.", "x")

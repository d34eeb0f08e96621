"""The leadership report without a browser: its figures are the dashboard panels' answers (and,
for its own two queries, what the replay's files say), its page is self-contained and
escapes what came from the data, its charts are Vega-Lite rendered to SVG in UTC, and the
command refuses unusable arguments with one line. The browser tests are in
tests/integration/test_report_browser.py."""

from __future__ import annotations

import datetime as dt
import html
import html.parser
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict

import orjson
import pytest

from promise_tracker.dashboards import budget
from promise_tracker.dashboards import queries as q
from promise_tracker.objectives.load import load_objectives
from promise_tracker.report import charts, page
from promise_tracker.report import figures as figures_module
from promise_tracker.report.figures import Budget, Figures, Period, qualified, read
from promise_tracker.report.write import since_seconds, until_seconds, write_report
from promise_tracker.schemas.reject import REASON_MEANINGS, Reason
from tests.cli import cli
from tests.support import ROOT, observe, promise
from tests.unit import test_capabilities as capabilities
from tests.unit import test_panels as panels

seeded = panels.seeded  # the panels' dataset: stories and a generated stream, in chdb

OBJECTIVES = ROOT / "examples" / "objectives.yaml"


@pytest.fixture(scope="module")
def objectives():
    return load_objectives(OBJECTIVES)


@pytest.fixture(scope="module")
def period(seeded) -> Period:
    # the panels test's range: every panel's answer there is checked against the files
    return Period(seeded.start, seeded.end)


@pytest.fixture(scope="module")
def figures(seeded, period, objectives) -> Figures:
    return read(seeded.store, period, objectives, where="chdb (test)")


def test_the_figures_are_the_dashboard_panels_answers(seeded, period, figures, objectives):
    assert period.request() == panels.Request(
        seeded.start, seeded.end, panels.DAY_MS, panels.ALL_VARIABLES
    )
    assert figures.counts == {k: int(v) for k, v in seeded.run(q.OUTCOME_COUNTS)[0].items()}
    assert figures.keep_rate == seeded.run(q.KEEP_RATE)[0]["keep_rate"]
    affected = seeded.run(q.CUSTOMERS_AFFECTED)[0]["customers_affected"]
    assert figures.customers_affected == affected > 0
    assert figures.cost == seeded.run(q.TOTAL_EXCESS)[0]
    assert figures.trend == seeded.run(q.keep_rate_over_time("service"))
    assert figures.worst == seeded.run(q.WORST_BROKEN)[:15]
    assert figures.warnings == seeded.run(q.WARNINGS_SAVED)[0]
    assert sum(figures.warnings.values()) > 0, "the seed should hold resolved warnings"
    assert figures.foreseen == seeded.run(q.FORESEEN_BREACHES)[0]
    for got, objective in zip(figures.budgets, objectives, strict=True):
        assert got.figures == seeded.run(budget.figures(objective))[0]


def _in_range(t, seeded) -> bool:
    return t is not None and int(seeded.start) <= t <= int(seeded.end)


def test_keep_rate_by_service_and_rejects_by_reason_from_the_files(seeded, figures):
    status: dict[str, Counter] = defaultdict(Counter)
    for x in seeded.outcomes:
        if x["status"] != "open" and _in_range(x["closed_at"], seeded):
            status[x["service"]][x["status"]] += 1
    got = {r["service"]: r for r in figures.by_service}
    assert got.keys() == status.keys()
    for service, counts in status.items():
        decided = counts["kept"] + counts["broken"]
        row = got[service]
        assert (row["kept"], row["broken"], row["unverifiable"]) == (
            counts["kept"],
            counts["broken"],
            counts["expired"],
        )
        assert row["keep_rate"] == (pytest.approx(counts["kept"] / decided) if decided else None)
    rates = [r["keep_rate"] for r in figures.by_service if r["keep_rate"] is not None]
    assert rates == sorted(rates), "worst first"
    reasons = Counter(r["reason"] for r in seeded.rejects)
    assert {r["reason"]: r["rejects"] for r in figures.rejects} == dict(reasons) != {}


class _Figures(html.parser.HTMLParser):
    """Every data-figure span: name -> (exact value, text shown)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, tuple[str, str]] = {}
        self._open: tuple[str, str] | None = None
        self.tags: Counter[str] = Counter()

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        attributes = dict(attrs)
        if "data-figure" in attributes:
            self._open = (attributes["data-figure"], attributes["data-value"] or "")

    def handle_data(self, data):
        if self._open is not None:
            name, value = self._open
            self.found[name] = (value, data)
            self._open = None


def test_the_page_shows_each_figure_beside_its_exact_value(figures, objectives):
    parsed = _Figures()
    parsed.feed(page.render(figures, generated=figures.period.end))
    found = parsed.found
    assert found["keep_rate"] == (repr(figures.keep_rate), f"{figures.keep_rate:.2%}")
    assert found["broken"] == (str(figures.counts["broken"]), f"{figures.counts['broken']:,}")
    for b in figures.budgets:
        for column in ("keep_rate", "remaining", "remaining_ratio", "burn_rate_now", "runs_out"):
            value, shown = found[f"budget:{b.objective.name}:{column}"]
            exact = b.figures[column]
            assert value == (
                "" if exact is None else repr(exact) if isinstance(exact, float) else exact
            )
            assert shown
    assert found["rejects:total"][0] == str(sum(r["rejects"] for r in figures.rejects))
    caught, broken = (found[f"foreseen:{k}"] for k in ("could_have_been_caught", "broken_promises"))
    assert caught[0] == str(figures.foreseen["could_have_been_caught"]) and broken[0] != "0"
    assert parsed.tags["svg"] >= 2 and parsed.tags["table"] == 4 + bool(figures.foreseen_list)
    assert {o.name for o in objectives} <= {
        n.split(":")[1] for n in found if n.startswith("budget:")
    }


def test_the_foreseen_list_is_what_the_files_say(seeded, figures):
    """The broken promises a contradiction foretold: from the replay's violations file, each
    promise once at its latest foreseen breach, newest first (at most 10)."""
    latest: dict[str, float] = {}
    for v in seeded.violations.values():
        if v.get("predicted_by") is not None and _in_range(v["occurred_at"], seeded):
            latest[v["promise_id"]] = max(latest.get(v["promise_id"], 0.0), v["occurred_at"])
    assert figures.foreseen["could_have_been_caught"] == len(latest)
    newest = sorted(latest, key=lambda p: (-latest[p], p))[: figures_module.FORESEEN_SHOWN]
    assert [r["promise_id"] for r in figures.foreseen_list] == newest


# --- broken promises a contradiction foretold (issue 16), on a store of known content ------

PHONE = promise(
    "phone", "max_wait", {"max_seconds": 60}, at="2013-10-07T10:00:00-04:00", channel="phone"
)
HELD = observe("held", "phone", "hold_time", "2013-10-08T10:00:00-04:00", seconds=1200)
CARD_SAYS = (
    "card says open until 2013-11-01 23:59 -0400; prestige/shop:yearbook-selection closes "
    "yearbook selection at 2013-10-31 23:59 -0400 (24 h earlier)"
)


def _reported(tmp_path, events: list[dict]) -> tuple[str, dict[str, tuple[str, str]]]:
    """``events`` through ``replay --clickhouse`` (the sink's rows, the migrations' tables),
    then ``report`` of 2013's last 30 weeks, both commands in their own process (chdb opens
    one directory per process, and this one holds the panels' store): the page, and its
    figures (name -> exact value, text shown)."""
    path = tmp_path / "events.jsonl"
    events = sorted(events, key=lambda e: dt.datetime.fromisoformat(e["time"]))
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    done = cli(
        "replay", str(path), "--violations", "/dev/null", "--outcomes", "/dev/null",
        "--rejects", "/dev/null", "--clickhouse", str(tmp_path / "chdb"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "report.html"
    done = cli(
        "report", "--since", "30w", "--until", "2014-01-01T00:00:00Z", "--out", str(out),
        "--clickhouse", str(tmp_path / "chdb"), "--database", "promise_tracker_replay",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    parsed = _Figures()
    parsed.feed(text)
    section = text[text.index('<section id="foreseen">') :]
    return section[: section.index("</section>")], parsed.found


def test_broken_promises_a_contradiction_foretold_are_counted_and_named(tmp_path):
    """The card contradicted the shop's window when it was issued and broke 25 days later;
    the letter promised channels whose portal was already down and broke at once, three
    times (one promise); the phone promise broke with nothing to foresee it."""
    down = capabilities.status("s0", "2013-09-30T08:00:00-04:00", up=False)
    section, found = _reported(
        tmp_path,
        [
            capabilities.CLOSES_EARLY, capabilities.DEPENDS, down, capabilities.LETTER,
            capabilities.LATER, capabilities.CARD, PHONE, HELD, capabilities.CLOCK,
            capabilities.ENFORCED,
        ],
    )  # fmt: skip
    assert found["foreseen:could_have_been_caught"] == ("2", "2")
    assert found["foreseen:broken_promises"] == ("3", "3")
    assert "Broken promises we could have caught before issuing them" in section
    assert "broken promises had a contradiction warning in force before they broke" in section
    rows = re.findall(r"<tr><td>.*?</tr>", section)
    assert len(rows) == 2  # each promise once, newest breach first: the card, then the letter
    card, letter = rows
    assert "<q>Your yearbook selection date is 11/01/2013.</q>" in card
    assert f"<td>{html.escape(CARD_SAYS)}</td>" in card
    assert "2013-10-07 14:00 UTC<br><small>25 days before</small>" in card
    assert "<q>Apply by phone, by mail or in person.</q>" in letter
    assert "phone, mail, in_person depend on gov/eligibility-portal, down since" in letter
    assert "<small>at once</small>" in letter  # warned when issued, and broken then


def test_no_contradiction_in_force_says_so(tmp_path):
    section, found = _reported(tmp_path, [PHONE, HELD, capabilities.CLOCK])
    assert found["foreseen:could_have_been_caught"] == ("0", "0")
    assert found["foreseen:broken_promises"] == ("1", "1")
    assert re.sub(r"<[^>]+>", "", section).endswith(
        "None (0) of the 1 broken promises had a contradiction warning in force: not one "
        "contradicted a declared capability it relied on before it broke."
    )
    assert "<table" not in section


def test_every_reject_reason_has_one_meaning_which_the_page_shows(figures):
    assert set(REASON_MEANINGS) == set(Reason) and all(REASON_MEANINGS.values())
    rejects = [{"reason": str(r), "rejects": 1} for r in Reason]
    text = page.render(Figures(**{**figures.__dict__, "rejects": rejects}), generated=0.0)
    for meaning in REASON_MEANINGS.values():
        assert html.escape(meaning) in text


def test_the_page_is_self_contained_and_escapes_the_data(figures):
    hostile = "<script>alert('x')</script> & \"quoted\""
    worst = [
        {**figures.worst[0], "customer_read": hostile, "service": "<b>svc</b>", "observed": hostile}
    ]
    rejects = [{"reason": "<img src=x onerror=alert(1)>", "rejects": 3}]
    by_service = [{**figures.by_service[0], "service": "o'brien\\ <i>"}]
    poisoned = Figures(
        **{
            **figures.__dict__,
            "worst": worst,
            "rejects": rejects,
            "by_service": by_service,
            "where": "<u>x</u>",
        }
    )
    text = page.render(poisoned, generated=0.0)
    assert "<script" not in text.lower() and "<img" not in text and "<b>svc" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in text
    # nothing fetched: no script, stylesheet, image or font from elsewhere
    assert not re.search(r"<(script|link|img|iframe|object)\b", text, re.I)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//|file:)", text, re.I)
    assert "@import" not in text and "url(" not in text


def test_charts_are_vega_lite_made_with_altair_rendered_to_svg_in_utc():
    spec = charts.keep_rate_trend([], 86_400).to_dict()
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v6")
    # the machine's zone must not move the days: render where it is far from UTC
    code = (
        "import datetime as dt\n"
        "from promise_tracker.report import charts\n"
        "rows = [{'time': dt.datetime(2026, 3, d, tzinfo=dt.UTC), 'service': 'a', "
        "'keep_rate': 0.5} for d in (2, 3, 4, 5)]\n"
        "print(charts.svg(charts.keep_rate_trend(rows, 86_400)))\n"
    )
    env = {**os.environ, "TZ": "Pacific/Honolulu"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    svg = done.stdout.strip()
    assert svg.startswith("<svg") and "</svg>" in svg
    width, height = (
        float(v) for v in re.search(r'width="([\d.]+)" height="([\d.]+)"', svg).groups()
    )
    assert width > 100 and height > 50
    assert re.findall(r">(\d\d [A-Z][a-z]{2})<", svg) == ["02 Mar", "03 Mar", "04 Mar", "05 Mar"]


def _values(spec: object, key: str) -> list[dict]:
    """The first inline data of a Vega-Lite spec whose rows have ``key``."""
    if isinstance(spec, dict):
        values = spec.get("values")
        if isinstance(values, list) and values and key in values[0]:
            return values
        spec = list(spec.values())
    if isinstance(spec, list):
        for item in spec:
            found = _values(item, key)
            if found:
                return found
    return []


def test_budgets_chart_stops_at_minus_100_percent_and_says_the_rest(objectives):
    budgets = [
        Budget(objectives[0], {"remaining_ratio": -38.2}),
        Budget(objectives[1], {"remaining_ratio": 0.25}),
    ]
    rows = _values(charts.budgets_left(budgets).to_dict(), "shown")
    assert [(r["shown"], r["label"]) for r in rows] == [(-1.0, "-3820%"), (0.25, "25%")]


def test_write_report_writes_one_whole_page(seeded, period, objectives, tmp_path):
    out = tmp_path / "deep" / "report.html"
    written = write_report(seeded.store, out, period, objectives, where="test")
    text = out.read_text()
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert os.listdir(out.parent) == ["report.html"]  # no temporary file left
    for objective in objectives:
        assert objective.name in text
    assert written.pdf is None and written.query_seconds > 0 and written.render_seconds > 0


def test_qualified_names_only_tables_after_from_and_join():
    sql = (
        "SELECT outcomes FROM outcomes FINAL JOIN promises p ON x "
        "WHERE a IN (SELECT 1 FROM rejects)"
    )
    assert qualified(sql) == (
        "SELECT outcomes FROM {db}.outcomes FINAL JOIN {db}.promises p ON x "
        "WHERE a IN (SELECT 1 FROM {db}.rejects)"
    )


def test_since_and_until():
    assert since_seconds("7d") == 7 * 86_400 and since_seconds("12h") == 43_200
    assert since_seconds("2w") == 14 * 86_400 and since_seconds("90m") == 5_400
    assert (
        until_seconds("2026-03-20T00:00:00Z") == dt.datetime(2026, 3, 20, tzinfo=dt.UTC).timestamp()
    )


@pytest.mark.parametrize(
    "args,says",
    [
        (["--since", "soon"], "--since 'soon': give a length of time such as 12h, 7d or 2w"),
        (["--since", "0d"], "--since '0d'"),
        (["--until", "2026-03-20"], "--until '2026-03-20': give a time with its offset"),
        (
            ["--clickhouse", "/nonexistent/chdb"],
            "--clickhouse /nonexistent/chdb: no chdb directory",
        ),
        (["--objectives", "/nonexistent.yaml"], "/nonexistent.yaml: cannot be read"),
    ],
    ids=["since", "since-zero", "until-naive", "no-directory", "no-objectives"],
)
def test_unusable_arguments_are_one_line_and_exit_2(args, says, tmp_path):
    done = cli("report", "--out", str(tmp_path / "r.html"), *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and done.stderr.startswith("promise-tracker report: ")
    assert "Traceback" not in done.stderr and not (tmp_path / "r.html").exists()

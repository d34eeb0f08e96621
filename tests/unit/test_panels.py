"""Every dashboard panel's and alert rule's SQL, as committed in deploy/grafana, expanded the
way Grafana and the ClickHouse plugin expand it and run on real chdb over a seeded dataset
(the example stories and a synthetic stream, through ``replay --clickhouse``). The expected
values are computed here from the same replay's output files, not written down."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from promise_tracker.dashboards import alert_rules
from promise_tracker.dashboards import queries as q
from promise_tracker.dashboards.macros import ALL, Request, alert_sql, dashboard_sql
from promise_tracker.retime import shift_lines
from promise_tracker.sinks.store import ClickHouseStore
from promise_tracker.streams.records import final_active, read_jsonl
from promise_tracker.synthetic import generate
from tests.cli import cli
from tests.support import ROOT

GRAFANA = ROOT / "deploy" / "grafana"
DAY_MS = 86_400_000
# The example stories' sources get this prefix in the seed: the synthetic stream uses some of
# the same service names, and the tests select the stories by service.
STORY = "example/"
# the services that issued the promises of the example stories that go wrong
STORY_SERVICES = tuple(
    STORY + s for s in ("prestige/marketing", "prestige/customer-service", "marketplace/outreach")
)


def _hex(name: str) -> str:
    return name.encode().hex().upper()


@dataclass
class Seeded:
    store: ClickHouseStore
    outcomes: list[dict]
    violations: dict[str, dict]  # final active, by id
    rejects: list[dict]
    start: float
    end: float

    def run(self, sql: str, **variables: Any) -> list[dict]:
        request = Request(self.start, self.end, DAY_MS, {**ALL_VARIABLES, **variables})
        return self.store.rows(dashboard_sql(sql, request))


ALL_VARIABLES: dict[str, Any] = {
    "service": [ALL],
    "channel": [ALL],
    "kind": [ALL],
    "violation_id": "",
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    tmp = tmp_path_factory.mktemp("panels")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    lines: list[bytes] = []
    for story in sorted((ROOT / "examples").glob("*.jsonl")):
        story_lines = [_renamed(x) for x in story.read_bytes().splitlines() if x.strip()]
        lines += shift_lines(story_lines, now - dt.timedelta(minutes=10))
    # the stories as one timeline: a story's promise issued weeks before another story's end
    # would be past the retention if it came after it
    lines.sort(key=lambda line: dt.datetime.fromisoformat(json.loads(line)["time"]))
    synthetic = tmp / "synthetic.jsonl"
    generate(synthetic, events=6000, open_promises=600, seed=11)
    lines += shift_lines(synthetic.read_bytes().splitlines(), now - dt.timedelta(minutes=1))
    events = tmp / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    v, o, r = (tmp / f"{n}.jsonl" for n in "vor")
    done = cli(
        "replay", str(events), "--violations", str(v), "--outcomes", str(o),
        "--rejects", str(r), "--clickhouse", str(tmp / "chdb"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = ClickHouseStore(tmp / "chdb", "promise_tracker_replay").connect()
    store.command("USE promise_tracker_replay")  # the data source's defaultDatabase
    outcomes = read_jsonl(o)
    assert {e["id"] for e in _example_promises()} <= {x["promise_id"] for x in outcomes}
    times = [x["issued_at"] for x in outcomes]
    try:
        yield Seeded(
            store,
            outcomes,
            final_active(read_jsonl(v)),
            read_jsonl(r),
            start=min(times) - 86400,
            end=now.timestamp() + 3600,
        )
    finally:
        store.close()


def _renamed(line: bytes) -> bytes:
    event = json.loads(line)
    event["source"] = STORY + event["source"]
    return json.dumps(event).encode()


def _panels(name: str) -> list[dict]:
    board = json.loads((GRAFANA / "dashboards" / name).read_text())
    return board["panels"]


def _sql_targets() -> list[tuple[str, str]]:
    found = []
    for name in ("leadership.json", "oncall.json"):
        for panel in _panels(name):
            for target in panel["targets"]:
                if target.get("datasource", {}).get("type") == "grafana-clickhouse-datasource":
                    found.append((f"{name}: {panel['title']}", target["rawSql"]))
    return found


def _in_range(t: float | None, seeded: Seeded) -> bool:
    return t is not None and int(seeded.start) <= t <= int(seeded.end)


def _keep_rate(outcomes: list[dict]) -> float | None:
    status = Counter(x["status"] for x in outcomes)
    decided = status["kept"] + status["broken"]
    return status["kept"] / decided if decided else None


# --- every panel runs, under every kind of selection ----------------------------------------


@pytest.mark.parametrize(
    "selection",
    [
        {},
        {"service": [_hex(STORY_SERVICES[0])]},
        {"service": [_hex(s) for s in STORY_SERVICES], "channel": [_hex("card"), _hex("web")]},
        {"kind": [_hex("deliver_by")], "violation_id": "no-such-id"},
        {"service": [_hex("o'brien\\"), _hex("x'); DROP TABLE outcomes; --")]},
    ],
    ids=["all", "one-service", "several", "kind-and-id", "hostile-names"],
)
def test_every_panel_query_runs(seeded, selection):
    targets = _sql_targets()
    assert len(targets) >= 15
    for title, sql in targets:
        try:
            seeded.run(sql, **selection)
        except Exception as exc:  # pragma: no cover - the message says which panel
            pytest.fail(f"{title}: {exc}")
    assert seeded.run("SELECT count() AS n FROM outcomes")[0]["n"] == len(seeded.outcomes)


def test_variable_queries_list_the_services_by_name_with_safe_values(seeded):
    board = json.loads((GRAFANA / "dashboards" / "leadership.json").read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    rows = seeded.run(variables["service"]["query"])
    services = {x["service"] for x in seeded.outcomes}
    assert {r["text"] for r in rows} == services
    assert all(r["value"] == _hex(r["text"]) for r in rows)
    channels = seeded.run(variables["channel"]["query"], service=[_hex(STORY_SERVICES[0])])
    assert {r["text"] for r in channels} == {"card"}
    assert {r["value"] for r in channels} == {_hex("card")}


# --- leadership: the values ---------------------------------------------------------------


def test_keep_rate_overall_and_of_the_example_stories(seeded):
    decided = [x for x in seeded.outcomes if _in_range(x["closed_at"], seeded)]
    got = seeded.run(q.KEEP_RATE)[0]["keep_rate"]
    assert got == pytest.approx(_keep_rate(decided))
    stories = [x for x in decided if x["service"] in STORY_SERVICES]
    assert stories
    got = seeded.run(q.KEEP_RATE, service=[_hex(s) for s in STORY_SERVICES])[0]["keep_rate"]
    assert got == pytest.approx(_keep_rate(stories))
    # the yearbook card, its phone line and the marketplace letter: every promise broken
    assert got == 0.0
    examples = {STORY + e["source"] for e in _example_promises()}
    got = seeded.run(q.KEEP_RATE, service=[_hex(s) for s in examples])[0]["keep_rate"]
    assert got == pytest.approx(_keep_rate([x for x in decided if x["service"] in examples]))
    assert got == pytest.approx(5 / 9)  # as `promise-tracker demo --offline` says: 56 %


def _example_promises() -> list[dict]:
    found = []
    for story in (ROOT / "examples").glob("*.jsonl"):
        for line in story.read_bytes().splitlines():
            event = json.loads(line) if line.strip() else {}
            if event.get("type") == "promise.issued":
                found.append(event)
    return found


def test_outcome_counts_show_unverifiable_apart(seeded):
    decided = Counter(x["status"] for x in seeded.outcomes if _in_range(x["closed_at"], seeded))
    row = seeded.run(q.OUTCOME_COUNTS)[0]
    assert decided["expired"] > 0, "the seed should hold unverifiable promises"
    assert {k: int(v) for k, v in row.items()} == {
        "kept": decided["kept"],
        "broken": decided["broken"],
        "unverifiable": decided["expired"],
        "cancelled": decided["cancelled"],
    }


def test_keep_rate_over_time_by_each_dimension(seeded):
    for dimension in ("service", "channel", "kind"):
        buckets: dict[tuple[int, str], list[dict]] = defaultdict(list)
        for x in seeded.outcomes:
            if x["status"] in ("kept", "broken") and _in_range(x["closed_at"], seeded):
                day = int(x["closed_at"]) // 86400 * 86400
                buckets[(day, x[dimension])].append(x)
        rows = seeded.run(q.keep_rate_over_time(dimension))
        got = {(int(r["time"].timestamp()), r[dimension]): r["keep_rate"] for r in rows}
        assert got.keys() == buckets.keys()
        for key, decided in buckets.items():
            assert got[key] == pytest.approx(_keep_rate(decided)), (dimension, key)


def test_keep_rate_table_by_service_channel_and_kind(seeded):
    groups: dict[tuple, Counter] = defaultdict(Counter)
    for x in seeded.outcomes:
        if _in_range(x["closed_at"], seeded):
            groups[(x["service"], x["channel"], x["kind"])][x["status"]] += 1
    rows = seeded.run(q.KEEP_RATE_TABLE, kind=[_hex("max_wait"), _hex("deadline")])
    assert {(r["service"], r["channel"], r["kind"]) for r in rows} == {
        key for key in groups if key[2] in ("max_wait", "deadline")
    }
    for r in rows:
        status = groups[(r["service"], r["channel"], r["kind"])]
        assert (int(r["kept"]), int(r["broken"]), int(r["unverifiable"])) == (
            status["kept"],
            status["broken"],
            status["expired"],
        )
        decided = status["kept"] + status["broken"]
        expected = status["kept"] / decided if decided else None
        assert r["keep_rate"] == (pytest.approx(expected) if expected is not None else None)
    rates = [r["keep_rate"] for r in rows if r["keep_rate"] is not None]
    assert rates == sorted(rates), "worst first"


def _active(seeded: Seeded) -> list[dict]:
    return [v for v in seeded.violations.values() if _in_range(v["occurred_at"], seeded)]


def test_broken_promises_by_reason(seeded):
    promises: dict[str, set] = defaultdict(set)
    for v in _active(seeded):
        promises[v["reason"]].add(v["promise_id"])
    rows = seeded.run(q.BROKEN_BY_REASON)
    assert {r["reason"]: int(r["broken_promises"]) for r in rows} == {
        reason: len(ids) for reason, ids in promises.items()
    }
    assert len(rows) >= 6  # the seed breaks promises for most reasons


def test_customers_affected(seeded):
    subjects = {v["subject"] for v in _active(seeded) if v["subject"] is not None}
    assert seeded.run(q.CUSTOMERS_AFFECTED)[0]["customers_affected"] == len(subjects) > 0
    story = {
        v["subject"] for v in _active(seeded) if v["service"] in STORY_SERVICES and v["subject"]
    }
    got = seeded.run(q.CUSTOMERS_AFFECTED, service=[_hex(s) for s in STORY_SERVICES])
    assert got[0]["customers_affected"] == len(story)


def test_total_excess_in_the_customers_units(seeded):
    total: Counter[str] = Counter()
    for v in _active(seeded):
        total[v["reason"]] += v["excess"] or 0
    row = seeded.run(q.TOTAL_EXCESS)
    assert row[0]["minutes_on_hold_beyond_promise"] == pytest.approx(total["wait_exceeded"] / 60)
    assert row[0]["hours_delivered_late"] == pytest.approx(total["delivered_late"] / 3600)
    assert row[0]["days_closed_early"] == pytest.approx(total["enforced_early"] / 86400)
    assert row[0]["extra_steps"] == pytest.approx(total["too_many_steps"])
    # the yearbook story alone: 14 h 47 min 59 s early, a 1200 s hold against 120 s promised
    story = seeded.run(q.TOTAL_EXCESS, service=[_hex(s) for s in STORY_SERVICES[:2]])
    assert story[0]["days_closed_early"] == pytest.approx(53279 / 86400)
    assert story[0]["minutes_on_hold_beyond_promise"] == pytest.approx(1080 / 60)


def test_worst_broken_promises_show_the_words_the_customer_read(seeded):
    rows = seeded.run(q.WORST_BROKEN, service=[_hex(s) for s in STORY_SERVICES])
    active = [v for v in _active(seeded) if v["service"] in STORY_SERVICES]
    assert len(rows) == len(active) > 0
    assert {r["violation_id"] for r in rows} == {v["violation_id"] for v in active}
    by_id = {v["violation_id"]: v for v in active}
    for r in rows:
        v = by_id[r["violation_id"]]
        assert (r["customer_read"], r["channel"], r["expected"], r["observed"]) == (
            v["promise_text"],
            v["channel"],
            v["expected"],
            v["observed"],
        )
    # order: paging severity, then nothing delivered at all, then the largest excess
    keys = [
        (
            by_id[r["violation_id"]]["labels"].get("severity", "ticket") != "page",
            by_id[r["violation_id"]]["excess"] is not None,
        )
        for r in rows
    ]
    assert keys == sorted(keys)
    hold = next(r for r in rows if r["reason"] == "wait_exceeded")
    assert hold["beyond_promise"] == "18 minutes"
    everything = seeded.run(q.WORST_BROKEN)
    assert len(everything) == min(50, len(_active(seeded)))


def test_detection_latency(seeded):
    # a replay detects everything at once, at the end: latency = replay time - occurred_at
    rows = seeded.run(q.DETECTION_LATENCY)
    assert rows
    latencies = sorted(
        v["detected_at"] - v["occurred_at"]
        for v in seeded.violations.values()
        if _in_range(v["occurred_at"], seeded)
    )
    worst = max(r["worst"] for r in rows)
    # first detection may precede the final emission (a changed violation keeps its id)
    assert 0 <= worst <= latencies[-1] + 1
    assert all(r["p50"] <= r["p95"] <= r["worst"] for r in rows)


# --- on-call -------------------------------------------------------------------------------


def test_violations_in_the_last_hour(seeded):
    end = seeded.end
    expected = sum(1 for v in seeded.violations.values() if end - 3600 < v["detected_at"] <= end)
    assert seeded.run(q.VIOLATIONS_LAST_HOUR)[0]["violations"] == expected > 0
    ago = Request(seeded.start, end + 7200, DAY_MS, ALL_VARIABLES)
    later = seeded.store.rows(dashboard_sql(q.VIOLATIONS_LAST_HOUR, ago))
    assert later[0]["violations"] == 0


def test_recent_violations_filter_by_the_id_an_alert_links_to(seeded):
    vid = next(iter(seeded.violations))
    rows = seeded.run(q.RECENT_VIOLATIONS, violation_id=vid)
    assert [r["violation_id"] for r in rows] == [vid]
    assert len(seeded.run(q.RECENT_VIOLATIONS)) == min(200, len(seeded.violations))


def test_reject_rate_by_reason(seeded):
    rows = seeded.run(q.REJECT_RATE)
    per_reason: Counter[str] = Counter()
    for r in rows:
        per_reason[r["reason"]] += r["rejects_per_minute"] * 86400 / 60  # back to counts
    expected = Counter(r["reason"] for r in seeded.rejects)
    assert expected
    assert {k: round(v) for k, v in per_reason.items()} == dict(expected)
    assert len(seeded.run(q.RECENT_REJECTS)) == min(100, len(seeded.rejects))


def test_sink_lag_and_freshness(seeded):
    rows = seeded.run(q.SINK_LAG)
    assert rows and all(0 <= r["p50"] <= r["p99"] for r in rows)
    since = seeded.run(q.SINCE_LAST_ROW)[0]["seconds_since_last_row"]
    assert 0 < since <= seeded.end - seeded.start


# --- alert rules ---------------------------------------------------------------------------


def _rule(uid: str) -> dict:
    rules = json.loads((GRAFANA / "provisioning" / "alerting" / "promise-tracker.json").read_text())
    found = [r for g in rules["groups"] for r in g["rules"] if r["uid"] == uid]
    assert len(found) == 1
    return found[0]


def _run_rule(store: ClickHouseStore, rule: dict, at: float) -> tuple[list[dict], float]:
    query = rule["data"][0]
    window = query["relativeTimeRange"]
    request = Request(at - window["from"], at - window["to"], query["model"]["intervalMs"])
    threshold = rule["data"][1]["model"]["conditions"][0]["evaluator"]["params"][0]
    return store.rows(alert_sql(query["model"]["rawSql"], request)), threshold


@pytest.fixture
def scratch(seeded) -> Iterator[ClickHouseStore]:
    """An empty database beside the seeded one, for rule scenarios."""
    from promise_tracker.sinks.migrate import migrate

    name = "alert_rules_scratch"
    # a client of its own on the same engine (chdb: one directory per process, any number
    # of clients on it), its USE apart from the seeded store's
    scratch = ClickHouseStore(seeded.store.path, name).connect()
    scratch.command("DROP DATABASE IF EXISTS {db}")
    migrate(scratch)
    scratch.command("USE {db}")  # the rules' SQL names its tables without a database
    try:
        yield scratch
    finally:
        scratch.command("DROP DATABASE IF EXISTS {db}")
        scratch.close()


def _outcomes(store: ClickHouseStore, rows: list[tuple[str, str, float]]) -> None:
    """(service, status, closed_at) rows; each a promise of its own."""
    store.insert(
        "outcomes",
        ["promise_id", "status", "closed_at", "service", "channel", "kind", "issued_at"]
        + ["updated_at", "version"],
        [
            [f"p{n}", status, at, service, "web", "deliver_by", at - 3600, at, 1]
            for n, (service, status, at) in enumerate(rows)
        ],
    )


@pytest.mark.parametrize(
    "uid,long_s,short_min,factor", [r[:1] + r[2:] for r in alert_rules.BURN_RATES]
)
def test_burn_rate_rules_need_both_windows(scratch, uid, long_s, short_min, factor):
    rule = _rule(uid)
    at = 1_800_000_000.0
    budget = 1 - q.OBJECTIVE
    # "fast": every recent decision broken, and the long window too
    rows = [("fast", "broken", at - 60 - i) for i in range(40)]
    rows += [("fast", "kept", at - long_s + 600 + i) for i in range(40)]
    # "blip": a burst in the short window, a clean long window
    rows += [("blip", "broken", at - 30)] + [
        ("blip", "kept", at - long_s + 900 + i) for i in range(2000)
    ]
    # "old": broken long ago, nothing decided lately
    rows += [("old", "broken", at - long_s + 300 + i) for i in range(50)]
    _outcomes(scratch, rows)
    result, threshold = _run_rule(scratch, rule, at)
    assert threshold == factor
    burn = {r["service"]: r["burn_rate"] for r in result}
    assert burn["fast"] == pytest.approx(min(40 / 80, 1.0) / budget)
    assert burn["fast"] > threshold
    assert burn["blip"] == pytest.approx((1 / 2001) / budget) and burn["blip"] < threshold
    assert burn["old"] == 0  # nothing decided in the short window burns nothing


def _rejects(store: ClickHouseStore, times: list[float], prefix: str) -> None:
    store.insert(
        "rejects",
        ["reject_id", "reason", "message", "origin", "raw", "rejected_at", "version"],
        [[f"{prefix}{n}", "invalid_json", "", "t", "x", at, 1] for n, at in enumerate(times)],
    )


def test_dlq_spike_rule(scratch):
    rule = _rule("promise-dlq-spike")
    at = 1_800_000_000.0
    _rejects(scratch, [at - 3000 + 10 * i for i in range(100)], "old")  # 100 in 55 min
    result, threshold = _run_rule(scratch, rule, at)
    assert result[0]["spike"] == 0  # nothing recent
    _rejects(scratch, [at - 200 + i for i in range(200)], "new")  # 40 a minute, last 5 min
    result, threshold = _run_rule(scratch, rule, at)
    baseline = 100 / 55
    assert result[0]["spike"] == pytest.approx(40 / baseline)
    assert result[0]["spike"] > threshold


def test_stalled_rule(scratch):
    rule = _rule("promise-pipeline-stalled")
    at = 1_800_000_000.0
    result, threshold = _run_rule(scratch, rule, at)
    assert result[0]["stalled_seconds"] == 0  # nothing open, nothing stalled
    stored = dt.datetime.fromtimestamp(at - 900, dt.UTC)
    scratch.insert(
        "outcomes",
        ["promise_id", "status", "service", "channel", "kind", "issued_at", "updated_at"]
        + ["version", "stored_at"],
        [["p1", "open", "s", "web", "deliver_by", at - 1000, at - 1000, 1, stored.timestamp()]],
    )
    result, threshold = _run_rule(scratch, rule, at)
    assert result[0]["stalled_seconds"] == 900 > threshold
    result, _ = _run_rule(scratch, rule, at - 600)
    assert result[0]["stalled_seconds"] == 300 < threshold
    assert math.isfinite(threshold)

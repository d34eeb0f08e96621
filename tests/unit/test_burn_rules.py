"""The alert rules generated from objectives (docs/objectives.md): each rule's SQL runs on real
chdb, expanded as Grafana and the ClickHouse plugin do, on scenarios built for it, and its
answers are held to burn rates computed here from the same rows."""

from __future__ import annotations

import itertools
import json
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from promise_tracker.dashboards import alert_rules, build
from promise_tracker.dashboards.alert_rules import TIERS, Tier
from promise_tracker.objectives.load import load_objectives
from promise_tracker.objectives.model import Objective
from promise_tracker.sinks.store import ClickHouseStore
from tests.cli import cli

# the seeded chdb and a scratch database beside it (fixtures), and the rule runner, as
# Grafana runs a rule: test_panels.py's
from tests.unit.test_panels import _run_rule, scratch, seeded  # noqa: F401

AT = 1_800_000_000.0  # when the rules are evaluated
HOUR = 3600.0
_ids = itertools.count()


@dataclass(frozen=True)
class Row:
    """One promise, decided (or not) at ``closed_at``."""

    service: str
    status: str
    closed_at: float
    channel: str = "web"
    kind: str = "deliver_by"
    labels: dict[str, str] = field(default_factory=dict)


def _objective(tmp_path: Path, spec: str, annotations: str = "") -> Objective:
    """One objective from an OpenSLO document: ``spec`` is total's metricSource.spec."""
    filters = textwrap.indent(textwrap.dedent(spec).strip(), " " * 14)
    text = f"""\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: scenario
{annotations}spec:
  service: shop/checkout
  budgetingMethod: Occurrences
  timeWindow: [{{duration: 28d, isRolling: true}}]
  indicator:
    spec:
      ratioMetric:
        good: {{metricSource: {{type: promise-tracker, spec: {{outcome: kept}}}}}}
        total:
          metricSource:
            type: promise-tracker
            spec:
{filters}
  objectives: [{{target: 0.99}}]
"""
    path = tmp_path / "objectives.yaml"
    path.write_text(text)
    [objective] = load_objectives(path)
    return objective


SHOP = "outcome: decided"


@pytest.fixture
def db(scratch: ClickHouseStore) -> ClickHouseStore:  # noqa: F811
    """An empty migrated database, the rules' tables unqualified (test_panels.py's scratch)."""
    return scratch


def _insert(store: ClickHouseStore, rows: Iterable[Row]) -> list[Row]:
    rows = list(rows)
    ids = [f"p{next(_ids)}" for _ in rows]
    store.insert(
        "outcomes",
        ["promise_id", "status", "closed_at", "service", "channel", "kind", "issued_at"]
        + ["updated_at", "version"],
        [
            [i, r.status, r.closed_at, r.service, r.channel, r.kind, r.closed_at - HOUR]
            + [r.closed_at, 1]
            for i, r in zip(ids, rows, strict=True)
        ],
    )
    store.insert(
        "promises",
        ["promise_id", "service", "channel", "kind", "issued_at", "labels", "version"],
        [
            [i, r.service, r.channel, r.kind, r.closed_at - HOUR, r.labels, 1]
            for i, r in zip(ids, rows, strict=True)
        ],
    )
    return rows


def _expected(rows: list[Row], tier: Tier, budget: float) -> float:
    """The tier's burn rate computed from the rows: the smaller of the error ratios over the
    long and the short window, over the error budget; a window with nothing decided, 0."""

    def ratio(since: float) -> float:
        decided = [r for r in rows if since < r.closed_at <= AT and r.status in ("kept", "broken")]
        return sum(r.status == "broken" for r in decided) / len(decided) if decided else 0.0

    return min(ratio(AT - tier.long_s), ratio(AT - tier.short_min * 60)) / budget


@dataclass(frozen=True)
class Verdict:
    burn_rate: float
    fires: bool
    severity: str


def _evaluate(store: ClickHouseStore, objective: Objective) -> dict[str, Verdict | None]:
    """Each tier's rule run as Grafana runs it at AT: its one row (or None: no data, which
    the rule takes as OK), whether it is above the threshold, and its severity (the rule's
    label wins over the query's column, as in Grafana)."""
    verdicts: dict[str, Verdict | None] = {}
    for tier, rule in zip(TIERS, alert_rules.objective_rules(objective), strict=True):
        assert rule["noDataState"] == "OK"
        found, threshold = _run_rule(store, rule, AT)
        assert threshold == tier.factor
        assert len(found) <= 1
        if not found:
            verdicts[tier.key] = None
            continue
        [row] = found
        severity = rule["labels"].get("severity", row.get("severity"))
        verdicts[tier.key] = Verdict(row["burn_rate"], row["burn_rate"] > threshold, severity)
    return verdicts


def _check(verdicts: dict[str, Verdict | None], rows: list[Row], objective: Objective) -> None:
    counted = [r for r in rows if r.service == objective.service]
    for tier in TIERS:
        verdict = verdicts[tier.key]
        assert verdict is not None
        assert verdict.burn_rate == pytest.approx(
            _expected(counted, tier, objective.error_budget)
        ), tier


def test_a_fast_burn_pages(db, tmp_path):
    objective = _objective(tmp_path, SHOP)
    # 100 decided in the last hour, the 40 broken ones within the last five minutes
    rows = _insert(db, [Row("shop/checkout", "kept", AT - 3000 + i) for i in range(60)])
    rows += _insert(db, [Row("shop/checkout", "broken", AT - 240 + i) for i in range(40)])
    verdicts = _evaluate(db, objective)
    _check(verdicts, rows, objective)
    fast = verdicts["fast"]
    assert fast is not None and fast.burn_rate == pytest.approx(0.4 / 0.01)
    assert fast.fires and fast.severity == "page"
    assert verdicts["slow"] == Verdict(pytest.approx(40.0), True, "page")
    assert verdicts["ticket"] == Verdict(pytest.approx(40.0), True, "ticket")


def test_a_slow_burn_tickets(db, tmp_path):
    objective = _objective(tmp_path, SHOP)
    # three days at 1 broken in 40 (2.5 %: 2.5x a 1 % budget), one promise every 5 minutes,
    # the broken ones evenly spread (none in the last hour)
    times = [AT - 3 * 86400 + 300 * (i + 1) for i in range(864)]
    rows = _insert(
        db,
        [
            Row("shop/checkout", "broken" if i % 40 == 20 and t < AT - HOUR else "kept", t)
            for i, t in enumerate(times)
        ],
    )
    verdicts = _evaluate(db, objective)
    _check(verdicts, rows, objective)
    assert verdicts["fast"] is not None and not verdicts["fast"].fires
    assert verdicts["slow"] is not None and not verdicts["slow"].fires
    ticket = verdicts["ticket"]
    assert ticket is not None and ticket.fires and ticket.severity == "ticket"
    assert 1 < ticket.burn_rate < 6


def test_no_breach_stays_quiet(db, tmp_path):
    objective = _objective(tmp_path, SHOP)
    # 1 broken in 200 (0.5 %, half the budget) over three days, 17 hours ago;
    # expired, cancelled and open promises count for nothing
    times = [AT - 3 * 86400 + 1296 * (i + 1) for i in range(200)]
    rows = [Row("shop/checkout", "broken" if i == 150 else "kept", t) for i, t in enumerate(times)]
    rows += [Row("shop/checkout", status, AT - 60) for status in ("expired", "cancelled") * 20]
    rows = _insert(db, rows)
    verdicts = _evaluate(db, objective)
    _check(verdicts, rows, objective)
    assert all(v is not None and not v.fires for v in verdicts.values()), verdicts


def test_low_traffic_tickets_instead_of_paging(db, tmp_path):
    """The issue's case: a service that breaks 1 of 2 promises in an hour does not page."""
    objective = _objective(tmp_path, SHOP)
    rows = _insert(
        db,
        [Row("shop/checkout", "kept", AT - 1800), Row("shop/checkout", "broken", AT - 120)],
    )
    verdicts = _evaluate(db, objective)
    _check(verdicts, rows, objective)
    for key in ("fast", "slow", "ticket"):
        verdict = verdicts[key]
        assert verdict is not None and verdict.burn_rate == pytest.approx(0.5 / 0.01)
        assert verdict.fires and verdict.severity == "ticket", key


def test_the_guard_counts_the_long_window_and_is_set_per_objective(db, tmp_path):
    annotation = '  annotations: {"promise-tracker/page-min-decided": "30"}\n'
    objective = _objective(tmp_path, SHOP, annotation)
    assert objective.page_min_decided == 30
    # 25 decided in the last hour (all broken), 10 more earlier in the six hours
    rows = _insert(db, [Row("shop/checkout", "broken", AT - 200 - i) for i in range(25)])
    rows += _insert(db, [Row("shop/checkout", "broken", AT - 4 * HOUR + i) for i in range(10)])
    verdicts = _evaluate(db, objective)
    _check(verdicts, rows, objective)
    fast, slow = verdicts["fast"], verdicts["slow"]
    assert fast is not None and fast.fires and fast.severity == "ticket"  # 25 < 30 in 1 h
    assert slow is not None and slow.fires and slow.severity == "page"  # 35 >= 30 in 6 h


def test_only_the_objectives_promises_count(db, tmp_path):
    objective = _objective(
        tmp_path,
        """
        outcome: decided
        channel: sms
        kind: deliver_by
        labels: {team: store-0412}
        """,
    )
    assert dict(objective.filters) == {
        "service": "shop/checkout",
        "channel": "sms",
        "kind": "deliver_by",
        "label:team": "store-0412",
    }
    mine = {"channel": "sms", "kind": "deliver_by", "labels": {"team": "store-0412"}}
    rows = [Row("shop/checkout", "kept", AT - 600 - i, **mine) for i in range(30)]
    rows += [Row("shop/checkout", "broken", AT - 60, **mine)]
    others = [
        Row("shop/checkout", "broken", AT - 60, "email", "deliver_by", {"team": "store-0412"}),
        Row("shop/checkout", "broken", AT - 60, "sms", "max_wait", {"team": "store-0412"}),
        Row("shop/checkout", "broken", AT - 60, "sms", "deliver_by", {"team": "store-0999"}),
        Row("shop/checkout", "broken", AT - 60, "sms", "deliver_by", {}),
        Row("shop/other", "broken", AT - 60, "sms", "deliver_by", {"team": "store-0412"}),
    ]
    _insert(db, rows + others * 5)
    verdicts = _evaluate(db, objective)
    for key in ("fast", "slow", "ticket"):
        verdict = verdicts[key]
        assert verdict is not None, key
        assert verdict.burn_rate == pytest.approx(min(1 / 31, 1 / 1) / 0.01), key
        assert verdict.severity == ("ticket" if key == "ticket" else "page")


def test_nothing_decided_is_no_data_and_a_hostile_name_is_data(db, tmp_path):
    hostile = "it's a \\' $__toTime */ -- shop"
    objective = _objective(tmp_path, SHOP)
    objective = replace(objective, service=hostile, filters={"service": hostile})
    assert all(v is None for v in _evaluate(db, objective).values())
    rows = _insert(db, [Row(hostile, "broken", AT - 60), Row("shop/checkout", "kept", AT - 60)])
    verdicts = _evaluate(db, objective)
    _check(verdicts, rows, objective)
    assert verdicts["fast"] == Verdict(pytest.approx(100.0), True, "ticket")


def test_services_without_an_objective_ticket_against_the_default(db):
    rows = [Row("shop/checkout", "broken", AT - 60 - i) for i in range(30)]
    rows += [Row("nobody/owns", "broken", AT - 60 - i) for i in range(30)]
    _insert(db, rows)
    for uid, title, long_s, short_min, factor in alert_rules.BURN_RATES:
        rule = alert_rules.burn_rate_rule(uid, title, long_s, short_min, factor, ["shop/checkout"])
        found, threshold = _run_rule(db, rule, AT)
        assert [r["service"] for r in found] == ["nobody/owns"]  # shop/checkout has its own
        assert found[0]["burn_rate"] == pytest.approx(100.0) and threshold < 100
        assert rule["labels"]["severity"] == "ticket"


def test_text_from_the_file_is_not_a_grafana_template(tmp_path):
    objective = replace(_objective(tmp_path, SHOP), display_name="{{ $labels.x }} shop")
    for rule in alert_rules.objective_rules(objective):
        assert rule["annotations"]["summary"].startswith("{ { $labels.x } } shop: ")


def test_rule_uids_fit_grafana_and_stay_unique():
    long = "a" * 63
    uids = [alert_rules._uid(name, "ticket") for name in (long, long[:-1] + "b", "short")]
    assert all(len(u) <= alert_rules.UID_MAX for u in uids)
    assert len(set(uids)) == 3 and uids[2] == "slo-short-ticket"


def test_the_committed_rules_are_the_example_objectives(tmp_path):
    """What ``dashboards --check`` expects: the committed file is written from
    examples/objectives.yaml; other objectives give another file, which --check refuses."""
    path = build.GRAFANA / "provisioning" / "alerting" / "promise-tracker.json"
    committed = json.loads((build.ROOT / path).read_text())
    examples = load_objectives(build.OBJECTIVES)
    assert committed == alert_rules.provisioning(examples)
    groups = {g["name"]: g["rules"] for g in committed["groups"]}
    assert [r["uid"] for r in groups["objectives"]] == [
        f"slo-{o.name}-{t.key}" for o in examples for t in TIERS
    ]
    assert cli("dashboards", "--check").returncode == 0
    other = tmp_path / "other.yaml"
    other.write_text((build.OBJECTIVES).read_text().replace("target: 0.99\n", "target: 0.999\n", 1))
    done = cli("dashboards", "--check", "--objectives", str(other))
    assert done.returncode == 1 and str(path) in done.stdout
    assert build.write(tmp_path, load_objectives(other))  # a deployment's own objectives
    assert build.drifted(tmp_path, load_objectives(other)) == []
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: openslo/v1\nkind: SLO\n")
    done = cli("dashboards", "--check", "--objectives", str(broken))
    assert done.returncode == 2 and "metadata.name: missing" in done.stderr

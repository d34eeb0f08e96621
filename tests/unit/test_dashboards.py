"""Dashboards as code: the committed files are what the code writes, they hang together with
the provisioning files, and the macro expansion the panel tests rely on is the plugin's."""

from __future__ import annotations

import json

import pytest
import yaml

from promise_tracker.dashboards import build
from promise_tracker.dashboards.macros import (
    ALL,
    Request,
    alert_sql,
    backend_macros,
    conditional_all,
    dashboard_sql,
    template_variables,
)
from promise_tracker.objectives.load import load_objectives
from tests.cli import cli
from tests.support import ROOT

GRAFANA = ROOT / "deploy" / "grafana"
F, T = 1_700_000_000.0, 1_700_086_400.5


def _boards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in (GRAFANA / "dashboards").glob("*.json")}


def test_committed_files_are_what_the_code_writes():
    assert build.drifted() == [], "run: promise-tracker dashboards --write"
    assert build.render() == build.render()  # deterministic


def test_the_check_command_passes_and_names_a_stale_file(tmp_path):
    assert cli("dashboards", "--check").returncode == 0
    for path in build.FILES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("{}\n")
    stale = build.drifted(tmp_path)
    assert stale == list(build.FILES)
    assert build.write(tmp_path) == list(build.FILES) and build.drifted(tmp_path) == []


def test_panels_use_the_provisioned_data_sources_and_right_formats():
    uids = set()
    for source in (GRAFANA / "provisioning" / "datasources").glob("*.yaml"):
        uids |= {d["uid"] for d in yaml.safe_load(source.read_text())["datasources"]}
    assert uids == {"clickhouse", "prometheus"}
    boards = _boards()
    assert set(boards) == {"leadership.json", "oncall.json"}
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert ids == list(range(1, len(ids) + 1)), name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] in uids
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                if panel["datasource"]["uid"] == "clickhouse":
                    assert target["editorType"] == "sql" and target["rawSql"]
                    assert target["format"] == (0 if panel["type"] == "timeseries" else 1)
                else:
                    assert target["expr"].startswith(("sum", "max"))
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
        names = [v["name"] for v in board["templating"]["list"]]
        assert "service" in names
    leadership = {v["name"] for v in boards["leadership.json"]["templating"]["list"]}
    assert leadership == {"service", "channel", "kind"}


def test_dashboard_provider_points_where_compose_mounts_the_files():
    provider = yaml.safe_load(
        (GRAFANA / "provisioning/dashboards/promise-tracker.yaml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in mounts


def test_alert_rules_reference_the_data_source_and_route_by_severity():
    rules = json.loads((GRAFANA / "provisioning/alerting/promise-tracker.json").read_text())
    found = [r for group in rules["groups"] for r in group["rules"]]
    # the fixed 99 % rules now hold only the services no objective names, and ticket; each
    # objective of examples/objectives.yaml has the workbook's three burn-rate rules
    objectives = load_objectives(build.OBJECTIVES)
    assert {r["uid"] for r in found} == {
        "promise-burn-fast",
        "promise-burn-slow",
        "promise-dlq-spike",
        "promise-pipeline-stalled",
    } | {f"slo-{o.name}-{tier}" for o in objectives for tier in ("fast", "slow", "ticket")}
    assert len({r["title"] for r in found}) == len(found)  # Grafana: unique in a folder
    for rule in found:
        query, condition = rule["data"]
        sql = query["model"]["rawSql"]
        assert query["datasourceUid"] == "clickhouse" and sql
        assert condition["model"]["expression"] == "A" and rule["condition"] == "B"
        # the severity is the rule's, or (a paging burn rate: the low-traffic guard) the query's
        assert rule["labels"].get("severity") in ("page", "ticket") or (
            "'page', 'ticket') AS severity" in sql and rule["uid"].endswith(("-fast", "-slow"))
        )
        assert "$__conditionalAll" not in sql  # no browser in alerting
    severity = {r["uid"]: r["labels"].get("severity") for r in found}
    assert severity["promise-burn-fast"] == severity["promise-burn-slow"] == "ticket"
    windows = {r["uid"]: r["data"][0]["relativeTimeRange"]["from"] for r in found}
    assert windows["promise-burn-fast"] == 3600 and windows["promise-burn-slow"] == 6 * 3600
    for objective in objectives:
        assert windows[f"slo-{objective.name}-fast"] == 3600
        assert windows[f"slo-{objective.name}-slow"] == 6 * 3600
        assert windows[f"slo-{objective.name}-ticket"] == 3 * 86400
        assert severity[f"slo-{objective.name}-ticket"] == "ticket"
    assert rules["contactPoints"][0]["receivers"][0]["type"] == "prometheus-alertmanager"


# --- the plugin's macros --------------------------------------------------------------------


def test_backend_macros_are_expanded_as_the_plugin_does():
    request = Request(F, T, interval_ms=300_000)
    cases = {
        "$__timeFilter(t)": "t >= toDateTime(1700000000) AND t <= toDateTime(1700086400)",
        "$__timeFilter_ms(t)": (
            "t >= fromUnixTimestamp64Milli(1700000000000) AND "
            "t <= fromUnixTimestamp64Milli(1700086400500)"
        ),
        "$__dateFilter(d)": "d >= toDate('2023-11-14') AND d <= toDate('2023-11-15')",
        "$__fromTime": "toDateTime(1700000000)",
        "$__toTime": "toDateTime(1700086400)",
        "$__fromTime_ms": "fromUnixTimestamp64Milli(1700000000000)",
        "$__timeInterval(t)": "toStartOfInterval(toDateTime(t), INTERVAL 300 second)",
        "$__timeInterval_ms(t)": (
            "toStartOfInterval(toDateTime64(t, 3), INTERVAL 300000 millisecond)"
        ),
        "$__interval_s": "300",
        "$__timeInterval( toDate(x, 'UTC') )": (
            "toStartOfInterval(toDateTime(toDate(x, 'UTC')), INTERVAL 300 second)"
        ),
    }
    for macro, expected in cases.items():
        assert backend_macros(macro, request) == expected, macro
    assert backend_macros("$__interval_s", Request(F, T, interval_ms=200)) == "1"  # at least 1
    with pytest.raises(ValueError, match="expected 1 argument"):
        backend_macros("$__timeFilter(a, b)", request)
    with pytest.raises(ValueError, match="not a macro"):
        backend_macros("$__nope(a)", request)


def test_comments_go_before_expansion():
    sql = "SELECT 1 -- $__timeFilter(\n/* $__nope */ FROM t WHERE $__timeFilter(x)"
    assert alert_sql(sql, Request(F, T)) == (
        "SELECT 1 \n FROM t WHERE x >= toDateTime(1700000000) AND x <= toDateTime(1700086400)"
    )


def test_conditional_all():
    cond = "$__conditionalAll(s IN (${s:singlequote}), $s)"
    assert conditional_all(cond, {"s": [ALL]}) == "1=1"
    assert conditional_all(cond, {"s": []}) == "1=1"
    assert conditional_all(cond, {"s": ""}) == "1=1"
    assert conditional_all(cond, {"s": ["a"]}) == "s IN (${s:singlequote})"
    braces = "$__conditionalAll(f(a, b) = 1, ${s})"
    assert conditional_all(braces, {"s": [ALL]}) == "1=1"
    assert conditional_all(braces, {"s": "x"}) == "f(a, b) = 1"
    # a variable the dashboard does not have keeps the condition, as the plugin does
    assert conditional_all(cond, {}) == "s IN (${s:singlequote})"
    nested = f"a AND {cond} AND $__conditionalAll(k = 1, $k)"
    assert conditional_all(nested, {"s": ["x"], "k": [ALL]}) == (
        "a AND s IN (${s:singlequote}) AND 1=1"
    )


def test_template_variables():
    values = {"s": ["a", "o'b"], "one": "x", "many": ["a", "b"]}
    assert template_variables("(${s:singlequote})", values) == "('a','o\\'b')"
    assert template_variables("$one ${one}", values) == "x x"
    assert template_variables("($many)", values) == "('a','b')"
    assert template_variables("$__interval_s $unknown", values) == "$__interval_s $unknown"
    with pytest.raises(ValueError, match="singlequote"):
        template_variables("${s:csv}", values)


def test_dashboard_sql_runs_both_stages_in_order():
    sql = "SELECT 1 WHERE $__conditionalAll(s IN (${s:singlequote}), $s) AND $__timeFilter(t)"
    request = Request(F, T, 1000, {"s": ["a"]})
    assert dashboard_sql(sql, request) == (
        "SELECT 1 WHERE s IN ('a') AND t >= toDateTime(1700000000) AND t <= toDateTime(1700086400)"
    )

#!/usr/bin/env python3
"""An objective's budget query with a label filter: the label sub-query over ``promises``
reading the whole table, against the same sub-query narrowed to the objective's service,
channel and kind (``promises`` is ordered by them), and a plain count in the same run:

    python3 bench/objective_filter.py --store bench/out/report-store-2710000-seed1 [--rounds 15]

The store is one that bench/report.py built (a replay of a generated stream into chdb); use
a copy if bench/report.py may be running on it. Two objectives: northbank-hold-time from
examples/objectives.yaml (a service the generated stream does not have), and the same shape
on a service it has (support/callcenter, phone, max_wait, label team=care). Both variants
are built here and checked against ``objectives.sql.selects``: one of them must be what it
writes. Each query is the budget row's (dashboards/budget.py ``figures``) as Grafana sends it
for the stream's last 30 days. Medians over ``--rounds``, the variants interleaved; a
benchmark, not a test: it fails only when the two variants answer differently.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promise_tracker.dashboards import budget  # noqa: E402
from promise_tracker.dashboards.macros import Request, dashboard_sql  # noqa: E402
from promise_tracker.objectives.load import load_objectives  # noqa: E402
from promise_tracker.objectives.model import FILTER_KEYS, Objective  # noqa: E402
from promise_tracker.objectives.sql import literal, selects  # noqa: E402
from promise_tracker.report.figures import qualified  # noqa: E402
from promise_tracker.sinks.store import ClickHouseStore  # noqa: E402

DATABASE = "promise_tracker_replay"
BASELINE = "SELECT count() AS n FROM {db}.outcomes"
DAY = 86_400
PRESENT = {
    "service": "support/callcenter",
    "channel": "phone",
    "kind": "max_wait",
    "label:team": "care",
}


def sub_query(objective: Objective, narrowed: bool) -> str:
    """The label sub-query, reading all of ``promises`` or only the objective's part."""
    conditions = [
        f"{key} = {literal(objective.filters[key])}"
        for key in FILTER_KEYS
        if narrowed and key in objective.filters  # as selects() writes them
    ]
    conditions += [
        f"labels[{literal(k)}] = {literal(v)}" for k, v in sorted(objective.labels.items())
    ]
    having = " AND ".join(conditions)
    return f"promise_id IN (SELECT promise_id FROM promises FINAL WHERE {having})"


def variants(objective: Objective, request: Request) -> dict[str, str]:
    """The budget row's query with each sub-query, as ClickHouse receives it."""
    sql = budget.figures(objective)
    current = selects(objective)
    found = [n for n in (False, True) if sub_query(objective, n) in current]
    assert found, f"objectives.sql.selects writes neither variant:\n{current}"
    written = sub_query(objective, found[0])
    return {
        name: qualified(dashboard_sql(sql.replace(written, sub_query(objective, n)), request))
        for name, n in (("whole table", False), ("narrowed", True))
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="a report-store-* directory")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    (example,) = [o for o in load_objectives(ROOT / "examples" / "objectives.yaml") if o.labels]
    present = dataclasses.replace(example, name="present-service", filters=PRESENT)
    store = ClickHouseStore(args.store / "chdb", DATABASE).connect()
    try:
        (last,) = store.rows(
            "SELECT toUnixTimestamp64Micro(max(issued_at)) AS t FROM {db}.promises"
        )
        until = int(last["t"]) / 1e6 + 600  # about the stream's watermark, as bench/report.py
        request = Request(until - 30 * DAY, until, 3_600_000, {})
        queries = {"count()": BASELINE}
        for objective in (example, present):
            for variant, sql in variants(objective, request).items():
                queries[f"{objective.name}: {variant}"] = sql
        answers = {name: store.rows(sql) for name, sql in queries.items()}  # warm-up
        for name in (example.name, present.name):
            wide, narrow = answers[f"{name}: whole table"], answers[f"{name}: narrowed"]
            if wide != narrow:
                print(f"{name}: the variants differ\n{wide}\n{narrow}")
                return 1
        times: dict[str, list[float]] = {name: [] for name in queries}
        for _ in range(args.rounds):
            for name, sql in queries.items():
                started = time.perf_counter()
                store.rows(sql)
                times[name].append(time.perf_counter() - started)
        (promises,) = store.rows("SELECT count() AS n FROM {db}.promises FINAL")
        (own,) = store.rows(
            "SELECT count() AS n FROM {db}.promises FINAL WHERE service = 'support/callcenter'"
        )
    finally:
        store.close()
    print(f"store {args.store}: {promises['n']:,} promises, {own['n']:,} of support/callcenter")
    print(f"medians of {args.rounds} rounds")
    base = statistics.median(times["count()"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<42} {median * 1000:9.1f} ms {median / base:8.0f}x count()")
    return 0


if __name__ == "__main__":
    sys.exit(main())

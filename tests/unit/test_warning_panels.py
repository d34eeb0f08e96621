"""The at-risk panels (SPEC 4.1) on real chdb: "At risk now" (on-call) and "warnings that
saved a promise" beside "warned, then broken" (leadership), against the replay's own
warnings file for the same stream."""

from __future__ import annotations

import time
from pathlib import Path

from promise_tracker.dashboards import queries as q
from promise_tracker.dashboards.macros import ALL, Request, dashboard_sql
from promise_tracker.sinks.store import ClickHouseStore
from tests.cli import cli
from tests.conformance.compare import final_warnings, read_jsonl
from tests.support import CASES

V2 = CASES / "v2"
OWN = Path(__file__).parents[1] / "conformance" / "own"
EVERYTHING = {"service": [ALL], "channel": [ALL], "kind": [ALL], "violation_id": ""}


def seeded(tmp_path: Path) -> tuple[ClickHouseStore, dict[str, dict]]:
    warnings = tmp_path / "w.jsonl"
    done = cli(
        "replay", str(V2 / "rules-v2.jsonl"), str(OWN / "own-v2.jsonl"),
        "--calendars", str(V2 / "calendars.toml"), "--warn-at", "0.5,0.75",
        "--violations", "/dev/null", "--outcomes", "/dev/null", "--rejects", "/dev/null",
        "--warnings", str(warnings), "--clickhouse", str(tmp_path / "chdb"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = ClickHouseStore(tmp_path / "chdb", "promise_tracker_replay").connect()
    store.command("USE promise_tracker_replay")  # the data source's defaultDatabase
    return store, final_warnings(read_jsonl(warnings))


def run(store: ClickHouseStore, sql: str, start: float, end: float) -> list[dict]:
    return store.rows(dashboard_sql(sql, Request(start, end, 86_400_000, EVERYTHING)))


def test_at_risk_now_lists_the_active_warnings_least_time_left_first(tmp_path: Path):
    store, final = seeded(tmp_path)
    try:
        now = time.time()
        rows = run(store, q.AT_RISK_NOW, now - 3600, now)
    finally:
        store.close()
    active = {wid: w for wid, w in final.items() if w["state"] == "active"}
    assert len(active) >= 3  # two published cases and our steps case
    assert [r["warning_id"] for r in rows] == sorted(
        active,
        key=lambda wid: (
            active[wid]["due_at"] is None,
            active[wid]["due_at"] or 0,
            active[wid]["warn_at"],
            wid,
        ),
    )
    for row in rows:
        want = active[row["warning_id"]]
        assert row["customer_read"] == want["promise_text"]
        assert row["label"] == want["label"]
        if want["due_at"] is None:
            assert row["seconds_left"] is None
        else:  # the due times are in the past of the wall clock: negative, and exact
            assert abs(row["seconds_left"] - (want["due_at"] - now)) < 60


def test_warnings_that_saved_a_promise_beside_those_that_broke_anyway(tmp_path: Path):
    store, final = seeded(tmp_path)
    resolved = [
        w
        for w in final.values()
        if w["state"] == "resolved" and not w["label"].startswith("contradiction:")
    ]
    times = [w["warn_at"] for w in resolved]
    try:
        (row,) = run(store, q.WARNINGS_SAVED, min(times) - 1, max(times) + 1)
        (none,) = run(store, q.WARNINGS_SAVED, min(times) - 86_400, min(times) - 3600)
    finally:
        store.close()
    saved = {w["promise_id"] for w in resolved if w["outcome"] == "kept"}
    broken = {w["promise_id"] for w in resolved if w["outcome"] == "broken"}
    assert saved and broken
    assert (row["saved"], row["broken_anyway"]) == (len(saved), len(broken))
    assert (none["saved"], none["broken_anyway"]) == (0, 0)

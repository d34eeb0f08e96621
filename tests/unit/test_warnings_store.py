"""At-risk warnings in ClickHouse (SPEC 4.1): the ``warnings`` table holds the last emission
per warning id, as the replay's warnings file says it, on real chdb."""

from __future__ import annotations

from pathlib import Path

from promise_tracker.sinks import readback
from promise_tracker.sinks.store import ClickHouseStore
from tests.cli import cli
from tests.conformance.compare import final_warnings, read_jsonl
from tests.support import CASES

V2 = CASES / "v2"


def test_replay_into_chdb_stores_the_final_warnings(tmp_path: Path):
    files = {name: tmp_path / f"{name}.jsonl" for name in ("v", "o", "r", "w")}
    done = cli(
        "replay", str(V2 / "rules-v2.jsonl"), "--calendars", str(V2 / "calendars.toml"),
        "--violations", str(files["v"]), "--outcomes", str(files["o"]),
        "--rejects", str(files["r"]), "--warnings", str(files["w"]),
        "--clickhouse", str(tmp_path / "chdb"), "--quiet", "--in-file-order",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    emissions = read_jsonl(files["w"])
    want = final_warnings(emissions)  # retracted ones dropped
    ids = {w["warning_id"] for w in emissions}
    store = ClickHouseStore(str(tmp_path / "chdb"), "promise_tracker_replay").connect()
    try:
        every = readback.warnings(store)
        assert readback.counts(store)["warnings"] == len(ids)  # one row per id
    finally:
        store.close()
    stored = {wid: w for wid, w in every.items() if w["state"] != "retracted"}
    assert set(stored) == set(want) and len(want) == 14
    for wid, mine in want.items():
        row = stored[wid]
        for key in ("promise_id", "label", "state", "outcome", "service", "kind"):
            assert row[key] == mine[key], (wid, key)
        assert abs(row["warn_at"] - mine["warn_at"]) < 1e-6
        assert (row["due_at"] is None) == (mine["due_at"] is None)
        if mine["due_at"] is not None:
            assert abs(row["due_at"] - mine["due_at"]) < 1e-6


def test_a_retraction_replaces_the_stored_warning(tmp_path: Path):
    """Our own case in arrival order: a late pause takes two warnings back; the table's
    final rows say retracted, not active."""
    own = Path(__file__).parents[1] / "conformance" / "own"
    done = cli(
        "replay", str(own / "own-v2.jsonl"), "--calendars", str(V2 / "calendars.toml"),
        "--warn-at", "0.5,0.75", "--violations", "/dev/null", "--outcomes", "/dev/null",
        "--rejects", "/dev/null", "--clickhouse", str(tmp_path / "chdb"), "--quiet",
        "--in-file-order",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = ClickHouseStore(str(tmp_path / "chdb"), "promise_tracker_replay").connect()
    try:
        stored = readback.warnings(store)
    finally:
        store.close()
    taken_back = [w for w in stored.values() if w["promise_id"] == "pause-takes-back"]
    assert sorted(w["state"] for w in taken_back) == ["retracted", "retracted"]
    assert sum(w["state"] == "active" for w in stored.values()) == 1  # steps-active

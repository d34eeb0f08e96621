"""Compare a replay's output with a published conformance case, as its README says."""

from __future__ import annotations

from promise_tracker.streams.records import final_active, read_jsonl

__all__ = ["differences", "final_active", "read_jsonl"]


def differences(
    got_violations: list[dict],
    got_outcomes: list[dict],
    want_violations: list[dict],
    want_outcomes: list[dict],
) -> list[str]:
    """Every way the answer differs from the expected one; empty when it conforms."""
    problems: list[str] = []
    active = final_active(got_violations)
    want = {v["violation_id"]: v for v in want_violations}
    for vid in sorted(set(want) - set(active)):
        problems.append(f"missing violation {vid} {want[vid]}")
    for vid in sorted(set(active) - set(want)):
        problems.append(f"unexpected violation {vid} {_brief(active[vid])}")
    for vid in sorted(set(want) & set(active)):
        got, exp = active[vid], want[vid]
        for key in ("promise_id", "reason", "unit", "observation_id"):
            if got.get(key) != exp.get(key):
                problems.append(f"{vid} {key}: got {got.get(key)!r}, want {exp.get(key)!r}")
        if abs(got["occurred_at"] - exp["occurred_at"]) > 1e-6:
            problems.append(
                f"{vid} occurred_at: got {got['occurred_at']}, want {exp['occurred_at']}"
            )
        if (got["excess"] is None) != (exp["excess"] is None) or (
            exp["excess"] is not None and abs(got["excess"] - exp["excess"]) > 0.001
        ):
            problems.append(f"{vid} excess: got {got['excess']}, want {exp['excess']}")
    outcomes = {o["promise_id"]: o for o in got_outcomes}
    if len(outcomes) != len(got_outcomes):
        problems.append("an outcome is written more than once")
    for exp in want_outcomes:
        got = outcomes.get(exp["promise_id"])
        if got is None:
            problems.append(f"missing outcome {exp}")
            continue
        if got["status"] != exp["status"]:
            problems.append(
                f"{exp['promise_id']} status: got {got['status']}, want {exp['status']}"
            )
        if (got["closed_at"] is None) != (exp["closed_at"] is None) or (
            exp["closed_at"] is not None and abs(got["closed_at"] - exp["closed_at"]) > 1e-6
        ):
            problems.append(
                f"{exp['promise_id']} closed_at: got {got['closed_at']}, want {exp['closed_at']}"
            )
    extra = set(outcomes) - {o["promise_id"] for o in want_outcomes}
    problems.extend(f"unexpected outcome for {pid}" for pid in sorted(extra))
    return problems


def _brief(v: dict) -> str:
    return f"{v['promise_id']} {v['reason']} at {v['occurred_at']}"


def final_warnings(emissions: list[dict]) -> dict[str, dict]:
    """The last emission per warning id, retracted ones dropped (the v2 README's rule)."""
    last: dict[str, dict] = {}
    for record in emissions:
        last[record["warning_id"]] = record
    return {wid: w for wid, w in last.items() if w["state"] != "retracted"}


def warning_differences(got_emissions: list[dict], want: list[dict]) -> list[str]:
    """Equal state, label and outcome, and the same warn_at within 0.001 s (v2 README)."""
    problems: list[str] = []
    got = final_warnings(got_emissions)
    expected = {w["warning_id"]: w for w in want}
    for wid in sorted(set(expected) - set(got)):
        problems.append(f"missing warning {wid} {expected[wid]}")
    for wid in sorted(set(got) - set(expected)):
        problems.append(f"unexpected warning {wid} {got[wid]['promise_id']} {got[wid]['state']}")
    for wid in sorted(set(got) & set(expected)):
        mine, theirs = got[wid], expected[wid]
        for key in ("promise_id", "state", "label", "outcome"):
            if mine.get(key) != theirs.get(key):
                problems.append(f"{wid} {key}: got {mine.get(key)!r}, want {theirs.get(key)!r}")
        if abs(mine["warn_at"] - theirs["warn_at"]) > 0.001:
            problems.append(f"{wid} warn_at: got {mine['warn_at']}, want {theirs['warn_at']}")
        for key in ("due_at", "time_left"):
            a, b = mine.get(key), theirs.get(key)
            if (a is None) != (b is None) or (b is not None and abs(a - b) > 0.001):
                problems.append(f"{wid} {key}: got {a!r}, want {b!r}")
    return problems

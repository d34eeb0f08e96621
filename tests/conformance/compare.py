"""Compare a replay's output with a published conformance case, as its README says."""

from __future__ import annotations

from collections.abc import Callable

from promise_tracker.streams.records import final_active, read_jsonl

__all__ = ["differences", "final_active", "read_jsonl"]

Tolerances = tuple[tuple[str, float], ...]
"""(field, largest difference allowed) for fields compared as numbers; both null also agree."""


def differences(
    got_violations: list[dict],
    got_outcomes: list[dict],
    want_violations: list[dict],
    want_outcomes: list[dict],
) -> list[str]:
    """Every way the answer differs from the expected one; empty when it conforms."""
    problems = _compare(
        "violation",
        final_active(got_violations),
        {v["violation_id"]: v for v in want_violations},
        ("promise_id", "reason", "unit", "observation_id"),
        (("occurred_at", 1e-6), ("excess", 0.001)),
        _brief,
    )
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
    return _compare(
        "warning",
        final_warnings(got_emissions),
        {w["warning_id"]: w for w in want},
        ("promise_id", "state", "label", "outcome"),
        (("warn_at", 0.001), ("due_at", 0.001), ("time_left", 0.001)),
        lambda w: f"{w['promise_id']} {w['state']}",
    )


def _compare(
    what: str,
    got: dict[str, dict],
    want: dict[str, dict],
    equal: tuple[str, ...],
    close: Tolerances,
    brief: Callable[[dict], str],
) -> list[str]:
    """Records by id: the missing, the unexpected, and per shared id every field of
    ``equal`` that differs and every field of ``close`` beyond its tolerance."""
    problems = [f"missing {what} {rid} {want[rid]}" for rid in sorted(set(want) - set(got))]
    problems += [
        f"unexpected {what} {rid} {brief(got[rid])}" for rid in sorted(set(got) - set(want))
    ]
    for rid in sorted(set(got) & set(want)):
        mine, theirs = got[rid], want[rid]
        for key in equal:
            if mine.get(key) != theirs.get(key):
                problems.append(f"{rid} {key}: got {mine.get(key)!r}, want {theirs.get(key)!r}")
        for key, tolerance in close:
            a, b = mine.get(key), theirs.get(key)
            if (a is None) != (b is None) or (b is not None and abs(a - b) > tolerance):
                problems.append(f"{rid} {key}: got {a!r}, want {b!r}")
    return problems

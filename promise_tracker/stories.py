"""``promise-tracker demo --offline``: the example stories replayed, and what they say to a
person (no Kafka, no store: the rules alone)."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import TextIO

from promise_tracker.streams.capabilities import CONTRADICTION
from promise_tracker.streams.records import final_active, read_jsonl
from promise_tracker.streams.replay import replay
from promise_tracker.streams.wording import foreseen

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_stories(out: TextIO, examples: Path = EXAMPLES) -> int:
    """Replay each story on its own (each file is its own timeline) and print the verdicts."""
    stories = sorted(examples.glob("*.jsonl"))
    if not stories:
        print(f"no example files in {examples}", file=out)
        return 2
    totals: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="promise-tracker-demo-") as tmp:
        for story in stories:
            v, o, r, w = (Path(tmp) / f"{story.stem}.{n}.jsonl" for n in ("v", "o", "r", "w"))
            summary = replay([story], v, o, r, progress=False, warnings=w)
            outcomes = read_jsonl(o)
            totals.update(x["status"] for x in outcomes)
            rejected = sum(summary.stats.rejects.values())
            active = final_active(read_jsonl(v))
            _print_story(out, story.stem, outcomes, active, _foreseen(read_jsonl(w)), rejected)
    kept, broken = totals["kept"], totals["broken"]
    rate = f"{kept / (kept + broken):.0%}" if kept + broken else "n/a"
    print(
        f"\nkeep-rate across the stories: {rate} ({kept} kept, {broken} broken, "
        f"{totals['expired']} unverifiable, {totals['cancelled']} cancelled, "
        f"{totals['open']} open)",
        file=out,
    )
    return 0


def _foreseen(warnings: list[dict]) -> dict[str, dict]:
    """Warning id -> the last emission of each contradiction (a promise's terms against a
    declared capability)."""
    last = {w["warning_id"]: w for w in warnings}
    return {k: w for k, w in last.items() if w["label"].startswith(CONTRADICTION)}


def _print_story(
    out: TextIO, name: str, outcomes: list[dict], active: dict, foretold: dict, rejected: int
) -> None:
    print(f"\n== {name} ==", file=out)
    by_promise: dict[str, list[dict]] = {}
    for violation in active.values():
        by_promise.setdefault(violation["promise_id"], []).append(violation)
    for outcome in sorted(outcomes, key=lambda x: x["promise_id"]):
        pid = outcome["promise_id"]
        print(
            f"  {outcome['status']:>9}  {pid}  ({outcome['kind']}, {outcome['channel']}, "
            f"{outcome['service']})",
            file=out,
        )
        violations = by_promise.get(pid, [])
        if violations and outcome.get("text"):
            print(f'             the customer read: "{outcome["text"]}"', file=out)
        for v in sorted(violations, key=lambda x: x["occurred_at"]):
            print(
                f"             {v['reason']}: promised {v['expected']}; {v['observed']}", file=out
            )
            caught = foretold.get(v.get("predicted_by") or "")
            if caught is not None:
                said = foreseen(caught["warn_at"], outcome["issued_at"], caught["detail"])
                print(f"               {said}", file=out)
    if rejected:
        print(f"  ({rejected} events rejected)", file=out)

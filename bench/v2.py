#!/usr/bin/env python3
"""Contract v2 figures for ``promise-tracker replay``, every one against a baseline measured
in the same run on the same stream (made by bench/generate.py):

    python3 bench/v2.py [--events 1000000] [--rounds 3] [--workdir bench/out]

(a) replay in file order (``--in-file-order``): the baseline, v1's way of reading;
(b) the default event-time order: the cost of the sort (SPEC 5);
(c) the same stream with every ``deliver_by`` made a ``within_seconds`` promise on the
    ``support-eu`` business calendar (tests/conformance/cases/v2/calendars.toml), event-time
    order: the cost of the clock; its baseline is (b);
(d) warnings off versus on cannot be told apart on the command line (they are always
    computed), so (a)-(c) include them at the default 0.75.

Each replay runs in its own process (wall clock, interpreter start included); the median of
``--rounds`` runs is reported. A benchmark, not a test: it prints figures, never fails on a
slow one.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
CALENDARS = ROOT / "tests" / "conformance" / "cases" / "v2" / "calendars.toml"

from promise_tracker.synthetic import generate  # noqa: E402


def to_business_hours(source: Path, target: Path) -> int:
    """Every deliver_by of ``source`` as within_seconds on support-eu: the same number of
    seconds, now counted in business hours (so its D lands days later)."""
    changed = 0
    with source.open("rb") as read, target.open("wb") as write:
        for line in read:
            try:
                event = orjson.loads(line)
                data = event["data"]
                terms = data["terms"]
                if data["kind"] == "deliver_by" and "due_at" in terms:
                    start = _unix(event["time"])
                    within = max(1.0, _unix(terms.pop("due_at")) - start)
                    terms.update(within_seconds=within, calendar="support-eu")
                    changed += 1
                    line = orjson.dumps(event) + b"\n"
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                pass  # the stream's deliberately bad lines stay as they are
            write.write(line)
    return changed


def _unix(stamp: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def replay(path: Path, out: Path, *options: str) -> float:
    command = [sys.executable, "-m", "promise_tracker.cli", "replay", str(path), "--quiet"]
    for name in ("violations", "outcomes", "rejects", "warnings"):
        command += [f"--{name}", str(out / f"{name}.jsonl")]
    started = time.perf_counter()
    subprocess.run([*command, *options], check=True, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=BENCH / "out")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    stream = args.workdir / f"v2-{args.events}.jsonl"
    if not stream.exists():
        generate(stream, args.events, 2000, 7)
    business = args.workdir / f"v2-{args.events}-business.jsonl"
    changed = to_business_hours(stream, business)
    out = args.workdir / "v2-out"
    out.mkdir(exist_ok=True)
    cases = {
        "file order (baseline)": (stream, ["--in-file-order"]),
        "event-time order": (stream, []),
        "event-time + calendars": (business, ["--calendars", str(CALENDARS)]),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):  # interleaved: noise hits every case alike
        for name, (path, options) in cases.items():
            times[name].append(replay(path, out, *options))
    lines = sum(1 for _ in stream.open("rb"))
    base = statistics.median(times["file order (baseline)"])
    print(f"{lines:,} lines; {changed:,} deliver_by promises on support-eu in the last case")
    print(f"{'case':28} {'median s':>9} {'events/s':>10} {'vs file order':>14}")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"{name:28} {median:9.2f} {lines / median:10,.0f} {base / median:14.2f}")
    sort = statistics.median(times["event-time order"])
    calendars = statistics.median(times["event-time + calendars"])
    print(f"sort cost: {100 * (1 - base / sort):.1f}% of throughput")
    print(f"calendars cost (vs event-time order): {100 * (1 - sort / calendars):.1f}%")


if __name__ == "__main__":
    main()

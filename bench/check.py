#!/usr/bin/env python3
"""Check latency: one planned promise, and a campaign, against a plain count() of outcomes.

    .venv/bin/python bench/check.py [--outcomes 1000000] [--campaign 10000] [--rounds 3]

Writes ``--outcomes`` decided outcomes with their measures (45 groups: 5 kinds x 3 services x
3 channels, issued over 28 days) into a fresh chdb store through the store's own insert, then
times, in turns, in the same run: ``SELECT count() FROM outcomes``, the check of one promise
(a fresh reader: one history query), of a campaign (``--campaign`` promises issued within
one hour over all groups: one query per group), and of one deliver_by counted in a business
calendar (its group's deliveries turned into the calendar's open seconds). Medians of the
rounds, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promise_tracker.calendars import load_calendars  # noqa: E402
from promise_tracker.check.answer import MEASURES, CheckOptions, check_bytes  # noqa: E402
from promise_tracker.check.history import HistoryReader  # noqa: E402
from promise_tracker.sinks.migrate import migrate  # noqa: E402
from promise_tracker.sinks.store import ClickHouseStore  # noqa: E402
from promise_tracker.sinks.tables import OutcomeRow, columns  # noqa: E402

END = 1_772_755_200.0  # 2026-03-06T00:00:00Z: the campaign's hour starts here
SERVICES = ("a/one", "b/two", "c/three")
CHANNELS = ("email", "web", "phone")
TERMS = {
    "deadline": ({"open_until": "2026-03-20T00:00:00Z"}, 86_400.0),
    "max_wait": ({"max_seconds": 600}, 600.0),
    "max_steps": ({"max_steps": 5, "goal": "done"}, 5.0),
    "deliver_by": ({"within_seconds": 172_800}, 172_800.0),
    "channels_available": ({"channels": ["web"], "until": "2026-03-07T00:00:00Z"}, 86_400.0),
}


def _outcome(number: int, rng: random.Random) -> OutcomeRow:
    kind = list(TERMS)[number % 5]
    service, channel = SERVICES[number // 5 % 3], CHANNELS[number // 15 % 3]
    terms, allowed = TERMS[kind]
    issued = END - rng.random() * 28 * 86_400
    value: float | None = rng.expovariate(1 / (allowed * 0.6))
    if kind == "max_steps":
        value = float(1 + int(value))  # type: ignore[arg-type]
    if kind == "deadline":
        value = 0.0 if rng.random() < 0.8 else value
    kept = value <= allowed if kind != "channels_available" else value >= allowed  # type: ignore[operator]
    if kind == "channels_available" and kept:
        value = None  # no outage seen in the window
    return OutcomeRow(
        f"p{number}", "kept" if kept else "broken", issued + 3_600, service, channel, kind,
        issued, issued + 3_600, 1, orjson.dumps(terms).decode(), MEASURES[kind], allowed, value,
    )  # fmt: skip


def _planned(number: int) -> bytes:
    kind = list(TERMS)[number % 5]
    return orjson.dumps(
        {
            "specversion": "1.0",
            "type": "promise.issued",
            "source": SERVICES[number // 5 % 3],
            "id": f"plan-{number}",
            "time": f"2026-03-06T00:{number % 60:02d}:00Z",
            "data": {
                "kind": kind,
                "channel": CHANNELS[number // 15 % 3],
                "terms": TERMS[kind][0],
            },
        }
    )


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


OFFICE = """
[office]
timezone = "UTC"
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]
"""


def _office(where: Path) -> dict:
    path = where / "calendars.toml"
    path.write_text(OFFICE)
    return load_calendars(path)


def _in_office_time(campaign: list[bytes]) -> bytes:
    """The campaign's first deliver_by, counted in office hours (16 of them)."""
    for raw in campaign:
        event = orjson.loads(raw)
        if event["data"]["kind"] == "deliver_by":
            event["data"]["terms"] = {"within_seconds": 16 * 3_600, "calendar": "office"}
            return orjson.dumps(event)
    raise SystemExit("the campaign has no deliver_by promise: give --campaign 5 or more")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=1_000_000)
    parser.add_argument("--campaign", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "check.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="check-bench-") as where:
        store = ClickHouseStore(Path(where) / "chdb", "bench_check").connect()
        migrate(store)
        rng = random.Random(1)
        started = time.perf_counter()
        for start in range(0, args.outcomes, 200_000):
            batch = [_outcome(n, rng) for n in range(start, min(args.outcomes, start + 200_000))]
            store.insert("outcomes", columns("outcomes"), batch)
        written = time.perf_counter() - started
        store.command("OPTIMIZE TABLE {db}.outcomes FINAL")
        options = CheckOptions()
        campaign = [_planned(n) for n in range(args.campaign)]
        office = _office(Path(where))
        in_office_time = _in_office_time(campaign)
        figures: dict[str, list[float]] = {
            "count": [],
            "one": [],
            "campaign": [],
            "one_in_office_time": [],
        }
        for _ in range(args.rounds):
            figures["count"].append(
                _timed(lambda: store.rows("SELECT count() AS n FROM {db}.outcomes"))
            )
            one = HistoryReader(store, MEASURES)
            figures["one"].append(_timed(lambda: check_bytes(campaign[0], one, options, 1)))  # noqa: B023
            timed = HistoryReader(store, MEASURES, office)  # its history in open seconds
            figures["one_in_office_time"].append(
                _timed(lambda: check_bytes(in_office_time, timed, options, 1))  # noqa: B023
            )
            many = HistoryReader(store, MEASURES)
            figures["campaign"].append(
                _timed(lambda: [check_bytes(p, many, options, 1) for p in campaign])  # noqa: B023
            )
        store.close()
    result = {
        "outcomes": args.outcomes,
        "campaign": args.campaign,
        "rounds": args.rounds,
        "write_seconds": round(written, 1),
        "median_ms": {name: round(statistics.median(v), 1) for name, v in figures.items()},
        "campaign_queries": many.queries,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

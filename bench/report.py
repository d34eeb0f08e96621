#!/usr/bin/env python3
"""The leadership report on a large store, against a plain ``count()`` in the same run.

    python3 bench/report.py [--promises 1000000] [--rounds 5] [--workdir bench/out]

1. A store of about ``--promises`` promises: a stream from ``bench/generate.py`` (about
   0.375 promises per event), replayed into chdb with ``promise-tracker replay
   --clickhouse``; cached in the workdir (reused while the generator's version holds).
2. In one process on that store, ``--rounds`` times in turn:
   * the baseline, ``SELECT count() FROM outcomes`` (no FINAL);
   * every query of the report (its period: the stream's last week) and every ClickHouse
     panel of the leadership dashboard with a budget row per example objective (its
     default range, the last 30 days), each as it runs (Grafana's expansion);
   * the whole report (``write_report``: the queries, the two charts, the page), and its
     print to PDF by headless Chromium.
   Figures are medians over the rounds (the first round's report apart: it starts the
   Vega renderer), each also as a multiple of the baseline's median.

Figures go to stdout and WORKDIR/report.json. A benchmark, not a test: it fails only when
the store is not what the stream says (a wrong count of promises).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# not bench/ itself: its calendar.py would shadow the standard library's (holidays needs it)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))

from promise_tracker.dashboards import leadership  # noqa: E402
from promise_tracker.dashboards.grafana import to_json  # noqa: E402
from promise_tracker.dashboards.macros import ALL, Request, dashboard_sql  # noqa: E402
from promise_tracker.objectives.load import load_objectives  # noqa: E402
from promise_tracker.report import figures  # noqa: E402
from promise_tracker.report.browser import print_pdf  # noqa: E402
from promise_tracker.report.write import write_report  # noqa: E402
from promise_tracker.sinks.migrate import migrate  # noqa: E402
from promise_tracker.sinks.store import ClickHouseStore  # noqa: E402
from promise_tracker.synthetic import VERSION, generate  # noqa: E402

DATABASE = "promise_tracker_replay"
PROMISES_PER_EVENT = 0.37  # bench/generate.py's mix: 0.371-0.376 (375,549 in 1M events)
DAY = 86_400
OBJECTIVES = ROOT / "examples" / "objectives.yaml"
BASELINE = "SELECT count() AS n FROM {db}.outcomes"
# for scale: the same count with FINAL (every row read and deduplicated, as the panels read)
COUNT_FINAL = "SELECT count() AS n FROM {db}.outcomes FINAL"


def stream(workdir: Path, events: int, open_promises: int, seed: int) -> tuple[Path, dict]:
    """The stream of that size, open promises and seed, cached as bench/replay.py caches it."""
    path = workdir / f"stream-{events}-open{open_promises}-seed{seed}.jsonl"
    meta_path = path.with_name(path.name + ".meta.json")
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_bytes())
        if meta.get("generator_version") == VERSION and meta.get("bytes") == path.stat().st_size:
            return path, meta
    print(f"stream {path.name}: generating {events:,} events ...", file=sys.stderr, flush=True)
    return path, generate(path, events, open_promises, seed)


def seeded_store(workdir: Path, promises: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The chdb directory holding the replay of a stream of about ``promises`` promises."""
    events = math.ceil(promises / PROMISES_PER_EVENT / 10_000) * 10_000  # at least that many
    path, meta = stream(workdir, events, 20_000, seed)
    chdb = workdir / f"report-store-{events}-seed{seed}"
    done_file = chdb / "complete.json"
    if done_file.is_file() and json.loads(done_file.read_text()).get("version") == VERSION:
        print(f"store {chdb.name}: cached", file=sys.stderr)
        return chdb, meta
    subprocess.run(["rm", "-rf", str(chdb)], check=True)
    print(f"store {chdb.name}: replaying {events:,} events into chdb ...", file=sys.stderr)
    started = time.perf_counter()
    command = [sys.executable, "-m", "promise_tracker.cli", "replay", str(path)]
    command += ["--clickhouse", str(chdb / "chdb"), "--quiet"]
    subprocess.run(command, check=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    print(f"  {seconds:.0f} s", file=sys.stderr)
    done_file.write_text(json.dumps({"version": VERSION, "replay_seconds": seconds}))
    return chdb, meta


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def panel_queries(objectives: list, until: float) -> dict[str, str]:
    """The leadership dashboard's ClickHouse panels (with budget rows), as Grafana sends
    them for its default range (the last 30 days; a Grafana interval of about an hour)."""
    board = json.loads(to_json(leadership.dashboard(objectives)))
    variables = {"service": [ALL], "channel": [ALL], "kind": [ALL], "violation_id": ""}
    request = Request(until - 30 * DAY, until, 3_600_000, variables)
    found = {}
    for panel in board["panels"]:
        for target in panel["targets"]:
            if "rawSql" in target:
                sql = figures.qualified(dashboard_sql(target["rawSql"], request))
                found.setdefault(sql, f"panel: {panel['title']}")
    return {name: sql for sql, name in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--promises", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=BENCH / "out")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    chdb, meta = seeded_store(args.workdir, args.promises, args.seed)
    until = float(meta["watermark"]) + 600
    period = figures.Period(until - 7 * DAY, until)
    objectives = load_objectives(OBJECTIVES)
    store = ClickHouseStore(chdb / "chdb", DATABASE).connect()
    migrate(store)  # a cached store made before the newest migrations gets their columns
    promises = int(store.rows("SELECT count() AS n FROM {db}.promises FINAL")[0]["n"])
    if promises != meta["promises"]:
        print(f"the store holds {promises:,} promises, the stream {meta['promises']:,}")
        return 1
    queries = {
        f"report: {name}": figures.expanded(sql, period)
        for name, sql in figures.queries(objectives).items()
    }
    for sql, name in {sql: name for name, sql in panel_queries(objectives, until).items()}.items():
        if sql not in queries.values():
            queries[name] = sql
    html, pdf = args.workdir / "report.html", args.workdir / "report.pdf"
    times: dict[str, list[float]] = {"count()": [], "count() FINAL": [], "report": [], "pdf": []}
    first_report = 0.0
    for number in range(args.rounds + 1):  # round 0 warms the engine and the renderer up
        count = timed(lambda: store.rows(BASELINE))
        final = timed(lambda: store.rows(COUNT_FINAL))
        spent = {name: timed(lambda sql=sql: store.rows(sql)) for name, sql in queries.items()}
        report = timed(lambda: write_report(store, html, period, objectives, where="bench"))
        printed = timed(lambda: print_pdf(html, pdf))
        if number == 0:
            first_report = report
            continue
        times["count()"].append(count)
        times["count() FINAL"].append(final)
        times["report"].append(report)
        times["pdf"].append(printed)
        for name, seconds in spent.items():
            times.setdefault(name, []).append(seconds)
        print(
            f"round {number}: report {report:.2f} s, count() {count * 1000:.1f} ms", file=sys.stderr
        )
    store.close()
    median = {name: statistics.median(values) for name, values in times.items()}
    base = median["count()"]
    slowest = sorted(
        (name for name in median if name.startswith(("report:", "panel:"))),
        key=median.__getitem__,
        reverse=True,
    )
    results = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "promises": promises,
        "events": meta["events"],
        "span_days": meta["span_days"],
        "rounds": args.rounds,
        "queries": len(queries),
        "count_seconds": base,
        "count_final_seconds": median["count() FINAL"],
        "report_seconds": median["report"],
        "report_over_count": median["report"] / base,
        "first_report_seconds": first_report,
        "pdf_seconds": median["pdf"],
        "slowest": [
            {"query": name, "seconds": median[name], "over_count": median[name] / base}
            for name in slowest[:5]
        ],
        "all_queries_seconds": sum(median[name] for name in slowest),
    }
    (args.workdir / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"store: {promises:,} promises ({meta['events']:,} events, {meta['span_days']} days)")
    print(f"plain count() of outcomes        {base * 1000:9.1f} ms   1x")
    final = median["count() FINAL"]
    print(f"  (the same with FINAL             {final * 1000:9.1f} ms {final / base:5.0f}x)")
    print(
        f"report (HTML, {len(queries)} queries run apart) {median['report']:7.2f} s"
        f"   {median['report'] / base:,.0f}x   (first, renderer cold: {first_report:.2f} s)"
    )
    print(f"its print to PDF (Chromium)       {median['pdf']:9.2f} s")
    for row in results["slowest"]:
        print(
            f"  {row['query'][:60]:<60} {row['seconds'] * 1000:8.1f} ms {row['over_count']:6.0f}x"
        )
    print(f"(figures in {args.workdir / 'report.json'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

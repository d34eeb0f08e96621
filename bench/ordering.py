#!/usr/bin/env python3
"""Benchmark of the replay's event-time sort (``promise_tracker/streams/ordering.py``).

    python3 bench/ordering.py [--events 1000000] [--small 100000] [--run-size 50000]

The input is two services' files, each half of the events made by ``bench/generate.py``
with its own seed, concatenated: the second file starts as early as the first, days before
the first ends, so nearly every record moves. It reports

(a) records/s of ``by_event_time`` alone, over records already in a list: one run in
    memory, spilled runs merged in one pass, and spilled with ``fan_in=4`` (merged in tiers);
(b) its cost inside a replay: ``replay()`` in this process with ``in_file_order=True``
    against the default event-time order (best of ``--replay-repeat`` each); once on the
    two files, where the order changes what the engine does (no late events, no too_late
    rejects), and once on the same events already in time order in one file, where it does
    not: there the difference is the whole cost of sorting. Then the sort's share before the
    engine: read, parse, sort and parse again, less read and parse alone;
(c) memory: the peak RSS of a process that reads, parses and sorts the small and the large
    input with the same run size, against one that only reads and parses (the floor): the
    sort's share must stay flat when the input grows tenfold.

Times are CPU seconds of this process (user + system), best of ``--repeat`` where cheap: a
shared machine stretches the wall clock much more than the CPU time.
This is a benchmark, not a test: it fails only on a wrong order (exit status 1). Figures are
printed and written to WORKDIR/ordering.json.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for entry in (str(ROOT), str(BENCH)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from replay import run_child, stream  # noqa: E402  (bench/replay.py: cached streams, rusage)

from promise_tracker.schemas.models import Event  # noqa: E402
from promise_tracker.schemas.parse import parse  # noqa: E402
from promise_tracker.schemas.reject import Reject  # noqa: E402
from promise_tracker.streams import ordering  # noqa: E402
from promise_tracker.streams.ordering import by_event_time, by_event_time_parsed  # noqa: E402
from promise_tracker.streams.replay import replay as run_replay  # noqa: E402

Origin = tuple[str, int]


# --- parsing again after a spill ----------------------------------------------------------


def reparse(line: bytes, origin: object) -> Event:
    """The parsed event of a line that was spilled (it parsed once already)."""
    event = parse(line, origin)
    if type(event) is Reject:
        raise AssertionError(f"{origin}: valid when first read, rejected when read again")
    return event


# --- inputs ----------------------------------------------------------------------------------


def services(workdir: Path, events: int, open_promises: int) -> tuple[list[Path], list[dict]]:
    """Two services' files of events/2 each (seeds 1 and 2), in that order."""
    made = [stream(workdir, events // 2, open_promises, seed) for seed in (1, 2)]
    return [path for path, _ in made], [meta for _, meta in made]


def numbered(paths: list[Path]) -> Iterator[tuple[str, int, bytes]]:
    """What ``replay._lines`` gives: (file name, line number, line)."""
    for path in paths:
        name = str(path)
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                yield name, number, line.rstrip(b"\r\n")


def parsed(paths: list[Path]) -> Iterator[tuple[float, bytes, Origin, Event]]:
    for name, number, line in numbered(paths):
        origin = (name, number)
        event = parse(line, origin)
        if type(event) is not Reject:
            yield event.time.timestamp(), line, origin, event


def plain(paths: list[Path]) -> Iterator[tuple[float, bytes, Origin]]:
    for t, line, origin, _ in parsed(paths):
        yield t, line, origin


def in_order(records: Iterable[tuple]) -> int:
    """Count the records, failing on one out of time order."""
    last, n = -float("inf"), 0
    for record in records:
        if record[0] < last:
            raise SystemExit(f"out of order after {n} records: {record[0]} < {last}")
        last = record[0]
        n += 1
    return n


def _count(records: Iterable[tuple]) -> int:
    return sum(1 for _ in records)


def cpu_best(run: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Best CPU seconds (this process, user + system) of ``repeat`` runs, its wall seconds
    and its result. CPU time, because the machine may be shared: other processes stretch
    the wall clock, much less the CPU time."""
    best: tuple[float, float, object] = (float("inf"), float("inf"), None)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if cpu < best[0]:
            best = (cpu, wall, result)
        del result
    return best


# --- (a) the sort alone ----------------------------------------------------------------------


def _sort_count(records: list, tmpdir: str | None, kwargs: dict) -> int:
    return in_order(by_event_time(records, tmpdir=tmpdir, **kwargs))


def sort_alone(paths: list[Path], run_size: int, tmpdir: str | None, repeat: int) -> dict:
    """The records and their expected order are frozen out of the garbage collector: the
    figure is the sort's, not the collector walking this benchmark's millions of tuples."""
    records = list(plain(paths))
    expected = sorted(records, key=lambda r: r[0])
    gc.freeze()
    cases: dict[str, dict] = {
        "in_memory": {"run_size": len(records)},
        "spilled": {"run_size": run_size},
        "spilled_fan_in_4": {"run_size": run_size, "fan_in": 4},
    }
    out: dict = {"records": len(records)}
    for label, kwargs in cases.items():
        if list(by_event_time(records, tmpdir=tmpdir, **kwargs)) != expected:
            raise SystemExit(f"{label}: not the stable sort")
        cpu, wall, _ = cpu_best(partial(_sort_count, records, tmpdir, kwargs), repeat)
        out[label] = {
            **kwargs,
            "runs": -(-len(records) // kwargs["run_size"]),
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "records_per_cpu_s": round(len(records) / cpu),
        }
    gc.unfreeze()
    return out


# --- (b) inside a replay ---------------------------------------------------------------------


def presorted(paths: list[Path], workdir: Path) -> Path:
    """The valid events of ``paths`` in one file, in event-time order."""
    path = workdir / f"ordering-presorted-{paths[0].stem}.jsonl"
    with path.open("wb", buffering=1 << 20) as out:
        for _, line, _ in by_event_time(plain(paths)):
            out.write(line + b"\n")
    return path


def replay_once(paths: list[Path], in_file_order: bool, workdir: Path) -> dict:
    """``replay()`` in this process."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="ordering-replay-") as name:
        outdir = Path(name)
        wall, cpu = time.perf_counter(), time.process_time()
        summary = run_replay(
            paths,
            outdir / "violations.jsonl",
            outdir / "outcomes.jsonl",
            outdir / "rejects.jsonl",
            progress=False,
            in_file_order=in_file_order,
        )
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "lines": summary.lines,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "events_per_cpu_s": round(summary.lines / cpu),
        "late": summary.stats.late,
        "rejects": sum(summary.stats.rejects.values()),
    }


def replays(inputs: dict[str, list[Path]], workdir: Path, repeat: int) -> dict:
    """Each input in both orders, alternating, best CPU time of ``repeat`` each."""
    out: dict = {}
    for label, paths in inputs.items():
        runs: dict[str, list[dict]] = {"file_order": [], "event_time_order": []}
        for _ in range(repeat):
            runs["file_order"].append(replay_once(paths, True, workdir))
            runs["event_time_order"].append(replay_once(paths, False, workdir))
        row = {order: min(done, key=lambda r: r["cpu_s"]) for order, done in runs.items()}
        row["cpu_s_all"] = {order: [r["cpu_s"] for r in done] for order, done in runs.items()}
        row["cpu_ratio"] = round(row["event_time_order"]["cpu_s"] / row["file_order"]["cpu_s"], 3)
        out[label] = row
    return out


def pipeline(paths: list[Path], run_size: int, tmpdir: str | None, repeat: int) -> dict:
    """CPU seconds of what ``replay.drive`` does before the engine, against read and parse."""

    def plain_then_reparse() -> int:
        n = 0
        for _, line, origin in by_event_time(plain(paths), run_size=run_size, tmpdir=tmpdir):
            reparse(line, origin)
            n += 1
        return n

    everything = 1 << 62
    cases: dict[str, Callable[[], int]] = {
        "read_parse": lambda: _count(parsed(paths)),
        "sort_spilled_then_reparse": plain_then_reparse,
        "sort_parsed_spilled": lambda: in_order(
            by_event_time_parsed(parsed(paths), reparse, run_size=run_size, tmpdir=tmpdir)
        ),
        "sort_parsed_in_memory": lambda: in_order(
            by_event_time_parsed(parsed(paths), reparse, run_size=everything)
        ),
    }
    out: dict = {}
    for label, run in cases.items():
        cpu, _, n = cpu_best(run, repeat)
        out[label] = {"cpu_s": round(cpu, 2), "records": n}
    floor = out["read_parse"]["cpu_s"]
    for label in list(cases)[1:]:
        out[label]["over_read_parse_s"] = round(out[label]["cpu_s"] - floor, 2)
    return out


# --- (c) memory, each measure in its own process -------------------------------------------


def synthetic(count: int, seed: int = 1) -> Iterator[tuple[float, bytes, Origin]]:
    """Two files of count/2 records, 290-byte lines, the second starting at the first's
    start; within a file times drift back by up to 3 days (late events)."""
    rng = random.Random(seed).random
    half = count // 2
    for name, n in (("a.jsonl", half), ("b.jsonl", count - half)):
        for number in range(1, n + 1):
            t = 1.8e9 + number * 2.0 - (rng() < 0.1) * rng() * 259_200
            yield t, b"%290d" % number, (name, number)


def child(mode: str, run_size: int, tmpdir: str | None, args: list[str]) -> int:
    started = time.perf_counter()
    paths = [Path(arg) for arg in args]
    if mode == "parse":
        n = _count(parsed(paths))
    elif mode == "sort":
        n = in_order(by_event_time(plain(paths), run_size=run_size, tmpdir=tmpdir))
    elif mode == "sort-parsed":
        n = in_order(by_event_time_parsed(parsed(paths), reparse, run_size=run_size, tmpdir=tmpdir))
    elif mode == "make":
        n = _count(synthetic(int(args[0])))
    elif mode == "sort-made":
        n = in_order(by_event_time(synthetic(int(args[0])), run_size=run_size, tmpdir=tmpdir))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(n, time.perf_counter() - started)
    return 0


def memory(
    sizes: dict[str, list[str]],
    modes: tuple[str, ...],
    run_size: int,
    tmpdir: str | None,
    workdir: Path,
) -> dict:
    """Peak RSS of each mode in its own process; the first mode is the floor."""
    out: dict = {}
    for label, args in sizes.items():
        row: dict = {}
        for mode in modes:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode]
            cmd += ["--run-size", str(run_size), *(["--tmpdir", tmpdir] if tmpdir else [])]
            result = run_child([*cmd, *args], workdir / f"ordering-{label}-{mode}")
            n, seconds = result["stdout"].split()
            row[mode] = {
                "records": int(n),
                "peak_rss_mb": result["peak_rss_mb"],
                "wall_s": round(float(seconds), 2),
                "cpu_s": result["cpu_s"],
            }
        for mode in modes[1:]:
            row[mode]["over_floor_mb"] = round(
                row[mode]["peak_rss_mb"] - row[modes[0]]["peak_rss_mb"], 1
            )
        out[label] = row
    return out


# --- report ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the large input")
    parser.add_argument("--small", type=int, default=100_000, help="events in the small input")
    parser.add_argument("--run-size", type=int, default=ordering.RUN_SIZE)
    parser.add_argument("--workdir", type=Path, default=BENCH / "out")
    parser.add_argument("--tmpdir", help="where runs are spilled (default $TMPDIR)")
    parser.add_argument("--open-promises", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many sorts in (a), (b)")
    parser.add_argument("--replay-repeat", type=int, default=2, help="best of this many replays")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--synthetic",
        default="1000000,10000000",
        help="sizes of made-up records for the memory test beyond fan_in runs ('' for none)",
    )
    parser.add_argument("child_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.run_size, args.tmpdir, args.child_args)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    large, metas = services(workdir, args.events, args.open_promises)
    small, _ = services(workdir, args.small, args.open_promises)
    results: dict = {
        "input": {
            "files": [str(path) for path in large],
            "span_days": [meta["span_days"] for meta in metas],
            "bytes": sum(meta["bytes"] for meta in metas),
        },
        "run_size": args.run_size,
    }
    print("(a) the sort alone ...", file=sys.stderr, flush=True)
    results["alone"] = alone = sort_alone(large, args.run_size, args.tmpdir, args.repeat)
    print("(b) inside a replay ...", file=sys.stderr, flush=True)
    control = presorted(large, workdir)
    inputs = {"services": large, "presorted": [control]}
    results["replay"] = rep = replays(inputs, workdir, args.replay_repeat)
    control.unlink()
    results["pipeline"] = pipe = pipeline(large, args.run_size, args.tmpdir, args.repeat)
    print("(c) memory ...", file=sys.stderr, flush=True)
    labels = {f"{args.small:,}": small, f"{args.events:,}": large}
    modes = ("parse", "sort", "sort-parsed")
    results["memory"] = mem = memory(
        {label: [str(path) for path in paths] for label, paths in labels.items()},
        modes,
        args.run_size,
        args.tmpdir,
        workdir,
    )
    made = [int(size) for size in args.synthetic.split(",") if size]
    results["memory_synthetic"] = made_mem = memory(
        {f"{size:,}": [str(size)] for size in made},
        ("make", "sort-made"),
        args.run_size,
        args.tmpdir,
        workdir,
    )

    print(
        f"\ninput: two services' files, {results['input']['bytes'] / 1e6:,.0f} MB, each "
        f"spanning {' and '.join(f'{d:.1f}' for d in results['input']['span_days'])} days "
        f"of event time; run size {args.run_size:,}; CPU seconds, best of {args.repeat}"
    )
    print(f"(a) by_event_time alone over {alone['records']:,} records in a list:")
    for label in ("in_memory", "spilled", "spilled_fan_in_4"):
        case = alone[label]
        print(
            f"    {label:<24} {case['runs']:>4} runs {case['cpu_s']:>6.2f} s "
            f"{case['records_per_cpu_s']:>12,} records/s"
        )
    print("(b) replay() in this process, in file order and in event-time order:")
    for label, row in rep.items():
        for order in ("file_order", "event_time_order"):
            case = row[order]
            print(
                f"    {label:<10} {order:<16} {case['cpu_s']:>6.2f} s "
                f"{case['events_per_cpu_s']:>9,} events/s (late {case['late']:,}, "
                f"rejects {case['rejects']:,})"
            )
        print(
            f"    {label:<10} event-time order costs {row['cpu_ratio'] - 1:+.1%} CPU "
            f"(all runs: {row['cpu_s_all']})"
        )
    replay_s = rep["presorted"]["file_order"]["cpu_s"]
    print(f"    before the engine, over read and parse ({pipe['read_parse']['cpu_s']} s):")
    for label in list(pipe)[1:]:
        extra = pipe[label]["over_read_parse_s"]
        print(f"      {label:<26} {extra:+6.2f} s = {extra / replay_s:6.1%} of the replay")
    print("(c) peak RSS of its own process: read+parse alone; + sort; + sort carrying parsed:")
    for label, row in mem.items():
        print(
            f"    {label:>10} records: {row['parse']['peak_rss_mb']:.0f} MB; "
            f"{row['sort']['peak_rss_mb']:.0f} MB (+{row['sort']['over_floor_mb']:.0f}); "
            f"{row['sort-parsed']['peak_rss_mb']:.0f} MB "
            f"(+{row['sort-parsed']['over_floor_mb']:.0f})"
        )
    if made_mem:
        print(f"    made-up 290-byte records (FAN_IN {ordering.FAN_IN}): made alone; + sort:")
    for label, row in made_mem.items():
        sort = row["sort-made"]
        print(
            f"    {label:>10} records: {row['make']['peak_rss_mb']:.0f} MB; "
            f"{sort['peak_rss_mb']:.0f} MB (+{sort['over_floor_mb']:.0f}), "
            f"{sort['records'] / max(sort['cpu_s'] - row['make']['cpu_s'], 1e-9):,.0f} "
            "records/s (CPU, over making them)"
        )
    out = workdir / "ordering.json"
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

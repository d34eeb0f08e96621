"""The ``promise-tracker`` command: the composition root that wires the parts together."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from promise_tracker.errors import PromiseTrackerError, SettingsError, StoreError, UsageError
from promise_tracker.streams.engine import EngineConfig
from promise_tracker.streams.risk import DEFAULT_WARN_AT, Fractions, warn_fractions

if TYPE_CHECKING:  # imported where used: a command loads only what it needs
    from promise_tracker.sinks.batcher import ClickHouseSink
    from promise_tracker.sinks.replay_tap import ClickHouseTap
    from promise_tracker.sinks.store import Store
    from promise_tracker.streams.clock import Calendar


def _replay(args: argparse.Namespace) -> int:
    from promise_tracker.streams.replay import replay

    outputs = (args.violations, args.outcomes, args.rejects)
    if args.clickhouse is None and None in outputs:
        raise UsageError(
            "give --violations, --outcomes and --rejects "
            "(or --clickhouse PATH to write the tables instead)"
        )
    config = EngineConfig(
        retention=args.retention,
        orphan_ttl=args.orphan_ttl,
        calendars=_calendars(args.calendars),
        warn_at=_warn_at(args.warn_at),
    )
    store = sink = None
    subject_key = b""
    try:
        if args.clickhouse is not None:
            subject_key = _subject_key()
            store, sink = _replay_store(args.clickhouse, args.database)
        violations_to, outcomes_to, rejects_to = (Path(p or os.devnull) for p in outputs)
        summary = replay(
            [Path(p) for p in args.inputs],
            violations_to,
            outcomes_to,
            rejects_to,
            lateness=args.lateness,
            config=config,
            progress=None if not args.quiet else False,
            tap=None if sink is None else _tap(sink, subject_key),
            warnings=None if args.warnings is None else Path(args.warnings),
            in_file_order=args.in_file_order,
        )
        if sink is not None:
            sink.flush()
    except StoreError as exc:
        raise type(exc)(f"ClickHouse: {exc}") from None
    finally:
        if store is not None:
            store.close()
    if sink is not None and not args.quiet:
        print(
            f"{sink.written} rows written to {args.clickhouse} ({args.database})", file=sys.stderr
        )
    if not args.quiet:
        stats = summary.stats
        rejects = {str(reason): n for reason, n in sorted(stats.rejects.items())}
        rate = summary.lines / summary.seconds if summary.seconds else 0.0
        print(
            f"{summary.lines} lines in {summary.seconds:.2f} s ({rate:,.0f}/s): "
            f"{stats.promises} promises, {stats.observations} observations, "
            f"{stats.declarations} capability declarations, "
            f"{sum(rejects.values())} rejected {rejects}, "
            f"{stats.duplicates} duplicates, {stats.late} late, {summary.blank} blank; "
            f"{stats.emissions} violation emissions ({stats.retractions} retractions), "
            f"{stats.active} violations active, {stats.at_risk} warnings active, "
            f"{summary.outcomes} outcomes "
            f"({stats.evicted} written early when their retention ended)",
            file=sys.stderr,
        )
    return 0


CALENDARS_HELP = (
    "business calendars (docs/calendars.md) to measure the history of a deliver_by counted "
    "in one (default: PROMISE_TRACKER_CALENDARS)"
)


def _calendars(path: str | None) -> Mapping[str, Calendar]:
    """The business calendars of SPEC 2.1; a bad file stops the command (exit 2)."""
    if path is None:
        return {}
    from promise_tracker.calendars import load_calendars

    return load_calendars(path)


def _warn_at(text: str) -> Fractions:
    try:
        return warn_fractions(text)
    except ValueError as exc:
        raise UsageError(f"--warn-at: {exc}") from None


def _replay_store(target: str, database: str) -> tuple[Store, ClickHouseSink]:
    """A server when ``target`` is a clickhouse:// URL, else a chdb directory; migrated."""
    from promise_tracker.sinks.batcher import ClickHouseSink
    from promise_tracker.sinks.migrate import migrate
    from promise_tracker.sinks.store import open_store

    url = target if target.startswith(("clickhouse://", "clickhouses://")) else ""
    store = open_store(url, target, database)
    migrate(store)
    return store, ClickHouseSink(store, max_rows=50_000)


def _tap(sink: ClickHouseSink, subject_key: bytes) -> ClickHouseTap:
    from promise_tracker.sinks.replay_tap import ClickHouseTap

    return ClickHouseTap(sink, subject_key=subject_key)


def _subject_key() -> bytes:
    """PROMISE_TRACKER_SUBJECT_KEY (or its _FILE): the replay stores subjects as the sink does."""
    from promise_tracker.runtime.settings import secret_from_env

    return secret_from_env("subject_key").encode()


def _migrate(args: argparse.Namespace) -> int:
    from promise_tracker.runtime.settings import Settings
    from promise_tracker.sinks.migrate import migrate, schema_version
    from promise_tracker.sinks.runner import describe_store, store_from

    settings = Settings.from_env()
    store = store_from(settings)
    try:
        applied = migrate(store)
        version = schema_version(store)
    finally:
        store.close()
    for name in applied:
        print(f"applied {name}")
    print(f"{describe_store(settings)}: schema version {version}")
    return 0


def _sink(args: argparse.Namespace) -> int:
    from promise_tracker.runtime.settings import Settings
    from promise_tracker.services import run_sink

    run_sink(Settings.from_env())
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from promise_tracker.schemas.jsonschema import check, write

    if args.check:
        stale = check()
        for name in stale:
            print(f"schemas/json/{name} is out of date: run promise-tracker schemas --write")
        return 1 if stale else 0
    for path in write():
        print(path)
    return 0


def _dashboards(args: argparse.Namespace) -> int:
    try:
        from promise_tracker.dashboards import build
    except ImportError as exc:
        print(
            f"promise-tracker dashboards: {exc}: install the dev extras (pip install -e '.[dev]')",
            file=sys.stderr,
        )
        return 1
    from promise_tracker.objectives.load import load_objectives

    objectives = load_objectives(args.objectives or build.OBJECTIVES)
    if args.check:
        stale = build.drifted(objectives=objectives)
        for path in stale:
            print(f"{path} differs from dashboards/: run promise-tracker dashboards --write")
        return 1 if stale else 0
    for path in build.write(objectives=objectives):
        print(f"wrote {path}")
    return 0


def _objectives(args: argparse.Namespace) -> int:
    from promise_tracker.objectives.load import check_objectives, load_objectives

    problems = check_objectives(args.file)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return UsageError.exit_code
    print(f"{len(load_objectives(args.file))} objectives OK")
    return 0


def _report(args: argparse.Namespace) -> int:
    from promise_tracker.report.write import run_report

    written = run_report(
        since=args.since,
        until=args.until,
        out=args.out,
        objectives=args.objectives,
        pdf=args.pdf,
        clickhouse=args.clickhouse,
        database=args.database,
    )
    for path in (written.html, written.pdf):
        if path is not None:
            print(f"wrote {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from promise_tracker.check.command import options_from, run_check

    options = options_from(args.window, args.confidence, args.min_history)
    calendars = _calendars(args.calendars or _calendars_from_env())
    return run_check(
        args.file, args.clickhouse, args.database, options, args.quiet, sys.stdout.buffer,
        calendars,
    )  # fmt: skip


def _calendars_from_env() -> str | None:
    """PROMISE_TRACKER_CALENDARS, as the worker reads it (None when unset)."""
    from promise_tracker.runtime.settings import PREFIX

    return os.environ.get(f"{PREFIX}CALENDARS") or None


def _serve(args: argparse.Namespace) -> int:
    from promise_tracker.check.api import serve

    settings = None
    if args.kafka is not None:  # given alone: PROMISE_TRACKER_KAFKA, as every Kafka client
        from promise_tracker.runtime.settings import PREFIX, Settings

        env = {**os.environ, f"{PREFIX}KAFKA": args.kafka} if args.kafka else None
        try:
            settings = Settings.from_env(env)
        except SettingsError as exc:
            if args.kafka and str(exc).startswith(f"{PREFIX}KAFKA="):
                raise UsageError(f"--kafka {args.kafka!r}: expected host:port[,...]") from None
            raise
    calendars = _calendars(args.calendars or _calendars_from_env())
    return serve(args.host, args.port, args.clickhouse, args.database, settings, calendars)


def _demo(args: argparse.Namespace) -> int:
    if args.offline:
        from promise_tracker.stories import run_stories

        return run_stories(sys.stdout)
    from promise_tracker.demo import run_demo

    return run_demo(sys.stdout, args.events, Path(args.workdir) if args.workdir else None)


def _emit(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from promise_tracker.emit import Emitter, InvalidEvent
    from promise_tracker.errors import BadInput, BrokerError
    from promise_tracker.runtime.settings import Settings
    from promise_tracker.runtime.topics import check_topics
    from promise_tracker.schemas.models import CapabilityDeclared

    settings = Settings.from_env()
    invalid = old = 0
    earliest = math.inf  # the earliest event time sent
    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    horizon = (now - dt.timedelta(seconds=settings.retention)).timestamp()
    try:
        with source:
            # before anything is sent: a broker that is down, or topics not created yet,
            # would leave the events waiting in the producer's queue
            check_topics(settings, [settings.issued, settings.observed, settings.capabilities])
            lines = _retimed(source.read().splitlines(), now) if args.retime else source
            with Emitter(settings) as emitter:
                for number, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        event = emitter.send_event(line.rstrip(b"\r\n"))
                    except InvalidEvent as exc:
                        invalid += 1
                        print(f"{args.file}:{number}: {exc.reason}: {exc}", file=sys.stderr)
                        continue
                    if type(event) is CapabilityDeclared:
                        continue  # never too late: in force whenever it arrives
                    t = event.time.timestamp()
                    old += t < horizon
                    earliest = min(earliest, t)
    except KafkaException as exc:  # the broker went away meanwhile
        raise BrokerError(str(exc)) from None
    if old:
        span = now.timestamp() - earliest
        warning = _too_old(old, emitter.sent, settings.retention, span, args.retime)
        print(f"promise-tracker emit: {warning}", file=sys.stderr)
    print(f"{emitter.sent} events sent, {invalid} invalid (not sent)", file=sys.stderr)
    return BadInput.exit_code if invalid else 0


def _retimed(lines: list[bytes], now: dt.datetime) -> list[bytes]:
    """The lines with every time moved by one offset so that the last event is ``now``."""
    from promise_tracker.retime import offset, shift

    delta = offset(lines, now)
    if not delta:  # no event in the file (or it ends now already)
        return lines
    print(
        f"promise-tracker emit: --retime moves every time by {delta} so that the last event "
        f"is now ({now:%Y-%m-%dT%H:%M:%SZ})",
        file=sys.stderr,
    )
    return shift(lines, delta)


def _too_old(old: int, sent: int, retention: float, span: float, retimed: bool) -> str:
    """The warning for events the worker will reject as too_late (older than ``retention``
    seconds; the earliest ``span`` seconds before now), and what to do."""
    said = (
        f"{old} of {sent} events are older than the worker's retention "
        f"({_duration(retention)}) and will be rejected as too_late"
    )
    if not retimed:
        return f"{said}: use --retime to move them to now"
    # the file's events keep their distances: it needs a retention longer than its span
    days = math.ceil((span + 3_600) / 86_400)
    return (
        f"{said}: the file spans {span / 86_400:.1f} days, more than the retention: run the "
        f"worker with PROMISE_TRACKER_RETENTION={days}d or more"
    )


def _duration(seconds: float) -> str:
    """7d, 12h, 30m or 45s: as the settings take durations."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _worker(args: argparse.Namespace) -> int:
    from promise_tracker.runtime.settings import Settings
    from promise_tracker.services import run_worker

    run_worker(Settings.from_env())
    return 0


def _topics(args: argparse.Namespace) -> int:
    from promise_tracker.runtime.settings import Settings
    from promise_tracker.runtime.topics import ensure_topics

    created = ensure_topics(Settings.from_env())
    for name in created:
        print(f"created {name}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Unusable arguments: one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="promise-tracker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="run the whole pipeline (Kafka, worker, sink, ClickHouse) on examples"
    )
    demo.add_argument("--events", type=int, default=20_000, help="synthetic events to send")
    demo.add_argument("--workdir", help="where its data and logs go (.data/demo)")
    demo.add_argument(
        "--offline", action="store_true", help="only replay the example stories (no Kafka)"
    )
    demo.set_defaults(run=_demo)

    replay = commands.add_parser("replay", help="run the rules over JSONL files of events")
    replay.add_argument("inputs", nargs="+", metavar="INPUT.jsonl")
    replay.add_argument("--violations", metavar="V.jsonl")
    replay.add_argument("--outcomes", metavar="O.jsonl")
    replay.add_argument("--rejects", metavar="R.jsonl")
    replay.add_argument(
        "--clickhouse",
        metavar="PATH",
        help="also write the ClickHouse tables: a chdb directory, or a clickhouse:// URL",
    )
    replay.add_argument(
        "--database",
        default="promise_tracker_replay",
        help="(with --clickhouse) not the live sink's: a replay's versions are its own",
    )
    replay.add_argument("--lateness", type=float, default=0.0, metavar="SECONDS")
    defaults = EngineConfig()
    replay.add_argument("--retention", type=float, default=defaults.retention, metavar="SECONDS")
    replay.add_argument("--orphan-ttl", type=float, default=defaults.orphan_ttl, metavar="SECONDS")
    replay.add_argument(
        "--warnings", metavar="W.jsonl", help="also write every at-risk warning emission there"
    )
    replay.add_argument(
        "--warn-at",
        default=DEFAULT_WARN_AT,
        metavar="F[,F...]",
        help="fractions of a deliver_by's time at which it is at risk (default 0.75)",
    )
    replay.add_argument(
        "--calendars", metavar="FILE.toml", help="business calendars (docs/calendars.md)"
    )
    replay.add_argument(
        "--in-file-order",
        action="store_true",
        help="apply the lines as they come (as live arrival would), not in event-time order",
    )
    replay.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    replay.set_defaults(run=_replay)

    emit = commands.add_parser(
        "emit", help="validate a JSONL file of events and send the valid ones to Kafka"
    )
    emit.add_argument("file", metavar="FILE.jsonl", help="'-' reads standard input")
    emit.add_argument(
        "--retime",
        action="store_true",
        help="move every time of the file (event times, due dates) by one offset so that "
        "its last event is now: for examples from the past",
    )
    emit.set_defaults(run=_emit)

    worker = commands.add_parser(
        "worker", help="run a streaming worker (settings from PROMISE_TRACKER_* variables)"
    )
    worker.set_defaults(run=_worker)

    sink = commands.add_parser(
        "sink",
        help="write the output topics into ClickHouse (chdb, or PROMISE_TRACKER_CLICKHOUSE_URL)",
    )
    sink.set_defaults(run=_sink)

    migrate = commands.add_parser("migrate", help="create or update the ClickHouse tables")
    migrate.set_defaults(run=_migrate)

    topics = commands.add_parser("topics", help="create the pipeline's topics if missing")
    topics.set_defaults(run=_topics)

    schemas = commands.add_parser("schemas", help="write or check the published JSON Schema files")
    mode = schemas.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--write", action="store_true", help="regenerate promise_tracker/schemas/json/"
    )
    mode.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    schemas.set_defaults(run=_schemas)

    dashboards = commands.add_parser(
        "dashboards", help="write or check the Grafana dashboards and alert rules (deploy/grafana)"
    )
    mode = dashboards.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate them from dashboards/")
    mode.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    dashboards.add_argument(
        "--objectives",
        metavar="FILE",
        help="the objectives (OpenSLO YAML) to generate alert rules for "
        "(default: examples/objectives.yaml)",
    )
    dashboards.set_defaults(run=_dashboards)

    objectives = commands.add_parser("objectives", help="check an objectives file (OpenSLO)")
    objective_commands = objectives.add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    check = objective_commands.add_parser(
        "check", help="report every problem of the file (exit 2), or how many objectives it holds"
    )
    check.add_argument("file", metavar="FILE", help="OpenSLO v1 SLO documents (YAML)")
    objectives.set_defaults(run=_objectives)

    report = commands.add_parser(
        "report", help="write the leadership report (one HTML page, and a PDF) from ClickHouse"
    )
    report.add_argument("--since", default="7d", help="the period: 12h, 7d, 2w (default 7d)")
    report.add_argument("--until", metavar="TIME", help="its end, RFC 3339 (default: now)")
    report.add_argument("--out", required=True, metavar="REPORT.html")
    report.add_argument("--pdf", metavar="REPORT.pdf", help="also print it (headless Chromium)")
    report.add_argument("--objectives", metavar="FILE", help="OpenSLO objectives (YAML)")
    report.add_argument(
        "--clickhouse",
        metavar="PATH|URL",
        help="a chdb directory or a server's HTTP URL (default: the sink's store settings)",
    )
    report.add_argument("--database", help="(default: PROMISE_TRACKER_DATABASE)")
    report.set_defaults(run=_report)

    check = commands.add_parser(
        "check", help="can we keep this? planned promises against the history (docs/check.md)"
    )
    check.add_argument("file", metavar="FILE.jsonl", help="promise.issued events; '-' is stdin")
    check.add_argument("--clickhouse", metavar="PATH|URL", help="default: the sink's store")
    check.add_argument("--database", help="(default: PROMISE_TRACKER_DATABASE)")
    check.add_argument("--window", default="28d", help="history before each promise (28d)")
    check.add_argument("--confidence", type=float, default=0.95, help="for the tightest terms")
    check.add_argument("--min-history", type=int, default=30, help="comparable outcomes needed")
    check.add_argument("--quiet", action="store_true", help="no summary on stderr")
    check.add_argument("--calendars", metavar="FILE.toml", help=CALENDARS_HELP)
    check.set_defaults(run=_check)

    serve = commands.add_parser("serve", help="the check and promise look-ups as a JSON API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
    serve.add_argument("--clickhouse", metavar="PATH|URL", help="default: the sink's store")
    serve.add_argument("--database", help="(default: PROMISE_TRACKER_DATABASE)")
    serve.add_argument(
        "--kafka",
        nargs="?",
        const="",
        metavar="BOOTSTRAP",
        help="also judge every check against the capabilities declared on this broker "
        "(host:port; alone: PROMISE_TRACKER_KAFKA), followed from their topic's beginning",
    )
    serve.add_argument("--calendars", metavar="FILE.toml", help=CALENDARS_HELP)
    serve.set_defaults(run=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; an error a user acts on is one line and its family's exit code
    (promise_tracker/errors.py, README "Exit codes"), never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except PromiseTrackerError as exc:
        print(f"promise-tracker {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())

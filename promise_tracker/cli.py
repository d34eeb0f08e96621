"""The ``promise-tracker`` command: the composition root that wires the parts together."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from sinks.store import StoreError
from streams.engine import EngineConfig


def _replay(args: argparse.Namespace) -> int:
    from streams.replay import ReplayError, replay
    from streams.settings import SettingsError

    outputs = (args.violations, args.outcomes, args.rejects)
    if args.clickhouse is None and None in outputs:
        print(
            "promise-tracker replay: give --violations, --outcomes and --rejects "
            "(or --clickhouse PATH to write the tables instead)",
            file=sys.stderr,
        )
        return 2
    config = EngineConfig(retention=args.retention, orphan_ttl=args.orphan_ttl)
    store = sink = None
    subject_key = b""
    try:
        if args.clickhouse is not None:
            subject_key = _subject_key()
            store, sink = _replay_store(args.clickhouse, args.database)
        summary = replay(
            [Path(p) for p in args.inputs],
            *(Path(p or os.devnull) for p in outputs),
            lateness=args.lateness,
            config=config,
            progress=None if not args.quiet else False,
            tap=None if sink is None else _tap(sink, subject_key),
        )
        if sink is not None:
            sink.flush()
    except (ReplayError, SettingsError) as exc:
        print(f"promise-tracker replay: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"promise-tracker replay: ClickHouse: {exc}", file=sys.stderr)
        return 1
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
            f"{sum(rejects.values())} rejected {rejects}, "
            f"{stats.duplicates} duplicates, {stats.late} late, {summary.blank} blank; "
            f"{stats.emissions} violation emissions ({stats.retractions} retractions), "
            f"{stats.active} violations active, {summary.outcomes} outcomes "
            f"({stats.evicted} written early when their retention ended)",
            file=sys.stderr,
        )
    return 0


def _replay_store(target: str, database: str):  # type: ignore[no-untyped-def]
    """A server when ``target`` is a clickhouse:// URL, else a chdb directory; migrated."""
    from sinks.clickhouse import ClickHouseSink
    from sinks.migrate import migrate
    from sinks.store import open_store

    url = target if target.startswith(("clickhouse://", "clickhouses://")) else ""
    store = open_store(url, target, database)
    migrate(store)
    return store, ClickHouseSink(store, max_rows=50_000)


def _tap(sink, subject_key: bytes):  # type: ignore[no-untyped-def]
    from sinks.replay_tap import ClickHouseTap

    return ClickHouseTap(sink, subject_key=subject_key)


def _subject_key() -> bytes:
    """PROMISE_TRACKER_SUBJECT_KEY (or its _FILE): the replay stores subjects as the sink does."""
    from streams.settings import secret_from_env

    return secret_from_env("subject_key").encode()


def _migrate(args: argparse.Namespace) -> int:
    from sinks.migrate import migrate, schema_version
    from sinks.runner import describe_store, store_from

    settings = _settings()
    store = store_from(settings)
    try:
        applied = migrate(store)
        version = schema_version(store)
    except StoreError as exc:
        print(f"promise-tracker migrate: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    for name in applied:
        print(f"applied {name}")
    print(f"{describe_store(settings)}: schema version {version}")
    return 0


def _sink(args: argparse.Namespace) -> int:
    from sinks.runner import run_sink
    from streams.settings import SettingsError

    try:
        run_sink(_settings())
    except StoreError as exc:
        print(f"promise-tracker sink: {exc}", file=sys.stderr)
        return 1
    except SettingsError as exc:  # its metrics port is taken, say
        print(f"promise-tracker sink: {exc}", file=sys.stderr)
        return 2
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from schemas.jsonschema import check, write

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
        from dashboards import build
    except ImportError as exc:
        print(
            f"promise-tracker dashboards: {exc}: install the dev extras (pip install -e '.[dev]')",
            file=sys.stderr,
        )
        return 1
    if args.check:
        stale = build.drifted()
        for path in stale:
            print(f"{path} differs from dashboards/: run promise-tracker dashboards --write")
        return 1 if stale else 0
    for path in build.write():
        print(f"wrote {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.offline:
        from promise_tracker.stories import run_stories

        return run_stories(sys.stdout)
    from promise_tracker.demo import run_demo

    return run_demo(sys.stdout, args.events, Path(args.workdir) if args.workdir else None)


def _settings():
    from streams.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"promise-tracker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _emit(args: argparse.Namespace) -> int:
    from promise_tracker.emit import DeliveryFailed, Emitter, InvalidEvent

    settings = _settings()
    invalid = 0
    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"promise-tracker emit: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        with source, Emitter(settings) as emitter:
            for number, line in enumerate(source, 1):
                if not line.strip():
                    continue
                try:
                    emitter.send_event(line.rstrip(b"\r\n"))
                except InvalidEvent as exc:
                    invalid += 1
                    print(f"{args.file}:{number}: {exc.reason}: {exc}", file=sys.stderr)
    except DeliveryFailed as exc:
        print(f"promise-tracker emit: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a broker that cannot be reached, say
        print(f"promise-tracker emit: {exc}", file=sys.stderr)
        return 1
    print(f"{emitter.sent} events sent, {invalid} invalid (not sent)", file=sys.stderr)
    return 1 if invalid else 0


def _worker(args: argparse.Namespace) -> int:
    from streams.settings import SettingsError
    from streams.worker import run_worker

    try:
        run_worker(_settings())
    except SettingsError as exc:  # its metrics port is taken, say
        print(f"promise-tracker worker: {exc}", file=sys.stderr)
        return 2
    return 0


def _topics(args: argparse.Namespace) -> int:
    from streams.settings import SettingsError
    from streams.topics import TopicError, ensure_topics

    try:
        created = ensure_topics(_settings())
    except (TopicError, SettingsError) as exc:  # SettingsError: credentials refused
        print(f"promise-tracker topics: {exc}", file=sys.stderr)
        return 1
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
    replay.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    replay.set_defaults(run=_replay)

    emit = commands.add_parser(
        "emit", help="validate a JSONL file of events and send the valid ones to Kafka"
    )
    emit.add_argument("file", metavar="FILE.jsonl", help="'-' reads standard input")
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
    mode.add_argument("--write", action="store_true", help="regenerate schemas/json/")
    mode.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    schemas.set_defaults(run=_schemas)

    dashboards = commands.add_parser(
        "dashboards", help="write or check the Grafana dashboards and alert rules (deploy/grafana)"
    )
    mode = dashboards.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate them from dashboards/")
    mode.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    dashboards.set_defaults(run=_dashboards)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())

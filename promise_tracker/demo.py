"""``promise-tracker demo``: the whole pipeline on one machine, from nothing, and back.

Starts a Kafka broker (deploy/kafka/kafka.sh), creates the tables in an embedded ClickHouse
(chdb), runs a worker and a sink, sends the example stories and a synthetic stream through
the SDK, waits until every event is in ClickHouse, prints what ClickHouse says, and stops
everything it started. The tables stay in ``.data/demo/chdb`` for a look afterwards. The
broker listens on ``KAFKA_PORT`` (and the next port) when it is set, else on a free pair.

When Alertmanager is installed (Debian's prometheus-alertmanager), the worker pages through
one started by deploy/alertmanager/alertmanager.sh, and the demo counts the alerts firing.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import orjson

from promise_tracker.emit import Emitter, InvalidEvent
from promise_tracker.errors import PromiseTrackerError
from promise_tracker.retime import offset, shift, shift_lines
from promise_tracker.runtime.kafka import group_lag, kafka_config
from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from promise_tracker.schemas.reject import REASON_MEANINGS
from promise_tracker.sinks import readback as queries
from promise_tracker.sinks.migrate import migrate
from promise_tracker.sinks.store import ChdbStore
from promise_tracker.stories import EXAMPLES
from promise_tracker.streams.wording import foreseen
from promise_tracker.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
ALERTMANAGER_SH = ROOT / "deploy" / "alertmanager" / "alertmanager.sh"
WORKDIR = ROOT / ".data" / "demo"


class DemoError(PromiseTrackerError):
    """A step of the demo failed; the message says which and what to do."""


@dataclass(frozen=True)
class Retimed:
    """One date of a story's promise as the story has it and as the demo sent it."""

    what: str  # "open until", "issued", ...
    original: str  # as written in the story (2013)
    shifted: str  # as the verdicts print it: UTC, to the second


@dataclass(frozen=True)
class Stream:
    """What the demo sends: the lines, and the stories' dates before and after the move."""

    lines: list[bytes]
    stories: dict[str, Retimed]  # promise id of each story -> one of its dates, moved


class Process:
    """A ``promise-tracker`` command in the background, its output in a log file."""

    def __init__(self, command: str, settings: Settings, log: Path):
        env = settings.environment()
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "promise_tracker.cli", command],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(30)

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def run_demo(out: TextIO, events: int = 20_000, workdir: Path | None = None) -> int:
    # SIGTERM unwinds like Ctrl-C, so that what the demo started is stopped either way
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _run(out, events, (workdir or WORKDIR).resolve())
    except DemoError as exc:
        print(f"promise-tracker demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("promise-tracker demo: interrupted; what it started is stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _run(out: TextIO, events: int, workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port = _kafka_port()
    broker_env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_DATA": str(workdir / "kafka")}
    settings = Settings(
        kafka=f"127.0.0.1:{port}",
        partitions=4,
        chdb_path=str(workdir / "chdb"),
        # the stories span weeks of event time: keep their state long enough to apply all
        retention=90 * 86_400.0,
        # no metrics endpoints: a worker already running here may hold the default ports
        metrics_port=0,
        sink_metrics_port=0,
    )
    print(f"1/6 starting Kafka on {settings.kafka} (deploy/kafka/kafka.sh)", file=out, flush=True)
    _check_tools()
    processes: list[Process] = []
    paging = _alertmanager_env(workdir)  # None when Alertmanager is not installed
    try:
        _kafka("start", broker_env)
        print(f"2/6 creating the tables in chdb at {_show(workdir / 'chdb')}", file=out, flush=True)
        store = ChdbStore(settings.chdb_path, settings.database).connect()
        migrate(store)
        store.close()  # the sink owns the directory from now on
        ensure_topics(settings)
        print("3/6 starting a worker and a sink", file=out, flush=True)
        if paging is not None and _alertmanager("start", paging):
            url = f"http://127.0.0.1:{paging['ALERTMANAGER_PORT']}"
            settings = replace(settings, alertmanager_url=url)
            print(
                f"    paging through Alertmanager at {settings.alertmanager_url}"
                " (deploy/alertmanager/alertmanager.sh)",
                file=out,
                flush=True,
            )
        else:
            print(
                "    paging skipped: Alertmanager is not installed or did not start"
                " (Debian: apt-get install prometheus-alertmanager)",
                file=out,
                flush=True,
            )
        processes.append(Process("worker", settings, workdir / "worker.log"))
        processes.append(Process("sink", settings, workdir / "sink.log"))
        print("4/6 sending the example stories and a synthetic stream", file=out, flush=True)
        stream = _stream(workdir, events)
        malformed = _send(settings, stream.lines)
        print(
            f"5/6 waiting until all {len(stream.lines):,} events are in ClickHouse",
            file=out,
            flush=True,
        )
        _wait_drained(settings, processes, workdir)
        for process in reversed(processes):
            process.stop()
        print("6/6 what ClickHouse says:\n", file=out, flush=True)
        store = ChdbStore(settings.chdb_path, settings.database).connect()
        try:
            _summary(out, store, stream, malformed, settings.dlq)
            report = _leadership_report(store, workdir)
        finally:
            store.close()
        if settings.alertmanager_url:
            _paging_summary(out, settings.alertmanager_url)
        print(
            f"\nThe tables stay in {_show(workdir / 'chdb')} (database {settings.database}); "
            "the worker's and the sink's logs beside them.",
            file=out,
        )
        print(f"The leadership report of the last 7 days: {_show(report)}", file=out)
    finally:
        for process in reversed(processes):
            process.stop()
        if paging is not None:
            _alertmanager("stop", paging)
        try:
            _kafka("stop", broker_env)
        except DemoError as exc:  # do not hide why the demo stopped
            print(f"promise-tracker demo: {exc}", file=sys.stderr)


def _check_tools() -> None:
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        raise DemoError(
            f"the demo runs a real Kafka broker from its jars and needs {' and '.join(missing)}"
            " (Debian: apt-get install openjdk-17-jre-headless maven); "
            "`promise-tracker demo --offline` shows the rules without Kafka"
        )


def _kafka(action: str, env: dict[str, str]) -> None:
    # its messages (the first run fetches the jars: a minute or more) go to stderr
    done = subprocess.run([str(KAFKA_SH), action], env=env, stdout=sys.stderr, timeout=900)
    if done.returncode != 0:
        raise DemoError(f"deploy/kafka/kafka.sh {action} failed (its messages are above)")


def _alertmanager_env(workdir: Path) -> dict[str, str] | None:
    """The environment of deploy/alertmanager/alertmanager.sh on a free port, or None when
    Alertmanager is not installed."""
    if not any(shutil.which(name) for name in ("prometheus-alertmanager", "alertmanager")):
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {
        **os.environ,
        "ALERTMANAGER_PORT": str(port),
        "ALERTMANAGER_DATA": str(workdir / "alertmanager"),
    }


def _alertmanager(action: str, env: dict[str, str]) -> bool:
    """Paging is optional in the demo: a failure is reported (on stderr), not fatal."""
    done = subprocess.run([str(ALERTMANAGER_SH), action], env=env, stdout=sys.stderr, timeout=60)
    return done.returncode == 0


def _paging_summary(out: TextIO, url: str) -> None:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=10) as response:
            alerts = orjson.loads(response.read())
    except OSError as exc:
        print(f"\nAlertmanager at {url} did not answer: {exc}", file=out)
        return
    by_severity = Counter(a["labels"].get("severity", "?") for a in alerts)
    severities = ", ".join(f"{n:,} {name}" for name, n in sorted(by_severity.items()))
    print(
        f"\nAlertmanager at {url}: {len(alerts):,} alerts firing"
        + (f" (by severity: {severities})" if severities else "")
        + "; stopped now (routes in deploy/alertmanager/alertmanager.yml)",
        file=out,
    )


def _kafka_port() -> int:
    """KAFKA_PORT when set (as deploy/kafka/kafka.sh reads it), else a free pair."""
    value = os.environ.get("KAFKA_PORT", "").strip()
    if not value:
        return free_port_pair()
    if not value.isdigit() or not 1024 <= int(value) < 65535:
        raise DemoError(f"KAFKA_PORT={value!r} is not a port number between 1024 and 65534")
    port = int(value)
    if not (_free(port) and _free(port + 1)):
        raise DemoError(
            f"KAFKA_PORT={port}: port {port} or {port + 1} (Kafka's controller) is taken; "
            "choose another, or unset KAFKA_PORT and the demo takes a free pair"
        )
    return port


def free_port_pair(start: int = 29092) -> int:
    """A port P >= ``start`` with P+1 free too (Kafka's controller listens there)."""
    for port in range(start, start + 900, 2):
        if _free(port) and _free(port + 1):
            return port
    raise DemoError(f"no free pair of ports between {start} and {start + 900}")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stream(workdir: Path, events: int) -> Stream:
    """The stories, each moved so that it ended ten minutes ago, then a synthetic stream of
    about ``events`` events ending a minute ago (its junk lines included)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    lines: list[bytes] = []
    stories: dict[str, Retimed] = {}
    end = now - dt.timedelta(minutes=10)
    for story in sorted(EXAMPLES.glob("*.jsonl")):
        story_lines = [x for x in story.read_bytes().splitlines() if x.strip()]
        delta = offset(story_lines, end)
        lines += shift(story_lines, delta)
        stories.update(_retimed(story_lines, delta))
    synthetic = workdir / "synthetic.jsonl"
    generate(synthetic, events=events, open_promises=max(events // 10, 10), seed=7)
    lines += shift_lines(synthetic.read_bytes().splitlines(), now - dt.timedelta(minutes=1))
    return Stream(lines, stories)


def _retimed(lines: list[bytes], delta: dt.timedelta) -> dict[str, Retimed]:
    """Promise id -> its main date in the story and once moved by ``delta``."""
    found = {}
    for line in lines:
        event = orjson.loads(line)
        if event.get("type") == "promise.issued":
            what, was = _main_date(event)
            moved = (dt.datetime.fromisoformat(was) + delta).astimezone(dt.UTC)
            found[event["id"]] = Retimed(what, was, moved.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return found


def _main_date(event: dict) -> tuple[str, str]:
    """The date of a promise that its verdicts print (else when it was issued)."""
    data = event.get("data") or {}
    terms = data.get("terms") or {}
    for place, name, what in (
        (terms, "open_until", "open until"),
        (terms, "until", "available until"),
        (terms, "due_at", "due"),
        (data, "expires_at", "expires"),
    ):
        if name in place:
            return what, place[name]
    return "issued", event["time"]


def _send(settings: Settings, lines: list[bytes]) -> int:
    """Valid events through the SDK; what it refuses as raw bytes, to show the DLQ. Returns
    how many lines went raw."""
    from confluent_kafka import Producer
    from tqdm import tqdm

    raw = Producer(kafka_config(settings))
    refused = 0
    with Emitter(settings) as emitter:
        for line in tqdm(lines, desc="sending", unit="ev", file=sys.stderr, mininterval=0.5):
            try:
                emitter.send_event(line)
            except InvalidEvent:
                raw.produce(settings.issued, value=line)
                raw.poll(0)
                refused += 1
    if raw.flush(30):
        raise DemoError("the broker did not take the raw lines in 30 s")
    return refused


def _wait_drained(
    settings: Settings, processes: list[Process], workdir: Path, timeout: float = 300
) -> None:
    """Until the worker has committed all input and the sink all output, twice in a row
    (a quiet tick may still emit the deadlines that passed)."""
    inputs = [settings.issued, settings.observed]
    outputs = [settings.violations, settings.outcomes, settings.warnings, settings.dlq]
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 2:
        if time.monotonic() > deadline:
            raise DemoError(f"not done after {timeout:g} s; see the logs in {workdir}")
        for process in processes:
            if not process.alive():
                raise DemoError(f"a process stopped:\n{process.tail()}")
        drained = group_lag(settings, settings.group, inputs) == 0 and (
            group_lag(settings, settings.sink_group, outputs) == 0
        )
        calm = calm + 1 if drained else 0
        time.sleep(1.5)


def _summary(out: TextIO, store: ChdbStore, stream: Stream, malformed: int, dlq: str) -> None:
    rates = queries.keep_rate(store)
    _outcome_counts(out, queries.counts(store)["promises"], rates, queries.violations(store))
    _reject_table(out, queries.rejects(store), malformed, dlq)
    _keep_rate_table(out, rates)
    _story_verdicts(out, store, stream.stories)


def _outcome_counts(out: TextIO, promises: int, rates: list[dict], violations: dict) -> None:
    total: Counter[str] = Counter()
    for row in rates:
        for status in ("kept", "broken", "unverifiable", "cancelled", "open"):
            total[status] += int(row[status])
    print(
        f"{promises:,} promises: {total['kept']:,} kept, {total['broken']:,} broken, "
        f"{total['unverifiable']:,} unverifiable, {total['cancelled']:,} cancelled, "
        f"{total['open']:,} still open.",
        file=out,
    )
    active = [v for v in violations.values() if v["state"] == "active"]
    on = len({v["promise_id"] for v in active})
    which = f"the {on:,} broken promises" if on == total["broken"] else f"{on:,} promises"
    print(
        f"{len(active):,} violations on {which}: a promise can be broken in more than one way\n"
        "(one that names several channels counts one violation per channel that fails).\n",
        file=out,
    )


def _reject_table(out: TextIO, rejects: list[dict], malformed: int, dlq: str) -> None:
    if not rejects:
        print("No event was rejected.\n", file=out)
        return
    print(
        f"Rejected input: the demo sends {malformed:,} malformed lines (and observations of "
        "promises never issued)\non purpose, to show that bad input is rejected with a "
        "reason and kept, not lost: each one is in\n"
        f"the Kafka topic {dlq} and the ClickHouse table rejects, with its original bytes.",
        file=out,
    )
    by_reason = Counter(row["reason"] for row in rejects)
    print(f"  {'reason':<23}{'events':>6}  meaning", file=out)
    for reason, count in sorted(by_reason.items(), key=lambda x: (-x[1], x[0])):
        print(f"  {reason:<23}{count:>6,}  {REASON_MEANINGS.get(reason, '')}", file=out)
    print(f"  {'total':<23}{len(rejects):>6,}\n", file=out)


def _keep_rate_table(out: TextIO, rates: list[dict]) -> None:
    print("keep-rate by service and kind (kept / (kept + broken)):", file=out)
    print(
        f"  {'service':<27}{'kind':<20}{'kept':>6}{'broken':>7}{'unverif.':>9}"
        f"{'cancel.':>8}{'open':>6}{'keep-rate':>10}",
        file=out,
    )
    for row in rates:
        rate = "-" if row["keep_rate"] is None else f"{float(row['keep_rate']):.0%}"
        print(
            f"  {row['service']:<27}{row['kind']:<20}{int(row['kept']):>6,}"
            f"{int(row['broken']):>7,}{int(row['unverifiable']):>9,}"
            f"{int(row['cancelled']):>8,}{int(row['open']):>6,}{rate:>10}",
            file=out,
        )


def _story_verdicts(out: TextIO, store: ChdbStore, stories: dict[str, Retimed]) -> None:
    rows = queries.broken_promises(store, promise_ids=sorted(stories), limit=50)
    print("\nbroken promises from the example stories:", file=out)
    if not rows:
        print("  none", file=out)
        return
    years = sorted({stories[row["promise_id"]].original[:4] for row in rows})
    print(
        f"  (they happened in {' and '.join(years)}: the demo moved each story to end ten "
        "minutes ago, so its dates\n  are shifted; the words the customer read are as "
        "they were)",
        file=out,
    )
    shown = None
    for row in rows:
        if row["promise_id"] != shown:
            shown = row["promise_id"]
            date = stories[shown]
            print(f"  {shown} ({row['kind']}, {row['channel']}, {row['service']})", file=out)
            if row["promise_text"]:
                print(f'    the customer read: "{row["promise_text"]}"', file=out)
            print(
                f"    in the story: {date.what} {date.original}, shifted to {date.shifted}",
                file=out,
            )
        print(f"    {row['reason']}: promised {row['expected']}; {row['observed']}", file=out)
        if row["foreseen"]:
            said = foreseen(row["foreseen_at"], row["issued_at"], row["foreseen"])
            print(f"      {said}", file=out)


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _leadership_report(store: ChdbStore, workdir: Path) -> Path:
    """The report of the last 7 days, against the example objectives (docs/report.md), in
    ``workdir``; ``promise-tracker report --pdf`` prints one to PDF."""
    from promise_tracker.objectives.load import load_objectives
    from promise_tracker.report.figures import Period
    from promise_tracker.report.write import write_report

    now = time.time()
    objectives = load_objectives(ROOT / "examples" / "objectives.yaml")
    where = f"the demo's chdb at {_show(workdir / 'chdb')}"
    path = workdir / "report.html"
    write_report(store, path, Period(now - 7 * 86_400, now), objectives, where=where)
    return path

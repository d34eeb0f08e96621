"""What the chaos and rebalance tests share: the pipeline's processes on a broker of their
own, a watch on the worker group's committed offsets (recovery times), and the comparison
of what ClickHouse holds, what went over the violations topic, and what fires in
Alertmanager, with the replay."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from promise_tracker.paging.alerts import ALERTNAME, DEFAULT_SEVERITY, LEASES
from promise_tracker.runtime.kafka import group_lag
from promise_tracker.runtime.settings import Settings
from promise_tracker.schemas.codec import violation_event_id
from promise_tracker.schemas.models import ViolationRecord
from promise_tracker.sinks import readback as queries
from promise_tracker.sinks.store import ChdbStore
from tests.alertmanager import Alertmanager
from tests.answers import Answer
from tests.live import TopicReader, WorkerProcess, fresh_settings, start_broker, stop_broker
from tests.streams import ORPHAN_TTL, PARTITIONS, QUIET, RETENTION

TABLES = ("violations", "outcomes", "promises", "violation_events", "rejects")


@dataclass
class ChaosBroker:
    """The chaos tests' own broker: restarted on the same data directory."""

    port: int
    data: Path
    address: str
    restarts: int = 0

    def restart(self) -> float:
        """``kafka.sh stop`` then ``start``: a clean restart; returns the seconds it was down.
        A start that fails (its port not released yet, say) is tried again: a broker left
        down would leave the test waiting for input that never arrives."""
        started = time.monotonic()
        stop_broker(self.port, self.data)
        for attempt in range(3):
            try:
                broker = start_broker(self.port, self.data)
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise
                time.sleep(2.0)
        assert broker.started, "the broker did not stop"
        self.restarts += 1
        return time.monotonic() - started


def pipeline_settings(kafka: str, tmp: Path, **overrides: Any) -> Settings:
    """Own topics, group and chdb directory; the event-time settings of the equality tests
    (tests/streams.py says why); a store fault switch."""
    return fresh_settings(
        kafka,
        partitions=PARTITIONS,
        quiet=QUIET,
        orphan_ttl=ORPHAN_TTL,
        retention=RETENTION,
        chdb_path=str(tmp / "chdb"),
        sink_flush_interval=0.2,
        sink_max_backoff=1.0,
        store_fault_file=str(tmp / "store-down"),
        **overrides,
    )


def worker(
    settings: Settings, tmp: Path, name: str, static: bool, metrics_port: int = 0
) -> WorkerProcess:
    """A worker process; ``static``: with a stable ``instance`` (Kafka static membership);
    ``metrics_port``: its metrics there (the same port again after a restart), 0: none."""
    own = replace(settings, instance=f"chaos-{name}" if static else "", metrics_port=metrics_port)
    return WorkerProcess(own, tmp / f"worker-{name}.log")


def inputs_of(settings: Settings) -> list[str]:
    return [settings.issued, settings.observed]


def outputs_of(settings: Settings) -> list[str]:
    return [settings.violations, settings.outcomes, settings.dlq]


def drained(settings: Settings) -> bool:
    """The workers have committed all their input and the sink all the workers' output."""
    try:
        if group_lag(settings, settings.group, inputs_of(settings)) != 0:
            return False
        return group_lag(settings, settings.sink_group, outputs_of(settings)) == 0
    except KafkaException:  # e.g. a coordinator still loading: not yet
        return False


@dataclass
class Mark:
    """From ``since`` until the worker group has committed every input offset that existed
    at ``highs``' reading: the time for partitions to be processed again."""

    label: str
    since: float
    highs: dict[tuple[str, int], int] | None = None
    done_at: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.since


class Progress:
    """Samples the worker group's committed offsets in a thread, every 0.1 s."""

    def __init__(self, settings: Settings):
        self.partitions = [
            TopicPartition(t, n) for t in inputs_of(settings) for n in range(settings.partitions)
        ]
        self.config = {
            "bootstrap.servers": settings.kafka,
            "group.id": settings.group,
            "log_level": 2,  # its "connection refused" lines while the broker restarts: noise
        }
        self.consumer = Consumer(self.config)
        self.marks: list[Mark] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()

    def mark(self, label: str, since: float) -> Mark:
        """Watch for the group to get past the input's current ends (read now)."""
        mark = Mark(label, since)
        with self._lock:
            self.marks.append(mark)
        return mark

    def set_highs(self, mark: Mark) -> None:
        """The input's ends as of now (after what was sent since the mark's start); asked
        again while the broker restarts, for two minutes at most."""
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "the broker did not answer for two minutes"
            try:
                with self._lock:
                    mark.highs = {
                        (tp.topic, tp.partition): self.consumer.get_watermark_offsets(
                            tp, timeout=5
                        )[1]
                        for tp in self.partitions
                    }
                return
            except KafkaException:  # the broker is restarting: ask again
                time.sleep(0.2)
                self._refresh()

    def _refresh(self) -> None:
        """A consumer that is neither subscribed nor polled keeps the partition leaders it
        saw before a broker restart (leader -1) and was never asked again: seen as a chaos
        run stuck here for minutes with the broker long back. A new client asks afresh."""
        with self._lock:
            self.consumer.close()
            self.consumer = Consumer(self.config)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                pending = [m for m in self.marks if m.highs is not None and m.done_at is None]
                if not pending:
                    continue
                try:
                    committed = self.consumer.committed(self.partitions, timeout=5)
                except KafkaException:
                    continue
            now = time.monotonic()
            at = {(tp.topic, tp.partition): tp.offset for tp in committed}
            for mark in pending:
                assert mark.highs is not None
                if all(at[key] >= high for key, high in mark.highs.items() if high > 0):
                    mark.done_at = now


def read_topic(kafka: str, topic: str) -> list[Any]:
    """Every message of a topic, from the beginning to its end now."""
    reader = TopicReader(kafka, topic)
    try:
        while reader.poll(2.0):
            pass
        return reader.messages
    finally:
        reader.close()


def replay_emissions(path: Path) -> dict[str, list[str]]:
    """Violation id -> the event ids of the replay's emissions, in order (SPEC section 5:
    the violations file lists every emission)."""
    decode = msgspec.json.Decoder(ViolationRecord).decode
    out: dict[str, list[str]] = {}
    for line in path.read_bytes().splitlines():
        record = decode(line)
        out.setdefault(record.violation_id, []).append(violation_event_id(record))
    return out


def replay_retractions(path: Path) -> set[str]:
    decode = msgspec.json.Decoder(ViolationRecord).decode
    records = map(decode, path.read_bytes().splitlines())
    return {violation_event_id(r) for r in records if r.state != "active"}


def live_emissions(messages: list[Any]) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """Violation id -> the event ids sent for it, in order (one id, one partition: offset
    order is emission order), and event id -> the emission's data."""
    out: dict[str, list[str]] = {}
    data: dict[str, dict] = {}
    for message in messages:
        event = orjson.loads(message.value())
        out.setdefault(message.key().decode(), []).append(event["id"])
        data[event["id"]] = event["data"]
    return out, data


def write_differences(path: Path, messages: list[Any], replay_file: Path) -> None:
    """For a reader: per violation id whose live and replay emissions differ, both
    sequences (state, reason, occurred_at, excess, event id)."""
    live, data = live_emissions(messages)
    decode = msgspec.json.Decoder(ViolationRecord).decode
    replay: dict[str, list[tuple]] = {}
    for line in replay_file.read_bytes().splitlines():
        r = decode(line)
        replay.setdefault(r.violation_id, []).append(
            (r.state, r.reason, r.occurred_at, r.excess, violation_event_id(r))
        )
    out = {}
    for vid in live.keys() | replay.keys():
        theirs = replay.get(vid, [])
        mine = [
            (data[e]["state"], data[e]["reason"], data[e]["occurred_at"], data[e]["excess"], e)
            for e in collapse(live.get(vid, []))
        ]
        if {m[-1] for m in mine} != {t[-1] for t in theirs}:
            out[vid] = {"live": mine, "replay": theirs}
    path.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))


def collapse(sequence: list[str]) -> list[str]:
    """Consecutive repeats (a re-announcement after a restore, a re-send) said once."""
    return [e for i, e in enumerate(sequence) if i == 0 or sequence[i - 1] != e]


@dataclass
class Stored:
    answer: Answer
    raw: Counter = field(default_factory=Counter)  # rows per table before merging
    final: Counter = field(default_factory=Counter)  # rows per table read with FINAL
    merged: Counter = field(default_factory=Counter)  # rows per table after OPTIMIZE FINAL
    event_pairs: set[tuple[str, str]] = field(default_factory=set)  # (violation, event) ids
    pairs_repeated: int = 0  # (violation, event id) pairs with more than one merged row


def stored(settings: Settings) -> Stored:
    """What ClickHouse holds, read once the sink has stopped (one process per chdb dir)."""
    store = ChdbStore(settings.chdb_path, settings.database).connect()
    try:
        violations = queries.violations(store)
        out = Stored(
            Answer(
                {k: v for k, v in violations.items() if v["state"] == "active"},
                queries.outcomes(store),
                Counter(),
                set(),
            )
        )
        rejects = queries.rejects(store)
        out.answer.orphans = {r["event_id"] for r in rejects if r["reason"] == "unknown_promise"}
        out.answer.rejects = Counter(
            r["reason"] for r in rejects if r["reason"] != "unknown_promise"
        )
        out.final = queries.counts(store)
        for table in TABLES:
            out.raw[table] = int(store.rows(f"SELECT count() AS n FROM {{db}}.{table}")[0]["n"])
        for table in TABLES:
            store.command(f"OPTIMIZE TABLE {{db}}.{table} FINAL")
            out.merged[table] = int(store.rows(f"SELECT count() AS n FROM {{db}}.{table}")[0]["n"])
        rows = store.rows("SELECT violation_id, event_id FROM {db}.violation_events")
        pairs = Counter((r["violation_id"], r["event_id"]) for r in rows)
        out.event_pairs = set(pairs)
        out.pairs_repeated = sum(1 for n in pairs.values() if n > 1)
    finally:
        store.close()
    return out


@dataclass
class Verdict:
    """Lost and duplicated, defined in the module docstring of tests/chaos/test_chaos.py."""

    lost: list[str]
    duplicated: list[str]
    figures: dict[str, Any]


def judge(got: Stored, expected: Answer) -> Verdict:
    """ClickHouse against the replay, exactly: violations (last state per id, active) and
    outcomes per promise, field by field."""
    lost = [f"violation {k} missing" for k in expected.violations.keys() - got.answer.violations]
    lost += [
        f"violation {k} differs: {got.answer.violations[k]} != {expected.violations[k]}"
        for k in expected.violations.keys() & got.answer.violations.keys()
        if got.answer.violations[k] != expected.violations[k]
    ]
    lost += [f"outcome {p} missing" for p in expected.outcomes.keys() - got.answer.outcomes]
    lost += [
        f"outcome {p} differs: {got.answer.outcomes[p]} != {expected.outcomes[p]}"
        for p in expected.outcomes.keys() & got.answer.outcomes.keys()
        if got.answer.outcomes[p] != expected.outcomes[p]
    ]
    duplicated = [
        f"violation {k} active in ClickHouse, not in the replay"
        for k in got.answer.violations.keys() - expected.violations.keys()
    ]
    duplicated += [
        f"outcome {p} in ClickHouse, not in the replay"
        for p in got.answer.outcomes.keys() - expected.outcomes.keys()
    ]
    duplicated += [
        f"{table}: {got.merged[table]} rows after OPTIMIZE FINAL, {got.final[table]} read FINAL"
        for table in TABLES
        if got.merged[table] != got.final[table]
    ]
    if got.pairs_repeated:
        duplicated.append(f"{got.pairs_repeated} emissions stored twice after merging")
    figures = {
        "rows before FINAL": dict(got.raw),
        "rows with FINAL": dict(got.final),
        "re-deliveries absorbed": sum(got.raw.values()) - sum(got.final.values()),
        "active violations": len(got.answer.violations),
        "outcomes": len(got.answer.outcomes),
    }
    return Verdict(lost, duplicated, figures)


@dataclass
class EmissionCheck:
    """Per violation id, the live emissions (violations topic) against the replay's."""

    live_messages: int
    live_distinct: int
    replay_distinct: int
    live_only: dict[str, list[str]]  # id -> event ids the replay never emitted
    replay_only: dict[str, list[str]]  # id -> event ids never emitted live
    refired: dict[str, list[str]]  # id -> collapsed sequence with a non-consecutive repeat
    final_differs: list[str]  # ids whose last active emission differs (or is only one's)
    stored_missing: int  # distinct live emissions not in violation_events
    stored_extra: int  # violation_events rows that were never on the topic

    def summary(self) -> dict[str, int]:
        return {
            "violation messages on the topic": self.live_messages,
            "distinct emissions live": self.live_distinct,
            "distinct emissions in the replay": self.replay_distinct,
            "ids with live-only emissions": len(self.live_only),
            "live-only emissions": sum(map(len, self.live_only.values())),
            "ids with replay-only emissions": len(self.replay_only),
            "replay-only emissions": sum(map(len, self.replay_only.values())),
            "ids fired again after a change": len(self.refired),
            "ids whose final active emission differs": len(self.final_differs),
            "emissions on the topic missing in ClickHouse": self.stored_missing,
            "emissions in ClickHouse never on the topic": self.stored_extra,
        }


def check_emissions(
    messages: list[Any], replay_file: Path, pairs: set[tuple[str, str]]
) -> EmissionCheck:
    live, data = live_emissions(messages)
    replay = replay_emissions(replay_file)
    retractions = {e for e, record in data.items() if record["state"] != "active"}
    retractions |= replay_retractions(replay_file)

    def final(sequence: list[str]) -> str | None:
        """The id's truth (SPEC section 4): its last emission, if that is not a retraction."""
        return sequence[-1] if sequence and sequence[-1] not in retractions else None

    live_only, replay_only, refired, final_differs = {}, {}, {}, []
    for vid in live.keys() | replay.keys():
        mine, theirs = live.get(vid, []), replay.get(vid, [])
        if extra := sorted(set(mine) - set(theirs)):
            live_only[vid] = extra
        if missing := sorted(set(theirs) - set(mine)):
            replay_only[vid] = missing
        sequence = collapse(mine)
        if len(sequence) != len(set(sequence)) and collapse(theirs) != sequence:
            refired[vid] = sequence
        if final(mine) != final(theirs):
            final_differs.append(vid)
    live_pairs = {(vid, e) for vid, events in live.items() for e in events}
    return EmissionCheck(
        live_messages=len(messages),
        live_distinct=len(live_pairs),
        replay_distinct=len({(vid, e) for vid, events in replay.items() for e in events}),
        live_only=live_only,
        replay_only=replay_only,
        refired=refired,
        final_differs=final_differs,
        stored_missing=len(live_pairs - pairs),
        stored_extra=len(pairs - live_pairs),
    )


def wait_drained(settings: Settings, timeout: float) -> float:
    """Until both groups have committed everything (twice, a second apart: a last tick's
    emissions reach the sink too); returns the seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    settled = 0
    while settled < 2:
        assert time.monotonic() < deadline, f"not drained in {timeout:g} s"
        if drained(settings):
            settled += 1
            time.sleep(1.0)
        else:
            settled = 0
            time.sleep(0.3)
    return time.monotonic() - started


# --- paging -------------------------------------------------------------------------------

# Short re-sends, so that the leases of a killed worker's alerts lapse within seconds (four
# re-sends: promise_tracker/paging/alerts.py) and the firing set can be judged soon after the drain.
ALERT_RESEND = 2.0
LEASE = LEASES * ALERT_RESEND
PAGE_LABELS = ("service", "channel", "kind", "reason", "severity")

# One receiver that sends nothing, no inhibition (the example config's rule would suppress
# the tickets of a service with a page firing) and no grouping worth waiting for.
ALERTMANAGER_CONFIG = """\
route:
  receiver: nowhere
receivers:
  - name: nowhere
"""


def chaos_pager(tmp: Path) -> Alertmanager:
    """An Alertmanager of the test's own (deploy/alertmanager/alertmanager.sh), not started."""
    config = tmp / "alertmanager.yml"
    config.write_text(ALERTMANAGER_CONFIG)
    return Alertmanager(tmp / "alertmanager", config)


def firing(am: Alertmanager) -> list[dict]:
    """Every violation alert Alertmanager holds unresolved, silenced, inhibited or not yet
    processed alike (a resolved one, or one past its endsAt, is not listed); at-risk
    warnings are other alerts."""
    query = "active=true&silenced=true&inhibited=true&unprocessed=true"
    with urllib.request.urlopen(f"{am.url}/api/v2/alerts?{query}", timeout=10) as response:
        alerts = orjson.loads(response.read())
    return [a for a in alerts if a["labels"].get("alertname") == ALERTNAME]


def received(am: Alertmanager) -> dict[str, int]:
    """What Alertmanager took in over the run, from every worker process, killed ones too
    (its own counters, summed over API versions: alerts received by status, invalid ones)."""
    with urllib.request.urlopen(f"{am.url}/metrics", timeout=10) as response:
        text = response.read().decode()

    def total(name: str, labels: str = "") -> int:
        pattern = rf"^{name}\{{([^}}]*)\}} (\S+)$"
        found = re.findall(pattern, text, re.MULTILINE)
        return sum(int(float(value)) for names, value in found if labels in names)

    return {
        "firing alerts received": total("alertmanager_alerts_received_total", 'status="firing"'),
        "resolved alerts received": total(
            "alertmanager_alerts_received_total", 'status="resolved"'
        ),
        "invalid alerts received": total("alertmanager_alerts_invalid_total"),
    }


def pager_metrics(port: int) -> dict[str, int]:
    """A worker's pager figures (streams/worker_metrics.py), from the process running now."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {}
    for name in ("alerts_sent", "alert_post_failures", "alerts_dropped", "alerts_active"):
        found = re.search(rf"^\w*{name}(?:_total)? (\S+)", text, re.MULTILINE)
        out[name] = int(float(found.group(1))) if found else -1
    return out


def page_labels(violations: dict[str, dict]) -> dict[str, dict[str, str]]:
    """Violation id -> the labels its alert must carry (docs/alerting.md), from the
    violations in the replay's shape (active ones)."""
    return {
        vid: {
            "alertname": ALERTNAME,
            "service": v["service"],
            "channel": v["channel"],
            "kind": v["kind"],
            "reason": v["reason"],
            "severity": (v.get("labels") or {}).get("severity") or DEFAULT_SEVERITY,
            "violation_id": vid,
        }
        for vid, v in violations.items()
    }


@dataclass
class PageCheck:
    """The alerts firing against the active violations: one alert per id, its labels right."""

    firing: int  # alerts listed
    ids: set[str]  # their violation ids
    missing: list[str]  # active violations with no alert firing
    extra: list[str]  # ids firing that are not active violations
    doubled: dict[str, list[dict]]  # id -> the labels of its alerts, when more than one
    labels_differ: dict[str, tuple[dict, dict]]  # id -> (firing labels, expected)
    not_active: dict[str, str]  # id -> its state, when not "active" (suppressed, ...)

    @property
    def ok(self) -> bool:
        return not (
            self.missing or self.extra or self.doubled or self.labels_differ or self.not_active
        )

    def summary(self) -> dict[str, int]:
        return {
            "alerts firing": self.firing,
            "active violations with no alert": len(self.missing),
            "alerts firing for no active violation": len(self.extra),
            "ids with more than one alert": len(self.doubled),
            "alerts whose labels differ": len(self.labels_differ),
            "alerts not in state active": len(self.not_active),
        }


def check_pages(alerts: list[dict], expected: dict[str, dict[str, str]]) -> PageCheck:
    by_id: dict[str, list[dict]] = {}
    for a in alerts:
        by_id.setdefault(a["labels"].get("violation_id", ""), []).append(a)
    doubled = {vid: [a["labels"] for a in found] for vid, found in by_id.items() if len(found) > 1}
    differ = {}
    for vid in by_id.keys() & expected.keys():
        labels = by_id[vid][0]["labels"]
        if len(by_id[vid]) == 1 and labels != expected[vid]:
            differ[vid] = (labels, expected[vid])
    return PageCheck(
        firing=len(alerts),
        ids=set(by_id),
        missing=sorted(expected.keys() - by_id.keys()),
        extra=sorted(by_id.keys() - expected.keys()),
        doubled=doubled,
        labels_differ=differ,
        not_active={
            a["labels"].get("violation_id", ""): a["status"]["state"]
            for a in alerts
            if a["status"]["state"] != "active"
        },
    )


def wait_paged(
    am: Alertmanager, expected: dict[str, dict[str, str]], since: float, timeout: float
) -> tuple[PageCheck, PageCheck, float]:
    """Until the firing set is right, and at least a lease (and a margin) after ``since``:
    by then every alert that no live worker re-sends has lapsed (a killed worker's, a
    resolution lost with it), so what fires is what the workers keep firing. Gives up
    ``timeout`` seconds after ``since``; returns the first check, the last, and when the
    last was made (seconds after ``since``)."""
    earliest = since + LEASE + 2.0
    first = None
    while True:
        now = time.monotonic()
        check = check_pages(firing(am), expected)
        first = first or check
        if (check.ok and now >= earliest) or now >= since + timeout:
            return first, check, now - since
        time.sleep(0.5)


def paged(
    am: Alertmanager, violations: dict[str, dict], metrics_ports: dict[str, int] | None = None
) -> tuple[PageCheck, dict[str, Any]]:
    """Once the groups have drained, with the workers still running: the settled firing set
    against ``violations`` (the replay's active ones), and the figures for the report."""
    first, check, settled = wait_paged(am, page_labels(violations), time.monotonic(), 4 * LEASE)
    report = {
        **{f"at the drain, {k}": v for k, v in first.summary().items()},
        **check.summary(),
        "alerts settled after the drain (s)": round(settled, 1),
        **received(am),
    }
    for name, port in (metrics_ports or {}).items():
        for key, value in pager_metrics(port).items():
            report[f"worker {name} (last process): {key}"] = value
    return check, report


def assert_paged(check: PageCheck, stored_active: dict, replay_active: dict) -> None:
    """Every active violation fires, once, as itself; nothing else fires."""
    assert check.missing == [], check.missing[:5]
    assert check.extra == [], check.extra[:5]
    assert check.doubled == {}, list(check.doubled.items())[:3]
    assert check.labels_differ == {}, list(check.labels_differ.items())[:3]
    assert check.not_active == {}, list(check.not_active.items())[:3]
    assert check.ids == set(stored_active) == set(replay_active)
    assert check.firing == len(check.ids)

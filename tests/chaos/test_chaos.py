"""Chaos: workers killed, the broker restarted and the store down, while a stream with a
known answer arrives; ClickHouse ends with exactly the replay's answer.

Two workers (``a`` with a stable ``instance``, Kafka static membership; ``b`` without),
one sink, all real processes on a broker of the test's own (tests/chaos/conftest.py). The
stream is sent in chunks; after chunks chosen by a seeded RNG (printed;
PROMISE_TRACKER_CHAOS_SEED repeats a run) the test kill -9s a worker and restarts it, restarts
the broker (kafka.sh stop/start, same data) while the next chunk is being sent, makes the
store refuse writes for a few seconds (the fault file), and kill -9s the sink.

Lost: a violation active in the replay's final state that ClickHouse does not hold, or holds
with any field different; a promise whose outcome is missing or different.
Duplicated: a violation active in ClickHouse that the replay does not hold active; an
outcome for a promise the replay does not know; any table with more than one row per id
after OPTIMIZE ... FINAL (a re-delivered row that did not replace its first copy); an
emission (violation id, event id) stored twice after merging.
Re-deliveries absorbed: violation records on the topic beyond the distinct emissions
(re-announcements after restores, re-sends), and rows counted before FINAL minus rows read
with FINAL (a lower bound: chdb's background merges fold some copies before the count).
Per-id emissions against the replay's: see tests/chaos/test_rebalance.py.

Paged: both workers page an Alertmanager of the test's own (re-sends every 2 s, so a killed
worker's leases lapse within 8 s). Once the groups have drained and a lease has passed, the
alerts firing there (silenced, inhibited and unprocessed ones included) are exactly the
active violations: one alert per violation id (none firing twice, e.g. under a reason an
earlier verdict had), none for an id that is not active, and each with the violation's
service, channel, kind, reason and severity. Skipped, and said so, when Alertmanager is not
installed.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from promise_tracker.runtime.settings import Settings
from promise_tracker.runtime.topics import ensure_topics
from tests.alertmanager import Alertmanager
from tests.answers import replay_answer
from tests.chaos.harness import (
    ALERT_RESEND,
    ChaosBroker,
    Mark,
    PageCheck,
    Progress,
    assert_paged,
    check_emissions,
    judge,
    paged,
    pipeline_settings,
    read_topic,
    stored,
    wait_drained,
    worker,
    write_differences,
)
from tests.live import WorkerProcess, wait_for
from tests.streams import make_stream, send

EVENTS = int(os.environ.get("PROMISE_TRACKER_CHAOS_EVENTS") or 50_000)
CHUNKS = 20
KILLS = 6  # half of them on the static member


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chaos_seed() -> int:
    return int(os.environ.get("PROMISE_TRACKER_CHAOS_SEED") or random.randrange(1_000_000))


def plan(rng: random.Random) -> dict[int, list[str]]:
    """Chunk number -> what happens after it. Kills after odd chunks (two apart, so that one
    recovery is measured at a time), the rest after even ones; none after the last chunk."""
    victims = ["a", "b"] * (KILLS // 2)
    rng.shuffle(victims)
    slots = sorted(rng.sample(range(1, CHUNKS - 1, 2), KILLS))
    actions: dict[int, list[str]] = {n: [f"kill {v}"] for n, v in zip(slots, victims, strict=True)}
    others = rng.sample(range(2, CHUNKS - 2, 2), 3)  # apart: each is felt on its own
    for slot, action in zip(others, ("broker", "store", "sink"), strict=True):
        actions.setdefault(slot, []).append(action)
    return actions


class Chaos:
    """The pipeline's processes and what the test does to them, counted."""

    def __init__(self, broker: ChaosBroker, settings: Settings, tmp: Path, rng: random.Random):
        self.broker, self.rng = broker, rng
        paging = bool(settings.alertmanager_url)
        self.metrics_ports = {name: free_port() if paging else 0 for name in ("a", "b")}
        self.workers = {
            name: worker(settings, tmp, name, name == "a", self.metrics_ports[name]).start()
            for name in ("a", "b")
        }
        self.sink = WorkerProcess(settings, tmp / "sink.log", command="sink").start()
        self.switch = Path(settings.store_fault_file)
        self.kills: Counter = Counter()
        self.sink_kills = self.store_outages = 0
        self.broker_down: list[float] = []
        self.recoveries: dict[str, list[Mark]] = {"static": [], "dynamic": [], "broker": []}
        self.threads: list[threading.Thread] = []

    def act(self, action: str, progress: Progress) -> Mark | None:
        """Do it; returns a recovery to measure once the next chunk is sent."""
        if action.startswith("kill"):
            return self.kill(action.split()[1], progress)
        if action == "broker":  # down while the next chunk is being sent
            mark = progress.mark(action, time.monotonic())
            self.recoveries["broker"].append(mark)
            self._background(lambda: self.broker_down.append(self.broker.restart()))
            return mark
        if action == "store":
            self.store_outages += 1
            self.switch.touch()
            seconds = self.rng.uniform(3.0, 8.0)
            self._background(lambda: self._store_back_after(seconds))
        elif action == "sink":
            self.sink.kill()
            self.sink_kills += 1
            time.sleep(self.rng.uniform(0.0, 1.0))
            self.sink.start()
        return None

    def kill(self, name: str, progress: Progress) -> Mark:
        """kill -9 and restart. One recovery at a time: a dynamic member killed moments
        before stays in the group until its session expires and holds up every rebalance
        until then, so two kills close together would measure that."""
        kills = self.recoveries["static"] + self.recoveries["dynamic"]
        wait_for(lambda: all(m.seconds is not None for m in kills), 60)
        mark = progress.mark(f"kill {name}", time.monotonic())
        self.workers[name].kill()
        self.kills[name] += 1
        time.sleep(self.rng.uniform(0.0, 1.0))
        self.workers[name].start()
        self.recoveries["static" if name == "a" else "dynamic"].append(mark)
        return mark

    def _store_back_after(self, seconds: float) -> None:
        """The store stays down ``seconds`` from when the sink first finds it down (it finds
        out when it writes, and nothing may come while the workers wait out a rebalance)."""
        log = self.sink.log
        before = log.read_text().count("store unavailable")
        wait_for(lambda: log.read_text().count("store unavailable") > before, 60)
        time.sleep(seconds)
        self.switch.unlink()

    def _background(self, work: Callable[[], object]) -> None:
        thread = threading.Thread(target=work)
        thread.start()
        self.threads.append(thread)

    def settle(self) -> None:
        for thread in self.threads:
            thread.join(120)

    def stop(self) -> None:
        for process in [*self.workers.values(), self.sink]:
            process.stop()
        self.switch.unlink(missing_ok=True)


def rounded(marks: list[Mark]) -> list[float | None]:
    return [None if m.seconds is None else round(m.seconds, 2) for m in marks]


def test_chaos_loses_nothing_and_doubles_nothing(
    chaos_broker: ChaosBroker, chaos_alertmanager: Alertmanager | None, tmp_path: Path
):
    started = time.monotonic()
    seed = chaos_seed()
    print(f"\nchaos seed {seed} (PROMISE_TRACKER_CHAOS_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    alertmanager = chaos_alertmanager
    paging = {}
    if alertmanager is not None:
        paging = {"alertmanager_url": alertmanager.url, "alert_resend": ALERT_RESEND}
    else:
        print("Alertmanager is not installed: the pages are not checked")
    settings = pipeline_settings(chaos_broker.address, tmp_path, **paging)
    ensure_topics(settings)
    stream = make_stream(tmp_path, events=EVENTS, seed=seed)
    expected = replay_answer(stream, tmp_path)
    lines = len(stream.read_bytes().splitlines())
    actions = plan(rng)
    print(f"plan: {dict(sorted(actions.items()))}")
    chaos = Chaos(chaos_broker, settings, tmp_path, rng)
    pages: PageCheck | None = None
    paging_report = {}
    try:
        with Progress(settings) as progress:
            awaiting: list[Mark] = []  # recoveries measured to the end of the next chunk
            for n in range(CHUNKS):
                send(stream, settings, slice(lines * n // CHUNKS, lines * (n + 1) // CHUNKS))
                for mark in awaiting:
                    progress.set_highs(mark)
                awaiting.clear()
                time.sleep(rng.uniform(0.0, 0.8))
                for action in actions.get(n, []):
                    if (mark := chaos.act(action, progress)) is not None:
                        awaiting.append(mark)
            chaos.settle()
            sent_at = time.monotonic()
            drain = wait_drained(settings, timeout=180)
        for name, process in chaos.workers.items():
            assert process.alive(), process.tail()
            assert process.starts == chaos.kills[name] + 1  # no start but the test's
        assert chaos.sink.alive(), chaos.sink.tail()
        if alertmanager is not None:  # while the workers keep re-sending what they hold
            pages, paging_report = paged(alertmanager, expected.violations, chaos.metrics_ports)
        messages = read_topic(settings.kafka, settings.violations)
    finally:
        chaos.stop()
    got = stored(settings)
    verdict = judge(got, expected)
    replay_file = tmp_path / "replay-v.jsonl"
    emissions = check_emissions(messages, replay_file, got.event_pairs)
    write_differences(tmp_path / "differences.json", messages, replay_file)
    noticed = chaos.sink.log.read_text().count("store unavailable")  # paused, or at start
    report = {
        "seed": seed,
        "events sent": lines,
        "worker kills survived": dict(chaos.kills),
        "sink kills survived": chaos.sink_kills,
        "broker restarts": chaos_broker.restarts,
        "broker down (s)": [round(s, 2) for s in chaos.broker_down],
        "store outages": chaos.store_outages,
        "store refusals the sink logged": noticed,
        "lost": len(verdict.lost),
        "duplicated": len(verdict.duplicated),
        **verdict.figures,
        **emissions.summary(),
        **paging_report,
        "recovery after kill, static member (s)": rounded(chaos.recoveries["static"]),
        "recovery after kill, dynamic member (s)": rounded(chaos.recoveries["dynamic"]),
        "recovery after broker restart (s)": rounded(chaos.recoveries["broker"]),
        "drain after the last chunk (s)": round(drain, 1),
        "sending and chaos (s)": round(sent_at - started, 1),
        "test total (s)": round(time.monotonic() - started, 1),
    }
    print("chaos report:")
    for key, value in report.items():
        print(f"  {key}: {value}")
    assert verdict.lost == [], verdict.lost[:5]
    assert verdict.duplicated == [], verdict.duplicated[:5]
    assert emissions.stored_missing == emissions.stored_extra == 0
    assert emissions.final_differs == [], emissions.final_differs[:3]
    assert emissions.refired == {}, list(emissions.refired.items())[:3]
    assert sum(chaos.kills.values()) == KILLS and chaos_broker.restarts == 1
    assert chaos.store_outages == 1 and noticed >= 1
    assert all(m.seconds is not None for marks in chaos.recoveries.values() for m in marks)
    if pages is not None:  # the pager: every active violation fires, once, as itself
        assert_paged(pages, got.answer.violations, expected.violations)

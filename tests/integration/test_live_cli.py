"""The README's Live section and the commands around it, as a user runs them (issue 12):
the section's commands run exactly as written and the story's violations reach their
topic; ``emit``, ``topics``, ``worker`` and ``sink`` with the broker down say one line and
stop within seconds; ``emit`` warns about events older than the retention; ``kafka.sh stop``
finds the broker started with another port; the jars are fetched without terminal codes.

Every subprocess and every wait has a timeout: a failing test fails, it does not hang.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from promise_tracker.demo import free_port_pair
from promise_tracker.runtime.settings import PREFIX
from promise_tracker.runtime.topics import ensure_topics
from promise_tracker.streams.records import final_active, read_jsonl
from promise_tracker.streams.replay import replay
from tests.live import TopicReader, fresh_settings, last_by_key
from tests.support import ROOT

PRESTIGE = ROOT / "examples" / "prestige-portraits.jsonl"
CLOSED = "127.0.0.1:1"  # nothing listens there: connections are refused at once


# --- helpers -------------------------------------------------------------------------------


def serving(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: no PROMISE_TRACKER_* or KAFKA_* settings, and no
    virtualenv on the PATH (the README's commands must activate it themselves)."""
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if not p.endswith(".venv/bin")
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((PREFIX, "KAFKA_")) and k != "VIRTUAL_ENV"
    }
    return {**env, "PATH": path, **extra}


def cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "promise_tracker.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def live_section_commands() -> list[str]:
    """The lines of the first code block (indented four spaces) of the README's Live section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Live: Kafka, the worker and the SDK\n", 1)[1].split("\n## ", 1)[0]
    block: list[str] = []
    for line in section.splitlines():
        if line.startswith("    "):
            block.append(line[4:])
        elif block:
            break
    assert block, "no indented code block in the README's Live section"
    return block


class Shell:
    """One bash reading commands from a pipe, as a terminal would type them: each command
    is followed by an echo of its exit status, which ``run`` waits for (with a timeout)."""

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen(
            ["bash"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its jobs (the worker, the broker) in its group
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.commands = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def run(self, command: str, timeout: float) -> tuple[int, list[str]]:
        """The command's exit status and its output (the background jobs' output too)."""
        assert self.process.stdin is not None
        self.commands += 1
        marker = f"@@done-{self.commands}@@"
        self.transcript.append(f"$ {command}")
        self.process.stdin.write(f"{command}\necho {marker} $?\n")
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"`{command}` did not finish in {timeout:g} s:\n" + "\n".join(self.transcript)
                ) from None
            if line is None:
                raise AssertionError("bash ended:\n" + "\n".join(self.transcript))
            if line.startswith(marker):
                return int(line.split()[-1]), output
            output.append(line)
            self.transcript.append(line)

    def close(self) -> None:
        """Ends bash and anything still running in its process group (worker, broker)."""
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)


def story_violations(tmp_path: Path) -> set[tuple[str, str]]:
    """(promise id, reason) of the violations a replay of the story leaves active."""
    out = {name: tmp_path / f"replay.{name}.jsonl" for name in ("v", "o", "r")}
    replay([PRESTIGE], out["v"], out["o"], out["r"], progress=False)
    return {(v["promise_id"], v["reason"]) for v in final_active(read_jsonl(out["v"])).values()}


# --- the README's Live section -------------------------------------------------------------


def test_the_readme_live_commands_run_as_written_and_give_the_story_violations(tmp_path):
    """Regression (issue 12): `promise-tracker topics` was "command not found" (nothing
    activated .venv), and the emitted story went to the DLQ as too_late (dated 2013)."""
    expected = story_violations(tmp_path)
    assert len(expected) == 3  # enforced_early, goal_not_reached, wait_exceeded
    commands = live_section_commands()
    assert any(" emit " in c for c in commands) and any("worker &" in c for c in commands)
    port = free_port_pair(29192)
    env = clean_env(
        KAFKA_PORT=str(port),
        KAFKA_DATA=str(tmp_path / "kafka"),
        PROMISE_TRACKER_KAFKA=f"127.0.0.1:{port}",
        PROMISE_TRACKER_METRICS_PORT="0",  # a worker of another test may hold 9464
    )
    shell = Shell(env)
    try:
        for command in commands:
            timeout = 600 if "kafka.sh start" in command else 120  # start may fetch the jars
            status, output = shell.run(command, timeout)
            assert status == 0, f"`{command}` exited {status}:\n" + "\n".join(shell.transcript)
            if " emit " in command:
                assert not [x for x in output if "older than" in x or "Traceback" in x], output
                assert "13 events sent, 0 invalid (not sent)" in output, output
                found = read_violations(f"127.0.0.1:{port}", expected)
                assert found == expected, "\n".join(shell.transcript)
                assert dead_letters(f"127.0.0.1:{port}") == 0  # nothing too_late
        assert not serving(port), "kafka.sh stop left the broker running"
    finally:
        shell.close()
        subprocess.run(
            [ROOT / "deploy" / "kafka" / "kafka.sh", "stop"], env=env, timeout=60, check=False
        )


def read_violations(kafka: str, expected: set, timeout: float = 90) -> set[tuple[str, str]]:
    """The active violations on promises.violations, once ``expected`` are all there (or
    what there is after ``timeout`` seconds)."""
    reader = TopicReader(kafka, "promises.violations")
    try:
        deadline = time.monotonic() + timeout
        while True:
            reader.poll(1.0)
            last = last_by_key(reader.messages)
            found = {
                (v["promise_id"], v["reason"]) for v in last.values() if v["state"] == "active"
            }
            if found >= expected or time.monotonic() > deadline:
                return found
    finally:
        reader.close()


def dead_letters(kafka: str) -> int:
    reader = TopicReader(kafka, "promises.dlq")
    try:
        reader.poll(2.0)
        return len(reader.messages)
    finally:
        reader.close()


# --- the broker down -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["topics"], ["worker"], ["sink"], ["emit", str(PRESTIGE)]], ids=lambda a: a[0]
)
def test_with_the_broker_down_a_command_says_one_line_and_stops(args, tmp_path):
    """Regression (issue 12): `emit` ended after 30 s and ~340 librdkafka lines with "1
    event(s) were not written to Kafka: None: ..."; `topics` and `worker` with a traceback."""
    env = clean_env(
        PROMISE_TRACKER_KAFKA=CLOSED,
        PROMISE_TRACKER_METRICS_PORT="0",
        PROMISE_TRACKER_SINK_METRICS_PORT="0",
        PROMISE_TRACKER_CHDB_PATH=str(tmp_path / "chdb"),
    )
    started = time.monotonic()
    done = cli(args, env, timeout=60)
    took = time.monotonic() - started
    lines = done.stderr.splitlines()
    assert done.returncode != 0
    assert len(lines) == 1, done.stderr
    assert lines[0] == (
        f"promise-tracker {args[0]}: cannot reach Kafka at {CLOSED} (Connection refused): "
        "start it (deploy/kafka/kafka.sh start) or set PROMISE_TRACKER_KAFKA"
    )
    assert done.stdout == ""
    assert took < 10, f"took {took:.1f} s"


# --- emit's warnings -----------------------------------------------------------------------


def test_emit_says_what_the_worker_will_reject_and_what_to_do(kafka):
    settings = fresh_settings(kafka)
    env = settings.environment(clean_env())
    missing = cli(["emit", str(PRESTIGE)], env)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        f"promise-tracker emit: Kafka at {kafka} has no topic {settings.issued}, "
        f"{settings.observed}, {settings.capabilities}: create the topics with "
        "`promise-tracker topics` (a worker creates them too), or check "
        "PROMISE_TRACKER_TOPIC_PREFIX"
    ]
    ensure_topics(settings)

    dated = cli(["emit", str(PRESTIGE)], env)
    assert dated.returncode == 0, dated.stderr
    assert dated.stderr.splitlines() == [
        # the shop's declaration is the 13th: never too late
        "promise-tracker emit: 12 of 13 events are older than the worker's retention (7d) "
        "and will be rejected as too_late: use --retime to move them to now",
        "13 events sent, 0 invalid (not sent)",
    ]

    # moved to now, the cards sent four weeks before the story ends are still too old
    retimed = cli(["emit", "--retime", str(PRESTIGE)], env)
    assert retimed.returncode == 0, retimed.stderr
    moved, warning, sent = retimed.stderr.splitlines()
    assert re.fullmatch(
        r"promise-tracker emit: --retime moves every time by \d+ days, [\d:]+ so that the "
        r"last event is now \(\S+Z\)",
        moved,
    )
    assert warning == (
        "promise-tracker emit: 2 of 13 events are older than the worker's retention (7d) and "
        "will be rejected as too_late: the file spans 29.0 days, more than the retention: run "
        "the worker with PROMISE_TRACKER_RETENTION=30d or more"
    )
    assert sent == "13 events sent, 0 invalid (not sent)"

    longer = cli(["emit", "--retime", str(PRESTIGE)], {**env, "PROMISE_TRACKER_RETENTION": "30d"})
    assert longer.returncode == 0, longer.stderr
    assert [x for x in longer.stderr.splitlines() if "older than" in x] == []


# --- kafka.sh ------------------------------------------------------------------------------


@pytest.fixture
def scripts(tmp_path: Path) -> Iterator[Path]:
    """A copy of deploy/ (kafka.sh, its pom and daemon.sh, with their times, so the jar
    cache stays valid) in an empty directory: its .data is the test's own, and a broker a
    user started in this repository is never found, let alone stopped."""
    copy = tmp_path / "repo"
    (copy / "deploy" / "kafka").mkdir(parents=True)
    shutil.copy2(ROOT / "deploy" / "daemon.sh", copy / "deploy" / "daemon.sh")
    for path in (ROOT / "deploy" / "kafka").iterdir():
        shutil.copy2(path, copy / "deploy" / "kafka" / path.name)
    yield copy


def kafka_sh(repo: Path, action: str, timeout: float = 120, **env: str):
    return subprocess.run(
        [repo / "deploy" / "kafka" / "kafka.sh", action],
        env=clean_env(**env),
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_kafka_sh_stop_without_the_port_stops_the_broker_started_with_another(scripts):
    """Regression (issue 12): `kafka.sh stop` without the KAFKA_PORT used at start was
    silent, exit 0, and the broker kept running."""
    port = free_port_pair(29292)
    started = kafka_sh(scripts, "start", timeout=600, KAFKA_PORT=str(port))
    try:
        assert started.returncode == 0, started.stderr
        assert serving(port)
        stopped = kafka_sh(scripts, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stderr.splitlines() == [
            f"kafka.sh: none on 127.0.0.1:9092; stopping the one started with KAFKA_PORT={port}",
            "kafka.sh: stopped",
        ]
        assert not serving(port)
        assert not (scripts / ".data" / f"kafka-{port}" / "kafka.pid").exists()
        again = kafka_sh(scripts, "stop")
        assert again.returncode == 0
        assert again.stderr.startswith("kafka.sh: nothing to stop: none on 127.0.0.1:9092")
    finally:
        kafka_sh(scripts, "stop", KAFKA_PORT=str(port))


def test_kafka_sh_stop_without_the_port_lists_several_and_stops_none(scripts):
    """Two processes behind pid files of .data/kafka-PORT (stand-ins for brokers: the
    script knows a process by its data directory in its command line)."""
    stand_ins = []
    try:
        for port in (39001, 39003):
            data = scripts / ".data" / f"kafka-{port}"
            data.mkdir(parents=True)
            process = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(120)", f"{data}/server.properties"],
                start_new_session=True,
            )
            stand_ins.append(process)
            # reaped as soon as it ends: kafka.sh waits while `kill -0` finds a zombie
            threading.Thread(target=process.wait, daemon=True).start()
            (data / "kafka.pid").write_text(f"{process.pid}\n")
        stale = scripts / ".data" / "kafka-39005"  # a pid file left by a dead broker
        stale.mkdir()
        (stale / "kafka.pid").write_text(f"{os.getpid()}\n")  # alive, but not a broker

        several = kafka_sh(scripts, "stop")
        assert several.returncode == 1
        assert several.stderr.splitlines() == [
            "kafka.sh: none on 127.0.0.1:9092, but 2 started with another KAFKA_PORT; "
            "stop each with:",
            f"kafka.sh:   KAFKA_PORT=39001 {scripts}/deploy/kafka/kafka.sh stop",
            f"kafka.sh:   KAFKA_PORT=39003 {scripts}/deploy/kafka/kafka.sh stop",
        ]
        assert all(p.poll() is None for p in stand_ins)

        one = kafka_sh(scripts, "stop", KAFKA_PORT="39001")
        assert one.returncode == 0, one.stderr
        assert stand_ins[0].wait(10) is not None
        last = kafka_sh(scripts, "stop")
        assert last.returncode == 0, last.stderr
        assert "stopping the one started with KAFKA_PORT=39003" in last.stderr
        assert stand_ins[1].wait(10) is not None
    finally:
        for process in stand_ins:
            if process.poll() is None:
                process.kill()
            process.wait(10)


def test_fetching_the_jars_writes_no_terminal_codes(tmp_path):
    """Regression (issue 12): Debian's Maven 3.8 wrote ESC[0m to stdout and stderr, even
    with -B and -Dstyle.color=never."""
    done = subprocess.run(
        [ROOT / "deploy" / "kafka" / "kafka.sh", "fetch"],
        env=clean_env(KAFKA_CACHE=str(tmp_path / "cache")),
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert b"\x1b" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert list((tmp_path / "cache").glob("kafka-*/libs/kafka_2.13-*.jar"))

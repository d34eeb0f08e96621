"""Security on a real broker with SASL/PLAIN (deploy/kafka/kafka.sh with KAFKA_SASL_PORT): a
worker and a sink that log in (the password from a _FILE) carry events end to end; a wrong
password stops a worker at once with one clear line; and no log or error of a run shows a
secret (Kafka password, ClickHouse password, subject key)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from promise_tracker.emit import Emitter
from promise_tracker.runtime.settings import PREFIX, Settings
from promise_tracker.sinks.store import ChdbStore
from tests.live import KAFKA_SH, TopicReader, WorkerProcess, fresh_settings, ready, wait_for
from tests.support import ROOT

KAFKA_PASSWORD = "pr0mise-Kafka-s3cret"
ADMIN_PASSWORD = "adm1n-Kafka-s3cret"
CLICKHOUSE_PASSWORD = "ch-s3cret-Pa55"
URL_PASSWORD = "url-s3cret-Pa55"
SUBJECT_KEY = "subj3ct-Key-s3cret"
WRONG_PASSWORD = "wr0ng-Kafka-s3cret"
SECRETS = (KAFKA_PASSWORD, ADMIN_PASSWORD, CLICKHOUSE_PASSWORD, URL_PASSWORD, SUBJECT_KEY)


@dataclass
class SaslBroker:
    plain: str  # the PLAINTEXT listener: the test's own admin and readers
    sasl: str  # the SASL_PLAINTEXT listener: what the worker and the sink use


def _free_ports() -> tuple[int, int]:
    """A port whose successor is free (the controller's), and a third for SASL."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b, socket.socket() as c:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
                c.bind(("127.0.0.1", port + 2))
        except OSError:
            continue
        return port, port + 2
    raise RuntimeError("no free ports for the SASL broker")


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    """A broker of this module's own (the session broker has no SASL listener)."""
    port, sasl_port = _free_ports()
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_DATA": str(tmp_path_factory.mktemp("sasl-kafka")),
        "KAFKA_SASL_PORT": str(sasl_port),
        "KAFKA_SASL_USERS": f"admin:{ADMIN_PASSWORD} promise:{KAFKA_PASSWORD}",
    }
    subprocess.run([KAFKA_SH, "start"], env=env, check=True, timeout=600)
    try:
        ready(f"127.0.0.1:{port}")
        yield SaslBroker(f"127.0.0.1:{port}", f"127.0.0.1:{sasl_port}")
    finally:
        subprocess.run([KAFKA_SH, "stop"], env=env, check=True, timeout=120)


class SecretProcess(WorkerProcess):
    """A worker or sink whose secrets come from files, as Docker and Kubernetes give them."""

    def __init__(self, settings: Settings, log: Path, command: str, files: dict[str, Path]):
        super().__init__(settings, log, command)
        self.files = files  # setting name -> the file holding it

    def start(self) -> SecretProcess:
        env = self.settings.environment()
        for name, path in self.files.items():
            del env[PREFIX + name.upper()]
            env[f"{PREFIX}{name.upper()}_FILE"] = str(path)
        self.starts += 1
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "promise_tracker.cli", self.command],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self


def _secret_file(directory: Path, name: str, value: str) -> Path:
    path = directory / name
    path.write_text(value + "\n")  # as `echo` writes it: the newline is not the secret
    path.chmod(0o600)
    return path


def _sasl_settings(broker: SaslBroker, tmp_path: Path, password: str) -> Settings:
    return fresh_settings(
        broker.sasl,
        partitions=2,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="promise",
        kafka_sasl_password=password,
        chdb_path=str(tmp_path / "chdb"),
        subject_key=SUBJECT_KEY,
        log_level="debug",
        sink_flush_interval=0.2,
    )


def _assert_no_secret(text: str, where: str) -> None:
    for secret in (*SECRETS, WRONG_PASSWORD):
        assert secret not in text, f"{where} shows a secret"


def test_a_worker_and_a_sink_log_in_with_sasl_and_carry_events_end_to_end(sasl_broker, tmp_path):
    settings = _sasl_settings(sasl_broker, tmp_path, KAFKA_PASSWORD)
    files = {
        "kafka_sasl_password": _secret_file(tmp_path, "kafka-password", KAFKA_PASSWORD),
        "subject_key": _secret_file(tmp_path, "subject-key", SUBJECT_KEY),
    }
    worker = SecretProcess(settings, tmp_path / "worker.log", "worker", files).start()
    sink = SecretProcess(settings, tmp_path / "sink.log", "sink", files).start()
    now = dt.datetime.now(dt.UTC)
    try:
        with Emitter(settings) as emitter:  # the SDK logs in the same way
            for n in range(5):
                pid = f"sasl-{n}"
                emitter.issue_promise(
                    id=pid,
                    source="test/sasl",
                    kind="deadline",
                    channel="web",
                    terms={"open_until": now + dt.timedelta(hours=1)},
                    subject=f"customer/{n % 3}",
                    time=now,
                )
                emitter.observe_delivery(
                    promise_id=pid, source="test/sasl", kind="access_denied", time=now
                )
        violations = TopicReader(sasl_broker.plain, settings.violations)
        try:
            assert wait_for(
                lambda: violations.poll(0.2) >= 0 and len(violations.messages) >= 5, 60
            ), worker.tail()
        finally:
            violations.close()
        time.sleep(2)  # the sink's flush interval, and then some
        assert worker.alive() and sink.alive(), worker.tail() + sink.tail()
    finally:
        assert worker.stop() == 0, worker.tail()
        assert sink.stop() == 0, sink.tail()
    store = ChdbStore(settings.chdb_path, settings.database).connect()
    try:
        rows = store.rows("SELECT subject FROM {db}.violations FINAL WHERE state = 'active'")
        customers = store.rows("SELECT uniqExact(subject) AS n FROM {db}.violations FINAL")
        raw = store.rows(
            "SELECT count() AS n FROM {db}.promises WHERE position(subject, 'customer/') > 0"
        )
    finally:
        store.close()
    assert len(rows) == 5 and all(row["subject"].startswith("hmac:") for row in rows)
    assert int(customers[0]["n"]) == 3 and int(raw[0]["n"]) == 0
    for process in (worker, sink):
        _assert_no_secret(process.log.read_text(), process.log.name)


def test_a_wrong_password_stops_the_worker_with_one_clear_line(sasl_broker, tmp_path):
    settings = _sasl_settings(sasl_broker, tmp_path, WRONG_PASSWORD)
    for command in ("worker", "sink"):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "promise_tracker.cli", command],
            env=settings.environment(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - started
        assert done.returncode == 2, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"promise-tracker {command}: Kafka at {sasl_broker.sasl}")
        assert "Invalid username or password" in last and "KAFKA_SASL_PASSWORD" in last
        assert "Traceback" not in done.stderr
        assert took < 20  # at once, not after the metadata timeout
        _assert_no_secret(done.stdout + done.stderr, f"{command} with a wrong password")


def test_a_bad_setting_and_an_unreachable_clickhouse_do_not_show_secrets(kafka, tmp_path):
    """The CLI's one line for a bad setting, and a sink retrying a ClickHouse server that is
    not there (no server runs here: the failure path is what can be checked)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    bad = {
        **env,
        "PROMISE_TRACKER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "PROMISE_TRACKER_KAFKA_SASL_MECHANISM": "KERBEROS",
        "PROMISE_TRACKER_KAFKA_SASL_USERNAME": "promise",
        "PROMISE_TRACKER_KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
        "PROMISE_TRACKER_CLICKHOUSE_PASSWORD": CLICKHOUSE_PASSWORD,
        "PROMISE_TRACKER_SUBJECT_KEY": SUBJECT_KEY,
    }
    for command in ("worker", "sink", "migrate", "topics"):
        done = subprocess.run(
            [sys.executable, "-m", "promise_tracker.cli", command],
            env=bad,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "PROMISE_TRACKER_KAFKA_SASL_MECHANISM='KERBEROS'" in done.stderr
        _assert_no_secret(done.stdout + done.stderr, f"{command} with a bad setting")
    # a sink whose ClickHouse server cannot be reached retries, and says so without secrets
    settings = replace(
        fresh_settings(kafka),
        clickhouse_url=f"http://writer:{URL_PASSWORD}@127.0.0.1:1/?connect_timeout=1",
        clickhouse_password=CLICKHOUSE_PASSWORD,
        subject_key=SUBJECT_KEY,
        log_level="debug",
        sink_max_backoff=0.5,
    )
    sink = WorkerProcess(settings, tmp_path / "sink.log", command="sink").start()
    try:
        assert wait_for(lambda: "store unavailable at start" in sink.log.read_text(), 30)
        assert sink.alive(), sink.tail()
    finally:
        assert sink.stop() == 0, sink.tail()
    _assert_no_secret(sink.log.read_text(), "a sink retrying an unreachable server")
    done = subprocess.run(
        [sys.executable, "-m", "promise_tracker.cli", "migrate"],
        env=settings.environment(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "127.0.0.1:1" in done.stderr, done.stderr
    _assert_no_secret(done.stdout + done.stderr, "migrate against an unreachable server")

"""Security basics without a broker: Kafka credentials reach every client's config, secrets
come from files, wrong combinations are one clear line, secrets stay out of repr(), and
subjects are stored as keyed pseudonyms (rows, a chdb sink, ``replay --clickhouse``)."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from promise_tracker.runtime.kafka import KAFKA_LOG, kafka_config, producer_config
from promise_tracker.runtime.settings import PREFIX, Settings, SettingsError, secret_from_env
from promise_tracker.sinks import readback as queries
from promise_tracker.sinks.batcher import ClickHouseSink
from promise_tracker.sinks.rows import PSEUDONYM, promise_row, pseudonym, violation_rows
from promise_tracker.sinks.store import ChdbStore
from promise_tracker.synthetic import generate
from tests.records import outcome, violation
from tests.support import ROOT

SASL = {
    "PROMISE_TRACKER_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "PROMISE_TRACKER_KAFKA_SASL_MECHANISM": "scram-sha-512",
    "PROMISE_TRACKER_KAFKA_SASL_USERNAME": "promise",
    "PROMISE_TRACKER_KAFKA_SASL_PASSWORD": " s3cret pass ",
}


def test_sasl_and_tls_settings_reach_every_client_config(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings.from_env({**SASL, "PROMISE_TRACKER_KAFKA_SSL_CA_LOCATION": str(ca)})
    expected = {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "promise",
        "sasl.password": " s3cret pass ",  # a password is kept as it is, spaces and all
        "ssl.ca.location": str(ca),
        "logger": KAFKA_LOG,  # librdkafka's lines through Python logging
    }
    assert kafka_config(settings) == expected
    assert expected.items() <= producer_config(settings).items()  # the SDK's and the worker's
    assert kafka_config(Settings()) == {"bootstrap.servers": "127.0.0.1:9092", "logger": KAFKA_LOG}


def test_no_client_is_configured_without_kafka_config():
    """Every Consumer/Producer/AdminClient of the product takes kafka_config (directly or
    through producer_config), so that the security settings reach it."""
    offenders = []
    for package in ("streams", "sinks", "promise_tracker", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            if (
                '"bootstrap.servers":' in text
                and "promise_tracker/runtime/kafka.py" not in path.as_posix()
            ):
                offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []


def test_secrets_come_from_files_with_one_trailing_newline_dropped(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    key = tmp_path / "key"
    key.write_bytes(b"k3y\r\n")
    env = {
        **SASL,
        "PROMISE_TRACKER_KAFKA_SASL_PASSWORD": "",
        "PROMISE_TRACKER_KAFKA_SASL_PASSWORD_FILE": str(secret),
        "PROMISE_TRACKER_CLICKHOUSE_PASSWORD_FILE": str(secret),
        "PROMISE_TRACKER_SUBJECT_KEY_FILE": str(key),
    }
    settings = Settings.from_env(env)
    assert settings.kafka_sasl_password == "from-a-file"
    assert settings.clickhouse_password == "from-a-file"
    assert settings.subject_key == "k3y"
    assert secret_from_env("subject_key", env) == "k3y"
    secret.write_text("two newlines\n\n")  # only one is the editor's
    assert Settings.from_env(env).kafka_sasl_password == "two newlines\n"
    # a child process gets the value itself, not the file (and not both)
    child = Settings.from_env(settings.environment({}))
    assert child == settings


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {"PROMISE_TRACKER_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"},
            "PROMISE_TRACKER_KAFKA_SASL_PASSWORD_FILE='/nonexistent/pw': cannot read it",
        ),
        (
            {
                "PROMISE_TRACKER_SUBJECT_KEY": "x",
                "PROMISE_TRACKER_SUBJECT_KEY_FILE": "/etc/hostname",
            },
            "PROMISE_TRACKER_SUBJECT_KEY and PROMISE_TRACKER_SUBJECT_KEY_FILE are both set",
        ),
        (
            {"PROMISE_TRACKER_KAFKA_SECURITY_PROTOCOL": "TLS"},
            "PROMISE_TRACKER_KAFKA_SECURITY_PROTOCOL='TLS': expected one of PLAINTEXT, SSL",
        ),
        (
            {**SASL, "PROMISE_TRACKER_KAFKA_SASL_MECHANISM": "GSSAPI"},
            "PROMISE_TRACKER_KAFKA_SASL_MECHANISM='GSSAPI': expected one of PLAIN",
        ),
        (
            {**SASL, "PROMISE_TRACKER_KAFKA_SASL_USERNAME": ""},
            "=SASL_SSL needs PROMISE_TRACKER_KAFKA_SASL_USERNAME",
        ),
        (
            {**SASL, "PROMISE_TRACKER_KAFKA_SASL_PASSWORD": ""},
            "=SASL_SSL needs PROMISE_TRACKER_KAFKA_SASL_PASSWORD (or its _FILE)",
        ),
        (
            {"PROMISE_TRACKER_KAFKA_SASL_MECHANISM": "PLAIN"},
            "PROMISE_TRACKER_KAFKA_SASL_MECHANISM is set but "
            "PROMISE_TRACKER_KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
        ),
        (
            {"PROMISE_TRACKER_KAFKA_SSL_CA_LOCATION": "/etc/hostname"},
            "PROMISE_TRACKER_KAFKA_SSL_CA_LOCATION is set but",
        ),
        (
            {
                "PROMISE_TRACKER_KAFKA_SECURITY_PROTOCOL": "SSL",
                "PROMISE_TRACKER_KAFKA_SSL_KEY_LOCATION": "/etc/hostname",
            },
            "set both or neither",
        ),
        (
            {
                "PROMISE_TRACKER_KAFKA_SECURITY_PROTOCOL": "SSL",
                "PROMISE_TRACKER_KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem",
            },
            "PROMISE_TRACKER_KAFKA_SSL_CA_LOCATION='/nonexistent/ca.pem': no readable file",
        ),
    ],
)
def test_unusable_security_settings_are_one_line_naming_the_variable(env, names):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert names in message and "\n" not in message
    assert "s3cret" not in message


def test_repr_and_tracebacks_do_not_show_secrets():
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="promise",
        kafka_sasl_password="kafka-s3cret",
        kafka_ssl_key_password="key-s3cret",
        clickhouse_url="clickhouse://writer:url-s3cret@db:9000/",
        clickhouse_password="ch-s3cret",
        subject_key="subject-s3cret",
    )
    try:
        raise RuntimeError(f"failed with {settings!r}")
    except RuntimeError:
        trace = traceback.format_exc()
    for shown in (repr(settings), str(settings), f"{settings}", trace):
        assert "s3cret" not in shown
        assert "kafka_sasl_password='***'" in shown and "writer:***@db" in shown
        assert "kafka_sasl_username='promise'" in shown  # not a secret: helps debugging
    assert "subject_key=''" in repr(Settings())  # unset: shown as unset


# --- pseudonymised subjects ---------------------------------------------------------------


def _hmac(key: bytes, subject: str) -> str:
    return PSEUDONYM + hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()


def test_rows_carry_the_subjects_keyed_hash_when_a_key_is_set():
    key = b"subject-key"
    record = violation(subject="customer/42")
    latest = dict(violation_rows(record, "e1", 1, key))["violations"]
    assert latest[4] == _hmac(key, "customer/42") == pseudonym(key, "customer/42")
    assert dict(violation_rows(record, "e1", 1))["violations"][4] == "customer/42"  # no key
    assert promise_row(outcome("kept"), 1, key)[1][4] == _hmac(key, "customer/1")
    assert pseudonym(key, None) is None  # no subject stays no subject
    assert pseudonym(b"another key", "customer/42") != _hmac(key, "customer/42")


def _customers(store: ChdbStore) -> int:
    """The dashboard's customers-affected figure (dashboards/queries.py CUSTOMERS_AFFECTED)."""
    rows = store.rows(
        "SELECT uniqExact(subject) AS n FROM {db}.violations FINAL "
        "WHERE state = 'active' AND subject IS NOT NULL"
    )
    return int(rows[0]["n"])


def _subjects(store: ChdbStore) -> set[str]:
    found = set()
    for table in ("promises", "violations"):
        rows = store.rows(f"SELECT DISTINCT subject FROM {{db}}.{table} WHERE subject IS NOT NULL")
        found |= {row["subject"] for row in rows}
    return found


def test_the_sink_stores_pseudonyms_and_customers_affected_still_counts(store):
    key = b"k" * 32
    subjects = ["customer/1", "customer/2", "customer/1", "customer/3", None]
    records = [violation(f"v{n}", subject=s) for n, s in enumerate(subjects)]
    sink = ClickHouseSink(store)
    for n, record in enumerate(records):
        sink.add_all(violation_rows(record, f"e{n}", n, key))
    sink.add_all([promise_row(outcome("broken"), 9, key)])
    sink.flush()
    assert _customers(store) == 3  # as many as there are distinct subjects
    stored = _subjects(store)
    assert stored == {_hmac(key, s) for s in subjects if s} | {_hmac(key, "customer/1")}
    assert not any("customer/" in s for s in stored)
    assert queries.violations(store)["v4"]["subject"] is None


def test_replay_into_clickhouse_stores_pseudonyms_with_the_same_counts(tmp_path):
    stream = tmp_path / "stream.jsonl"
    generate(stream, events=2000, open_promises=200, seed=7)
    counts = {}
    for name, env in (("plain", {}), ("keyed", {"PROMISE_TRACKER_SUBJECT_KEY": "replay-key"})):
        target = tmp_path / name
        done = subprocess.run(
            [sys.executable, "-m", "promise_tracker.cli", "replay", str(stream), "--quiet"]
            + ["--clickhouse", str(target)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env={**_clean_env(), **env},
        )
        assert done.returncode == 0, done.stderr
        assert "replay-key" not in done.stderr + done.stdout
        replayed = ChdbStore(target, "promise_tracker_replay").connect()
        try:
            counts[name] = _customers(replayed)
            subjects = _subjects(replayed)
        finally:
            replayed.close()
        plain = {s for s in subjects if s.startswith("customer/")}
        assert (plain == subjects) if name == "plain" else (not plain and subjects)
    assert counts["plain"] == counts["keyed"] > 0


def _clean_env() -> dict[str, Any]:
    return {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}


def test_replay_names_an_unreadable_subject_key_file(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "promise_tracker.cli", "replay", "examples/kept-promises.jsonl"]
        + ["--clickhouse", str(tmp_path / "chdb"), "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**_clean_env(), "PROMISE_TRACKER_SUBJECT_KEY_FILE": str(tmp_path / "missing")},
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "PROMISE_TRACKER_SUBJECT_KEY_FILE" in done.stderr


def test_a_path_is_not_a_secret(tmp_path: Path):
    """A _FILE naming a directory is unreadable too: one line, not a traceback."""
    with pytest.raises(SettingsError, match="CLICKHOUSE_PASSWORD_FILE=.*cannot read it"):
        Settings.from_env({"PROMISE_TRACKER_CLICKHOUSE_PASSWORD_FILE": str(tmp_path)})

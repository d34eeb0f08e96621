"""Worker and SDK settings, from the environment (``PROMISE_TRACKER_*``), checked up front.

A wrong value stops the process with one line naming the variable and what it accepts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from promise_tracker.errors import SettingsError
from promise_tracker.streams.risk import DEFAULT_WARN_AT, warn_fractions

PREFIX = "PROMISE_TRACKER_"
_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Settings that are secrets: never shown by repr(), never stripped of spaces, and each can
# come from a file instead (PROMISE_TRACKER_<NAME>_FILE: Docker and Kubernetes secrets)
SECRETS = (
    "kafka_sasl_password",
    "kafka_ssl_key_password",
    "clickhouse_password",
    "subject_key",
)
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SSL_FILES = (
    "kafka_ssl_ca_location",
    "kafka_ssl_certificate_location",
    "kafka_ssl_key_location",
)


@dataclass(frozen=True)
class KafkaSettings:
    """Where the brokers are and how every Kafka client of ours connects to them
    (runtime/kafka.py ``kafka_config``)."""

    kafka: str = "127.0.0.1:9092"  # bootstrap servers, host:port[,host:port]
    # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; SASL takes a mechanism, a username and a
    # password
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_ca_location: str = ""  # PEM file of the CA that signed the brokers' certificates
    kafka_ssl_certificate_location: str = ""  # the client's certificate (mutual TLS)
    kafka_ssl_key_location: str = ""  # and its private key
    kafka_ssl_key_password: str = ""  # the private key's passphrase, if it has one


@dataclass(frozen=True)
class TopicSettings:
    """The topics and consumer groups, named and shaped (runtime/topics.py)."""

    app_id: str = "promise-tracker"  # the consumer group, and the changelog topic's name
    partitions: int = 8  # of every topic; the input topics must be co-partitioned
    replication: int = 1  # replication factor of the topics it creates (say 3 in production)
    topic_prefix: str = ""  # prepended to every topic name and the app id (tests, tenants)
    topic_issued: str = "promises.issued"
    topic_observed: str = "deliveries.observed"
    topic_violations: str = "promises.violations"
    topic_outcomes: str = "promises.outcomes"
    topic_warnings: str = "promises.warnings"
    topic_capabilities: str = "capabilities.declared"
    topic_dlq: str = "promises.dlq"

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    @property
    def issued(self) -> str:
        return self.topic(self.topic_issued)

    @property
    def observed(self) -> str:
        return self.topic(self.topic_observed)

    @property
    def violations(self) -> str:
        return self.topic(self.topic_violations)

    @property
    def outcomes(self) -> str:
        return self.topic(self.topic_outcomes)

    @property
    def warnings(self) -> str:
        return self.topic(self.topic_warnings)

    @property
    def capabilities(self) -> str:
        return self.topic(self.topic_capabilities)

    @property
    def dlq(self) -> str:
        return self.topic(self.topic_dlq)

    @property
    def group(self) -> str:
        return self.topic_prefix + self.app_id

    @property
    def sink_group(self) -> str:
        """The consumer group of the sinks (output topics to ClickHouse)."""
        return f"{self.group}-sink"

    @property
    def changelog(self) -> str:
        """The worker's state, one compacted partition per input partition."""
        return f"{self.group}-state-changelog"


@dataclass(frozen=True)
class EngineSettings:
    """The rule engine's clock and memory (streams/engine.py ``EngineConfig``)."""

    lateness: float = 5.0  # seconds the watermark trails the largest event time
    retention: float = 7 * 86400.0  # event-time seconds a closed promise's state is kept
    orphan_ttl: float = 86400.0  # how long an observation waits for its promise
    max_orphans: int = 100_000  # per partition; beyond it the oldest orphan is rejected
    max_future: float = 300.0  # how far ahead of the wall clock an event may be
    # the business calendars of SPEC 2.1 (a TOML file), read once when the worker starts;
    # none: a within_seconds promise that names a calendar is rejected unknown_calendar
    calendars: str = ""
    # at-risk warnings (SPEC 4.1) at these fractions of the way to a deliver_by's due time
    warn_at: str = DEFAULT_WARN_AT


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker consumes, ticks and commits (streams/worker.py)."""

    # a stable name per worker (e.g. the pod name) makes its restarts rejoin the group at
    # once with the same partitions; empty: a restart waits for the old session to expire
    instance: str = ""
    session_timeout: float = 10.0  # seconds without heartbeats before a worker is dropped
    tick_interval: float = 0.25  # seconds between wall-clock checks of quiet partitions
    quiet: float = 1.0  # a caught-up input partition this long without messages is quiet
    batch_size: int = 2000  # messages taken from the consumer at once
    commit_interval: float = 0.5  # seconds between flush-and-commit points
    batch_wait: float = 0.02  # seconds to wait for a batch to fill
    log_level: str = "info"


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics on http://metrics_host:port/metrics (0: off). Loopback by default:
    say 0.0.0.0 for a Prometheus on another host or in another container."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # the worker's; several workers on one host need a port each
    sink_metrics_port: int = 9465  # the sink's


@dataclass(frozen=True)
class StoreSettings:
    """The store and the sink that fills it (sinks/)."""

    # a ClickHouse server's HTTP(S) interface (http://user:password@host:8123/), or empty
    # for the embedded chdb engine in ``chdb_path`` (one sink process per directory)
    clickhouse_url: str = ""
    # the server's password, if not in the URL (no URL-encoding needed; overrides the URL's)
    clickhouse_password: str = ""
    chdb_path: str = ".data/chdb"
    database: str = "promise_tracker"
    sink_batch_rows: int = 20_000  # rows the sink writes at once, at most
    sink_flush_interval: float = 0.5  # seconds a row waits at most before it is written
    sink_max_backoff: float = 30.0  # longest wait between retries while the store is down
    # fault drills: while this file exists, the sink's store refuses every write
    store_fault_file: str = ""
    # when set, the sink stores each subject as hmac:HMAC-SHA256(key, subject) (sinks/rows.py)
    subject_key: str = ""


@dataclass(frozen=True)
class PagingSettings:
    """Paging (paging/pager.py): the worker posts active violations and at-risk warnings to
    this Alertmanager (http://host:9093); no URL: no paging."""

    alertmanager_url: str = ""
    alert_resend: float = 60.0  # seconds between re-sends of every firing alert
    alert_hold: float = 86400.0  # an alert fires at most this long after its detection
    alert_queue_max: int = 10_000  # posts waiting for Alertmanager (e.g. while it is down)
    alert_max_active: int = 100_000  # alerts a worker keeps firing; beyond, the oldest lapse
    grafana_url: str = "http://localhost:3000"  # alerts link to its on-call dashboard


@dataclass(frozen=True)
class Settings(
    PagingSettings,
    StoreSettings,
    MetricsSettings,
    WorkerSettings,
    EngineSettings,
    TopicSettings,
    KafkaSettings,
):
    """Every knob of the live pipeline, by concern (the classes above); each field is read
    from ``PROMISE_TRACKER_<FIELD>`` by ``from_env``."""

    def __repr__(self) -> str:
        """Every field, secrets as *** (and a URL's password): settings end up in logs and
        tracebacks."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRETS and value:
                value = "***"
            elif f.name == "clickhouse_url":
                value = redact_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``PROMISE_TRACKER_<FIELD>`` for every field, e.g. PROMISE_TRACKER_PARTITIONS.

        Durations take seconds or a unit: 250ms, 5s, 10m, 1h, 7d.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            raw = _secret(env, name) if f.name in SECRETS else env.get(name)
            if raw is None or raw == "":
                continue
            kind = type(f.default)
            if f.name in SECRETS:
                values[f.name] = raw  # spaces and all: a password is what it is
            elif kind is int and f.name.endswith("_port"):
                values[f.name] = _port(name, raw)
            elif kind is int:
                if not re.fullmatch(r"\d+", raw.strip()) or int(raw) < 1:
                    raise SettingsError(f"{name}={raw!r}: expected a whole number >= 1")
                values[f.name] = int(raw)
            elif kind is float:
                values[f.name] = _duration(name, raw)
            else:
                values[f.name] = raw.strip()
        settings = cls(**values)  # type: ignore[arg-type]
        if not re.fullmatch(r"[\w.:-]+", settings.metrics_host):
            raise SettingsError(
                f"{PREFIX}METRICS_HOST={settings.metrics_host!r}: expected an address to listen "
                "on, e.g. 127.0.0.1 or 0.0.0.0"
            )
        if not re.fullmatch(r"[^\s,]+:\d+(,[^\s,]+:\d+)*", settings.kafka):
            raise SettingsError(
                f"{PREFIX}KAFKA={settings.kafka!r}: expected host:port[,host:port...]"
            )
        for name in ("alertmanager_url", "grafana_url"):
            url = getattr(settings, name)
            if url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
                raise SettingsError(
                    f"{PREFIX}{name.upper()}={url!r}: expected http://host:port (or https://)"
                )
        url = settings.clickhouse_url
        if url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise SettingsError(
                f"{PREFIX}CLICKHOUSE_URL={redact_url(url)!r}: expected the server's HTTP "
                "interface, http://user@host:8123/ (or https://host:8443/); the native "
                "protocol (clickhouse://, port 9000) is not spoken"
            )
        for name in ("alert_resend", "alert_hold"):
            if getattr(settings, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()}: expected a duration above 0")
        try:
            warn_fractions(settings.warn_at)
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}WARN_AT={settings.warn_at!r}: {exc}") from None
        return _check_kafka_security(settings)

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (the process's environment) with these settings as ``PROMISE_TRACKER_*``
        in place of its own: what a child process (worker, sink) reads back in from_env."""
        base = os.environ if base is None else base
        env = {k: v for k, v in base.items() if not k.startswith(PREFIX)}
        env.update({PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)})
        return env


def redact_url(url: str) -> str:
    """``scheme://user:password@host`` with the password as ***."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def secret_from_env(field: str, env: Mapping[str, str] | None = None) -> str:
    """One secret setting (e.g. ``subject_key``) alone, for a command that needs no others
    (``replay --clickhouse``); raises SettingsError as ``from_env`` does."""
    assert field in SECRETS, field
    return _secret(os.environ if env is None else env, PREFIX + field.upper()) or ""


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret from ``NAME`` or from the file ``NAME_FILE`` names (one trailing newline
    dropped, as ``echo`` writes it); never both, and never the secret in a message."""
    path = env.get(f"{name}_FILE") or ""
    if not path:
        return env.get(name)
    if env.get(name):
        raise SettingsError(f"{name} and {name}_FILE are both set: set one of them")
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SettingsError(
            f"{name}_FILE={path!r}: cannot read it ({why}): give a readable file"
        ) from None
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _check_kafka_security(settings: Settings) -> Settings:
    """The Kafka security settings make sense together; normalised to upper case."""
    protocol = settings.kafka_security_protocol.upper()
    mechanism = settings.kafka_sasl_mechanism.upper()
    name = PREFIX + "KAFKA_SECURITY_PROTOCOL"
    if protocol not in SECURITY_PROTOCOLS:
        raise SettingsError(
            f"{name}={settings.kafka_security_protocol!r}: expected one of "
            + ", ".join(SECURITY_PROTOCOLS)
        )
    if mechanism and mechanism not in SASL_MECHANISMS:
        raise SettingsError(
            f"{PREFIX}KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism!r}: expected one of "
            + ", ".join(SASL_MECHANISMS)
        )
    sasl = {
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "KAFKA_SASL_PASSWORD": settings.kafka_sasl_password,
    }
    if protocol.startswith("SASL_"):
        for variable, value in sasl.items():
            if not value:
                raise SettingsError(
                    f"{name}={protocol} needs {PREFIX}{variable} (or its _FILE) as well"
                )
    elif any(sasl.values()):
        given = next(variable for variable, value in sasl.items() if value)
        raise SettingsError(
            f"{PREFIX}{given} is set but {name} is {protocol}: "
            "set it to SASL_SSL (or SASL_PLAINTEXT) to use SASL"
        )
    ssl = {f: getattr(settings, f) for f in (*_SSL_FILES, "kafka_ssl_key_password")}
    if not protocol.endswith("SSL") and any(ssl.values()):
        given = next(f for f, value in ssl.items() if value).upper()
        raise SettingsError(
            f"{PREFIX}{given} is set but {name} is {protocol}: set it to SSL or SASL_SSL"
        )
    key, certificate = settings.kafka_ssl_key_location, settings.kafka_ssl_certificate_location
    if bool(key) != bool(certificate):
        raise SettingsError(
            f"{PREFIX}KAFKA_SSL_CERTIFICATE_LOCATION and {PREFIX}KAFKA_SSL_KEY_LOCATION go "
            "together (a client certificate and its key): set both or neither"
        )
    if settings.kafka_ssl_key_password and not key:
        raise SettingsError(
            f"{PREFIX}KAFKA_SSL_KEY_PASSWORD is set without {PREFIX}KAFKA_SSL_KEY_LOCATION"
        )
    for f in _SSL_FILES:
        path = getattr(settings, f)
        if path and not os.access(path, os.R_OK):
            raise SettingsError(f"{PREFIX}{f.upper()}={path!r}: no readable file there")
    return replace(settings, kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism)


def _port(name: str, raw: str) -> int:
    if not re.fullmatch(r"\d+", raw.strip()) or int(raw) > 65535:
        raise SettingsError(f"{name}={raw!r}: expected a port number (1-65535), or 0 for none")
    return int(raw)


def _duration(name: str, raw: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", raw)
    if match is None:
        raise SettingsError(f"{name}={raw!r}: expected seconds or a duration like 250ms, 5s, 7d")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]

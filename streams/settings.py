"""Worker and SDK settings, from the environment (``PROMISE_TRACKER_*``), checked up front.

A wrong value stops the process with one line naming the variable and what it accepts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

PREFIX = "PROMISE_TRACKER_"
_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the live pipeline; ``from_env`` documents the variable for each."""

    kafka: str = "127.0.0.1:9092"  # bootstrap servers, host:port[,host:port]
    app_id: str = "promise-tracker"  # the consumer group, and the changelog topic's name
    partitions: int = 8  # of every topic; the input topics must be co-partitioned
    replication: int = 1  # replication factor of the topics it creates (say 3 in production)
    topic_prefix: str = ""  # prepended to every topic name and the app id (tests, tenants)
    topic_issued: str = "promises.issued"
    topic_observed: str = "deliveries.observed"
    topic_violations: str = "promises.violations"
    topic_outcomes: str = "promises.outcomes"
    topic_dlq: str = "promises.dlq"
    # a stable name per worker (e.g. the pod name) makes its restarts rejoin the group at
    # once with the same partitions; empty: a restart waits for the old session to expire
    instance: str = ""
    session_timeout: float = 10.0  # seconds without heartbeats before a worker is dropped
    lateness: float = 5.0  # seconds the watermark trails the largest event time
    retention: float = 7 * 86400.0  # event-time seconds a closed promise's state is kept
    orphan_ttl: float = 86400.0  # how long an observation waits for its promise
    max_orphans: int = 100_000  # per partition; beyond it the oldest orphan is rejected
    max_future: float = 300.0  # how far ahead of the wall clock an event may be
    tick_interval: float = 0.25  # seconds between wall-clock checks of quiet partitions
    quiet: float = 1.0  # a caught-up input partition this long without messages is quiet
    batch_size: int = 2000  # messages taken from the consumer at once
    commit_interval: float = 0.5  # seconds between flush-and-commit points
    batch_wait: float = 0.02  # seconds to wait for a batch to fill
    log_level: str = "info"
    # Prometheus metrics on http://metrics_host:port/metrics (0: off). Loopback by default:
    # say 0.0.0.0 for a Prometheus on another host or in another container
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # the worker's; several workers on one host need a port each
    sink_metrics_port: int = 9465  # the sink's
    # the store: a ClickHouse server URL (clickhouse://user:password@host:9000/), or empty for
    # the embedded chdb engine in ``chdb_path`` (one sink process per directory)
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
    # paging (sinks/pager.py): the worker posts active violations to this Alertmanager
    # (http://host:9093); empty: no paging
    alertmanager_url: str = ""
    alert_resend: float = 60.0  # seconds between re-sends of every firing alert
    alert_hold: float = 86400.0  # an alert fires at most this long after its detection
    alert_queue_max: int = 10_000  # posts waiting for Alertmanager (e.g. while it is down)
    alert_max_active: int = 100_000  # alerts a worker keeps firing; beyond, the oldest lapse
    grafana_url: str = "http://localhost:3000"  # alerts link to its on-call dashboard

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``PROMISE_TRACKER_<FIELD>`` for every field, e.g. PROMISE_TRACKER_PARTITIONS.

        Durations take seconds or a unit: 250ms, 5s, 10m, 1h, 7d.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            kind = type(f.default)
            if kind is int and f.name.endswith("_port"):
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
        for name in ("alert_resend", "alert_hold"):
            if getattr(settings, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()}: expected a duration above 0")
        return settings

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (the process's environment) with these settings as ``PROMISE_TRACKER_*``
        in place of its own: what a child process (worker, sink) reads back in from_env."""
        base = os.environ if base is None else base
        env = {k: v for k, v in base.items() if not k.startswith(PREFIX)}
        env.update({PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)})
        return env

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


def _port(name: str, raw: str) -> int:
    if not re.fullmatch(r"\d+", raw.strip()) or int(raw) > 65535:
        raise SettingsError(f"{name}={raw!r}: expected a port number (1-65535), or 0 for none")
    return int(raw)


def _duration(name: str, raw: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", raw)
    if match is None:
        raise SettingsError(f"{name}={raw!r}: expected seconds or a duration like 250ms, 5s, 7d")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]

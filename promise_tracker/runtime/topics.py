"""Create the pipeline's topics with explicit partition counts, and check existing ones.

The two input topics and the worker's changelog must have the same partition count
(co-partitioning): a promise and its deliveries meet in one partition number, and the state
of input partition P is kept in changelog partition P.
"""

from __future__ import annotations

import re
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from promise_tracker.errors import KafkaAuthError, KafkaUnreachable, TopicError
from promise_tracker.runtime.kafka import kafka_config
from promise_tracker.runtime.settings import PREFIX, Settings

HOUR_MS = 3_600_000
# A dead letter carries an input record's bytes (up to the broker's limit compressed, more
# uncompressed) plus its headers: its topic and the worker's producer take this much, and a
# record larger still is cut short (promise_tracker/streams/live.py ``shrink``) rather than refused.
DLQ_MAX_BYTES = 8 << 20
# how long failed connections, and nothing else, are retried before Kafka counts as
# unreachable: a broker that is up answers at once, one that is down refuses at once
PROBE = 2.0
_UNREACHABLE = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> its configuration."""
    compacted = {"cleanup.policy": "compact"}
    return {
        settings.issued: {},
        settings.observed: {},
        settings.changelog: compacted,
        settings.violations: compacted,
        settings.outcomes: compacted,
        settings.warnings: compacted,
        settings.capabilities: compacted,
        settings.dlq: {
            "retention.ms": str(30 * 24 * HOUR_MS),
            "max.message.bytes": str(DLQ_MAX_BYTES),
        },
    }


def unreachable(kafka: str, error: KafkaError) -> KafkaUnreachable:
    """One line naming the brokers, why they cannot be reached, and the fix."""
    # "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused
    # (after 0ms in state CONNECT)" -> "Connection refused"
    detail = re.sub(r"^\S+/(bootstrap|\d+): ", "", error.str())
    detail = re.sub(r" \(after \d+ms in state \w+\)$", "", detail).rpartition("failed: ")[2]
    return KafkaUnreachable(
        f"cannot reach Kafka at {kafka} ({detail}): start it (deploy/kafka/kafka.sh start) "
        f"or set {PREFIX}KAFKA"
    )


def admin(settings: Settings, errors: list[KafkaError] | None = None) -> AdminClient:
    """An admin client; ``errors`` collects the client's errors (see ``list_topics``)."""
    config: dict[str, Any] = kafka_config(settings)
    if errors is not None:
        config["error_cb"] = errors.append
    return AdminClient(config)


def list_topics(
    client: AdminClient, errors: list[KafkaError], settings: Settings, timeout: float
) -> dict[str, Any]:
    """The cluster's topics; refused credentials fail at once with one line that names the
    settings (librdkafka would retry them until ``timeout`` and then say "transport failure"),
    and brokers that refuse connections for ``PROBE`` seconds with ``KafkaUnreachable``.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        try:
            return client.list_topics(timeout=min(1.0, timeout)).topics
        except KafkaException:
            client.poll(0)  # serves the error callback
            for error in errors:
                if error.code() == KafkaError._AUTHENTICATION:
                    raise KafkaAuthError(
                        f"Kafka at {settings.kafka} refused the credentials ({error.str()}): "
                        f"check {PREFIX}KAFKA_SASL_USERNAME and {PREFIX}KAFKA_SASL_PASSWORD "
                        "(or its _FILE)"
                    ) from None
                if error.code() == KafkaError._SSL:
                    raise KafkaAuthError(
                        f"TLS with Kafka at {settings.kafka} failed ({error.str()}): check "
                        f"{PREFIX}KAFKA_SECURITY_PROTOCOL and the {PREFIX}KAFKA_SSL_* files"
                    ) from None
            # the one that says why ("Connection refused"), rather than "1/1 brokers are down"
            down = sorted(
                (e for e in errors if e.code() in _UNREACHABLE),
                key=lambda e: e.code() == KafkaError._ALL_BROKERS_DOWN,
            )
            now = time.monotonic()
            if down and now - started >= min(PROBE, timeout):
                raise unreachable(settings.kafka, down[0]) from None
            if now >= deadline:
                raise


def check_topics(settings: Settings, names: list[str], timeout: float = 30.0) -> None:
    """Kafka can be reached with our settings and has these topics: else one line saying
    what to do (``KafkaUnreachable``, ``KafkaAuthError``, ``TopicError``). For a producer,
    whose records for an unreachable broker or a missing topic would wait in its queue."""
    errors: list[KafkaError] = []
    existing = list_topics(admin(settings, errors), errors, settings, timeout)
    missing = [name for name in names if name not in existing]
    if missing:
        raise TopicError(
            f"Kafka at {settings.kafka} has no topic {', '.join(missing)}: create the topics "
            "with `promise-tracker topics` (a worker creates them too), or check "
            f"{PREFIX}TOPIC_PREFIX"
        )


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create what is missing; refuse co-partitioned topics with another partition count.

    Returns the names created.
    """
    errors: list[KafkaError] = []
    client = admin(settings, errors)
    specs = topic_specs(settings)
    existing = list_topics(client, errors, settings, timeout)
    copartitioned = (settings.issued, settings.observed, settings.changelog)
    for name in copartitioned:
        meta = existing.get(name)
        if meta is not None and meta.error is None and len(meta.partitions) != settings.partitions:
            raise TopicError(
                f"topic {name} has {len(meta.partitions)} partitions but "
                f"PROMISE_TRACKER_PARTITIONS is {settings.partitions}: the input topics, the "
                "changelog and the worker must agree (set the variable to the topic's count)"
            )
    missing = [
        NewTopic(name, settings.partitions, settings.replication, config=config)
        for name, config in specs.items()
        if name not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in client.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # another worker was quicker
                raise
    return created

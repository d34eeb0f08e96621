"""Create the pipeline's topics with explicit partition counts, and check existing ones.

The two input topics and the worker's changelog must have the same partition count
(co-partitioning): a promise and its deliveries meet in one partition number, and the state
of input partition P is kept in changelog partition P.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from promise_tracker.errors import KafkaAuthError, KafkaUnreachable, TopicError
from promise_tracker.runtime.settings import PREFIX, Settings

HOUR_MS = 3_600_000
# A dead letter carries an input record's bytes (up to the broker's limit compressed, more
# uncompressed) plus its headers: its topic and the worker's producer take this much, and a
# record larger still is cut short (promise_tracker/streams/live.py ``shrink``) rather than refused.
DLQ_MAX_BYTES = 8 << 20
# librdkafka's own log lines (a broker that cannot be reached: a line per attempt) go through
# Python logging: silent in a command that configures none (emit, topics; tests), at the
# process's level in the worker and the sink, which do.
KAFKA_LOG = logging.getLogger("promise_tracker.kafka")
KAFKA_LOG.addHandler(logging.NullHandler())
# how long failed connections, and nothing else, are retried before Kafka counts as
# unreachable: a broker that is up answers at once, one that is down refuses at once
PROBE = 2.0
_UNREACHABLE = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}


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


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> its configuration."""
    compacted = {"cleanup.policy": "compact"}
    return {
        settings.issued: {},
        settings.observed: {},
        settings.changelog: compacted,
        settings.violations: compacted,
        settings.outcomes: compacted,
        settings.dlq: {
            "retention.ms": str(30 * 24 * HOUR_MS),
            "max.message.bytes": str(DLQ_MAX_BYTES),
        },
    }


def kafka_config(settings: Settings) -> dict[str, Any]:
    """What every Kafka client of ours is given (worker, sink, SDK, admin, readers): where
    the brokers are, how to connect to them, and where librdkafka logs (``KAFKA_LOG``). It
    holds secrets: never log it."""
    config: dict[str, Any] = {"bootstrap.servers": settings.kafka, "logger": KAFKA_LOG}
    protocol = settings.kafka_security_protocol
    if protocol != "PLAINTEXT":
        config["security.protocol"] = protocol
    if protocol.startswith("SASL_"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = settings.kafka_sasl_password
    for option, value in (
        ("ssl.ca.location", settings.kafka_ssl_ca_location),
        ("ssl.certificate.location", settings.kafka_ssl_certificate_location),
        ("ssl.key.location", settings.kafka_ssl_key_location),
        ("ssl.key.password", settings.kafka_ssl_key_password),
    ):
        if value:
            config[option] = value
    return config


def producer_config(settings: Settings) -> dict[str, Any]:
    """The producer every emitter should use: keys hashed with murmur2, as Kafka's Java
    clients hash them, so that a promise and its deliveries meet in one partition."""
    return {
        **kafka_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "compression.type": "lz4",
    }


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


# a topic created a moment ago: its leaders are not known everywhere yet
_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def watermarks(consumer: Consumer, tp: TopicPartition, timeout: float = 30.0) -> tuple[int, int]:
    """(low, high) offsets of a partition, asking again while the broker is not ready for it.

    Regression: a worker assigned the partitions of a changelog topic created a moment
    before was told NOT_LEADER_FOR_PARTITION and died in its assignment callback.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0]
            retry = error.code() in _NOT_READY or error.retriable()
            if not retry or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def group_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Messages of ``topics`` (all partitions) that ``group`` has not committed yet."""
    consumer = Consumer({**kafka_config(settings), "group.id": group})
    try:
        metadata = consumer.list_topics(timeout=10).topics
        partitions = [
            TopicPartition(topic, number)
            for topic in topics
            for number in metadata[topic].partitions
        ]
        lag = 0
        for tp in consumer.committed(partitions, timeout=10):
            _, high = watermarks(consumer, tp, timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def failed(message: Any, log: logging.Logger) -> bool:
    """Whether a consumed message is an error event rather than a record: a fatal error
    raises, another is logged (the client retries it) and the message is skipped."""
    error = message.error()
    if error is None:
        return False
    if error.fatal():
        raise KafkaException(error)
    log.warning("consumer: %s", error)
    return True

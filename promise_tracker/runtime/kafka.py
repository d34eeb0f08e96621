"""What every Kafka client of ours shares: its configuration (connection, security, where
librdkafka logs), the producer's settings, and reading offsets and consumer errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from promise_tracker.runtime.settings import Settings

# librdkafka's own log lines (a broker that cannot be reached: a line per attempt) go through
# Python logging: silent in a command that configures none (emit, topics; tests), at the
# process's level in the worker and the sink, which do.
KAFKA_LOG = logging.getLogger("promise_tracker.kafka")
KAFKA_LOG.addHandler(logging.NullHandler())


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


# the broker is not ready to answer yet: a partition of a topic just created, or whose
# leader moves; a group coordinator still being elected or loaded (a broker that has just
# started). Asked again, it answers.
_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    # the client itself does not know the partition yet: a worker reading capabilities just
    # after the broker restarted (the chaos test, CI)
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


T = TypeVar("T")


class NotReady(KafkaException):
    """The broker still said it was not ready when the deadline came (a ``KafkaException``
    carrying its last ``KafkaError``)."""


def until_ready(ask: Callable[[], T], deadline: float) -> T:
    """``ask()``, asked again while the broker says it is not ready (``_NOT_READY``, or an
    error librdkafka calls retriable) until ``deadline`` (``time.monotonic()``), then
    ``NotReady``; any other error raises at once.

    Regressions: a worker assigned the partitions of a changelog topic created a moment
    before was told NOT_LEADER_FOR_PARTITION and died in its assignment callback; so did
    its capability reader (CI); the demo's first lag check right after the broker started
    failed with NOT_COORDINATOR (CI and by hand) and the demo exited 1.
    """
    while True:
        try:
            return ask()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError):
                raise
            if error.code() not in _NOT_READY and not error.retriable():
                raise
            if time.monotonic() > deadline:
                raise NotReady(error) from exc
            time.sleep(0.2)


def watermarks(
    consumer: Consumer, tp: TopicPartition, timeout: float = 30.0, deadline: float | None = None
) -> tuple[int, int]:
    """(low, high) offsets of a partition, asking again while it is not ready
    (``until_ready``): each request waits up to ``timeout`` seconds, and the requests go on
    until ``deadline`` (``time.monotonic()``; default: ``timeout`` from now)."""
    if deadline is None:
        deadline = time.monotonic() + timeout
    return until_ready(lambda: consumer.get_watermark_offsets(tp, timeout=timeout), deadline)


def assign_from_start(consumer: Consumer, topic: str, patience: float) -> dict[int, int]:
    """Assigns every partition of ``topic`` from its beginning; returns, for each one with
    records, the offset it must be read up to (its high watermark now). A partition without
    a leader within ``patience`` seconds (a topic just made) is left out with a log line:
    it is read as it comes."""
    numbers = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, n, OFFSET_BEGINNING) for n in numbers])
    ends: dict[int, int] = {}
    deadline = time.monotonic() + patience
    for number in numbers:
        try:
            low, high = watermarks(consumer, TopicPartition(topic, number), 10, deadline)
        except NotReady:
            KAFKA_LOG.warning("%s[%d]: no leader within %g s; following it as it comes",
                              topic, number, patience)  # fmt: skip
            continue
        if high > low:
            ends[number] = high
    return ends


def reached(ends: dict[int, int], messages: list[Any]) -> None:
    """Drops from ``ends`` (``assign_from_start``'s) the partitions whose last record is
    among ``messages``: ``ends`` is empty once the topic was read to its end."""
    for message in messages:
        number, offset = message.partition(), message.offset()
        if message.error() is None and number in ends and offset is not None:
            if offset + 1 >= ends[number]:
                del ends[number]


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
        for tp in _committed(consumer, partitions):
            _, high = watermarks(consumer, tp, timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def _committed(
    consumer: Consumer, partitions: list[TopicPartition], patience: float = 30.0
) -> list[TopicPartition]:
    """The group's committed offsets, asking again while the coordinator is not ready
    (``until_ready``) for up to ``patience`` seconds."""
    return until_ready(
        lambda: consumer.committed(partitions, timeout=10), time.monotonic() + patience
    )


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

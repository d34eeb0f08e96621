"""Create the pipeline's topics with explicit partition counts, and check existing ones.

The two input topics and the worker's changelog must have the same partition count
(co-partitioning): a promise and its deliveries meet in one partition number, and the state
of input partition P is kept in changelog partition P.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import Settings

HOUR_MS = 3_600_000


class TopicError(RuntimeError):
    """A topic exists with a shape the worker cannot use."""


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> its configuration."""
    compacted = {"cleanup.policy": "compact"}
    return {
        settings.issued: {},
        settings.observed: {},
        settings.changelog: compacted,
        settings.violations: compacted,
        settings.outcomes: compacted,
        settings.dlq: {"retention.ms": str(30 * 24 * HOUR_MS)},
    }


def kafka_config(settings: Settings) -> dict[str, str]:
    """What every Kafka client of ours is given: where the brokers are."""
    return {"bootstrap.servers": settings.kafka}


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


def admin(settings: Settings) -> AdminClient:
    return AdminClient(kafka_config(settings))


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create what is missing; refuse co-partitioned topics with another partition count.

    Returns the names created.
    """
    client = admin(settings)
    specs = topic_specs(settings)
    existing = client.list_topics(timeout=timeout).topics
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

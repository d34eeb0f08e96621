"""What the business has declared, for ``promise-tracker serve --kafka``: the
``capabilities.declared`` topic followed from its beginning in a background thread, as the
worker reads it, so that every check is judged against it too."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException

from promise_tracker.runtime.kafka import assign_from_start, failed, kafka_config, reached
from promise_tracker.runtime.settings import Settings
from promise_tracker.schemas.models import CapabilityDeclared
from promise_tracker.schemas.parse import parse
from promise_tracker.schemas.reject import Reject
from promise_tracker.streams.capabilities import Capabilities

log = logging.getLogger("promise_tracker.check")


class DeclaredCapabilities:
    """The declarations read so far, guarded by a lock; ``current()`` is a copy that no
    later declaration changes (made again only after one came)."""

    def __init__(self, settings: Settings, patience: float = 30.0):
        self.settings = settings
        self.patience = patience  # for the topic's leaders, at start
        self.caught_up = threading.Event()  # read up to the topic's end as of the start
        self._capabilities = Capabilities()
        self._current: Capabilities | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capabilities", daemon=True)

    def start(self) -> DeclaredCapabilities:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait(self, timeout: float) -> bool:
        """Whether the topic was read to its end (as of the start) within ``timeout``
        seconds; False at once if the reading stopped."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            if self.caught_up.wait(0.1):
                return True
        return self.caught_up.is_set()

    def current(self) -> Capabilities:
        """Every declaration read so far; not to be changed (answer.check_events copies it
        before adding a request's own)."""
        with self._lock:
            if self._current is None:
                self._current = self._capabilities.copy()
            return self._current

    def _run(self) -> None:
        settings = self.settings
        consumer = Consumer(
            {
                **kafka_config(settings),
                "group.id": f"{settings.group}-check",  # assigned, never commits: reads all
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
            }
        )
        try:
            ends = self._assign(consumer)
            while not self._stop.is_set():
                messages = consumer.consume(1000, 0.5)
                reached(ends, messages)
                self._declare(messages)
                if not ends and not self.caught_up.is_set():
                    with self._lock:
                        read = len(self._capabilities)
                    log.info("%d capability declarations read", read)
                    self.caught_up.set()
        except Exception:  # the server goes on answering with what it has read
            log.exception("%s: no longer followed", settings.capabilities)
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> dict[int, int]:
        """Every partition of the topic, from its beginning; returns the offsets to read up
        to (partitions with records, and a leader within ``patience``)."""
        topic = self.settings.capabilities
        numbers: list[int] = []
        while not numbers and not self._stop.is_set():
            try:
                numbers = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
            except KafkaException as exc:
                log.warning("%s: %s; asking again", topic, exc)
            if not numbers and not self.caught_up.is_set():
                # nothing declared yet: serve now, and follow the topic once it is made
                log.warning(
                    "%s does not exist yet (`promise-tracker topics` or a worker creates it): "
                    "checking against no declared capability until it does",
                    topic,
                )
                self.caught_up.set()
            if not numbers:
                self._stop.wait(1.0)
        return assign_from_start(consumer, topic, self.patience)

    def _declare(self, messages: list[Any]) -> None:
        """Valid declarations are added; another message is skipped (the worker
        dead-letters it)."""
        found = []
        for message in messages:
            if failed(message, log):
                continue
            event = parse(message.value())
            if type(event) is CapabilityDeclared:
                found.append(event)
                continue
            why = event.message if isinstance(event, Reject) else "not a capability.declared"
            log.warning(
                "%s[%d]@%d: skipped: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                why,
            )
        if found:
            with self._lock:
                for event in found:
                    self._capabilities.declare_event(event)
                self._current = None

"""The SDK for emitting teams: issue promises and report deliveries to Kafka.

    from promise_tracker.emit import Emitter

    with Emitter() as emit:  # PROMISE_TRACKER_KAFKA, or Emitter(kafka="host:9092")
        emit.issue_promise(
            id="card-2026-0042", source="prestige/marketing", kind="deadline",
            channel="card", terms={"open_until": "2026-11-01T23:59:59-05:00"},
            text="Yearbook selection date: 11/01",
        )
        emit.observe_delivery(
            id="obs-1", source="prestige/shop", promise_id="card-2026-0042",
            kind="deadline_enforced", time="2026-10-31T09:00:00-05:00",
        )
        # v2: "we reply within 8 business hours", and the clock stopped while we wait
        emit.issue_promise(
            id="ticket-7", source="support/eu", kind="deliver_by", channel="email",
            terms={"within_seconds": 8 * 3600, "calendar": "support-eu"},
        )
        emit.observe_delivery(promise_id="ticket-7", source="support/eu", kind="paused")

Every event is validated against the contract before it is sent: invalid input raises
``InvalidEvent`` naming the field and the fix, and nothing is sent. The producer is
idempotent with acks=all, keys every event by its promise id and hashes keys with murmur2,
as Kafka's Java clients and the worker's consumers do, so a promise and its deliveries meet
in the same partition. ``flush()`` (and leaving the ``with`` block) waits for the broker and
raises ``DeliveryFailed`` if any event could not be written.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from promise_tracker import errors
from promise_tracker.errors import BadInput
from promise_tracker.runtime.kafka import producer_config
from promise_tracker.runtime.settings import Settings
from promise_tracker.schemas.models import CapabilityDeclared, Event, PromiseIssued
from promise_tracker.schemas.parse import parse
from promise_tracker.schemas.reject import Reason, Reject


class InvalidEvent(BadInput):
    """The event breaks the contract; nothing was sent. ``reason`` is the SPEC reason code."""

    def __init__(self, reject: Reject):
        super().__init__(str(reject.reason), reject.message)


class DeliveryFailed(errors.DeliveryFailed):
    """Kafka did not accept some events; ``errors`` lists (event id, error) pairs, one per
    event not written (refused by the broker, or still unacknowledged when flush gave up)."""

    def __init__(self, failures: list[tuple[str, str]], kafka: str = ""):
        where = f" at {kafka}" if kafka else ""
        by_error = Counter(error for _, error in failures)
        shown = "; ".join(f"{count} {error}" for error, count in by_error.most_common(3))
        if len(by_error) > 3:
            shown += f"; {len(by_error) - 3} other errors"
        first = ", ".join(eid for eid, _ in failures[:3]) + (", ..." if len(failures) > 3 else "")
        super().__init__(
            f"{len(failures)} event(s) were not written to Kafka{where}: {shown}; first: {first}"
        )
        self.errors = failures


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _stamp(value: str | dt.datetime | None) -> str:
    if value is None:
        return _now()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


class CheckFailed(errors.PromiseTrackerError):
    """``Emitter.check`` got no answer: the check service is unset, down or refused."""


def _promise_event(
    id: str,
    source: str,
    kind: str,
    channel: str,
    terms: Mapping[str, Any],
    text: str | None = None,
    time: str | dt.datetime | None = None,
    subject: str | None = None,
    expires_at: str | dt.datetime | None = None,
    labels: Mapping[str, str] | None = None,
    relies_on: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``promise.issued`` event of ``Emitter.issue_promise``'s arguments."""
    data: dict[str, Any] = {"kind": kind, "channel": channel, "terms": dict(terms)}
    if relies_on:
        data["relies_on"] = list(relies_on)
    if text is not None:
        data["text"] = text
    if expires_at is not None:
        data["expires_at"] = _stamp(expires_at)
    if labels:
        data["labels"] = dict(labels)
    return Emitter._envelope("promise.issued", id, source, time, subject, data)


def parse_promise(event: Mapping[str, Any]) -> Event:
    """A planned promise, validated as ``send_event`` would (``InvalidEvent`` if not)."""
    parsed = parse(orjson.dumps(event))
    if isinstance(parsed, Reject):
        raise InvalidEvent(parsed)
    return parsed


class Emitter:
    """A Kafka producer that only sends valid promise-tracker events."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        kafka: str | None = None,
        **overrides: Any,
    ):
        self.settings = settings or Settings.from_env()
        config = producer_config(self.settings)
        if kafka is not None:
            config["bootstrap.servers"] = kafka
        config.update(overrides)
        self._producer = Producer(config)
        self._kafka = config["bootstrap.servers"]
        self._errors: list[tuple[str, str]] = []
        self._pending: dict[int, str] = {}  # produced, not acknowledged: number -> event id
        self._produced = 0
        self.sent = 0

    # --- the two events ----------------------------------------------------------------

    def issue_promise(
        self,
        *,
        id: str,
        source: str,
        kind: str,
        channel: str,
        terms: Mapping[str, Any],
        text: str | None = None,
        time: str | dt.datetime | None = None,
        subject: str | None = None,
        expires_at: str | dt.datetime | None = None,
        labels: Mapping[str, str] | None = None,
        relies_on: Sequence[str] | None = None,
    ) -> str:
        """Send a ``promise.issued`` event; returns the promise id. ``relies_on``: the ids
        of the declared capabilities its terms rely on (checked against them when issued)."""
        self.send_event(
            _promise_event(
                id,
                source,
                kind,
                channel,
                terms,
                text,
                time,
                subject,
                expires_at,
                labels,
                relies_on,
            )
        )
        return id

    def declare_capability(
        self,
        *,
        capability: str,
        source: str,
        kind: str,
        id: str | None = None,
        time: str | dt.datetime | None = None,
        text: str | None = None,
        **fields: Any,
    ) -> str:
        """Send a ``capability.declared`` event (docs/contract.md); returns its id (a new
        UUID unless given). ``fields`` are the kind's own: ``window={"closes_at": ...}``;
        ``channels=[...], depends_on=[...]``; ``up=False``. Redeclaring replaces."""
        did = id or str(uuid.uuid4())
        data: dict[str, Any] = {"kind": kind, "capability": capability, **fields}
        if text is not None:
            data["text"] = text
        self.send_event(self._envelope("capability.declared", did, source, time, None, data))
        return did

    def check(
        self,
        *,
        check_url: str | None = None,
        timeout: float = 30.0,
        capabilities: Sequence[Mapping[str, Any]] = (),
        **promise: Any,
    ) -> dict[str, Any]:
        """Can we keep this? The same arguments as ``issue_promise``; nothing is sent to
        Kafka. ``capabilities``: ``capability.declared`` events (a "what if") the promise is
        checked against, sent with it in one request. The planned promise and the
        capabilities are validated here (``InvalidEvent``), then checked by
        ``promise-tracker serve`` at ``check_url`` (default: PROMISE_TRACKER_CHECK_URL, e.g.
        ``http://checks.internal:8000``): the SDK needs no access to ClickHouse. Returns the
        answer of docs/check.md; raises ``CheckFailed`` when there is none."""
        import os
        import urllib.error
        import urllib.request

        event = _promise_event(**promise)
        parse_promise(event)
        for declared in capabilities:
            if type(parse_promise(declared)) is not CapabilityDeclared:
                raise InvalidEvent(
                    Reject(
                        Reason.INVALID_EVENT,
                        f"type: capabilities takes capability.declared events, not "
                        f"{declared.get('type')}",
                        orjson.dumps(declared),
                        declared.get("id"),
                    )
                )
        base = check_url or os.environ.get("PROMISE_TRACKER_CHECK_URL", "")
        if not base:
            raise CheckFailed(
                "no check service: give check_url or set PROMISE_TRACKER_CHECK_URL to the "
                "address of promise-tracker serve (http://host:8000)"
            )
        body = [*capabilities, event] if capabilities else event
        request = urllib.request.Request(
            base.rstrip("/") + "/v1/check",
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return orjson.loads(answer.read())[0]
        except urllib.error.HTTPError as exc:
            raise CheckFailed(f"{base}: HTTP {exc.code}: {exc.read()[:500]!r}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CheckFailed(f"{base} cannot be reached: {exc}") from None

    def observe_delivery(
        self,
        *,
        promise_id: str,
        source: str,
        kind: str,
        value: Mapping[str, Any] | None = None,
        id: str | None = None,
        time: str | dt.datetime | None = None,
        subject: str | None = None,
    ) -> str:
        """Send a ``delivery.observed`` event; returns its id (a new UUID unless given).

        Give your own id when you may send the same observation twice (a retry): the
        worker ignores an exact duplicate.
        """
        oid = id or str(uuid.uuid4())
        data = {"promise_id": promise_id, "kind": kind, "value": dict(value or {})}
        self.send_event(self._envelope("delivery.observed", oid, source, time, subject, data))
        return oid

    @staticmethod
    def _envelope(
        kind: str,
        event_id: str,
        source: str,
        time: str | dt.datetime | None,
        subject: str | None,
        data: dict[str, Any],
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "specversion": "1.0",
            "type": kind,
            "source": source,
            "id": event_id,
            "time": _stamp(time),
        }
        if subject is not None:
            event["subject"] = subject
        event["data"] = data
        return event

    # --- any event -----------------------------------------------------------------------

    def send_event(self, event: Mapping[str, Any] | bytes) -> Event:
        """Validate one CloudEvent (a mapping or its JSON bytes) and send it to its topic;
        returns it parsed."""
        raw = event if isinstance(event, bytes) else orjson.dumps(event)
        parsed = parse(raw)
        if isinstance(parsed, Reject):
            raise InvalidEvent(parsed)
        if type(parsed) is PromiseIssued:
            topic, key = self.settings.issued, parsed.id
        elif type(parsed) is CapabilityDeclared:  # compacted, keyed by capability id
            topic, key = self.settings.capabilities, parsed.data.capability
        else:
            topic, key = self.settings.observed, parsed.data.promise_id  # type: ignore[union-attr]
        self._produce(topic, key.encode(), raw, parsed.id)
        return parsed

    def _produce(self, topic: str, key: bytes, value: bytes, event_id: str) -> None:
        number = self._produced

        def done(err: KafkaError | None, _msg: Message) -> None:
            self._pending.pop(number, None)
            if err is not None:
                self._errors.append((event_id, err.str()))

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=done)
                break
            except BufferError:  # the local queue is full: let the broker catch up
                self._producer.poll(0.05)
        self._pending[number] = event_id
        self._produced += 1
        self._producer.poll(0)
        self.sent += 1

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until Kafka has every event; raise DeliveryFailed for any it refused or did
        not acknowledge within ``timeout`` seconds."""
        if self._producer.flush(timeout):
            unacknowledged = f"not acknowledged within {timeout:g} s (the broker is down or slow)"
            self._errors += [(eid, unacknowledged) for eid in self._pending.values()]
            self._pending.clear()  # not waited for again: a late callback finds none
        if self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryFailed(errors, self._kafka)

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

"""Raw bytes to a typed event or a reject: the only way input enters the system.

Never raises: whatever arrives comes back either as an ``Event`` or as a ``Reject``
carrying the original bytes, a reason code and a message that names the field and
the fix.
"""

from __future__ import annotations

import re

import msgspec

from promise_tracker.schemas.models import (
    CHANNELS,
    EVENT_TYPES,
    OBSERVATION_KINDS,
    PROMISE_KINDS,
    Event,
)
from promise_tracker.schemas.reject import Reason, Reject

MAX_EVENT_BYTES = 1 << 20  # Kafka's default message limit; bigger is never a real event

_decoder = msgspec.json.Decoder(Event)
_PATH = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_INVALID_VALUE = re.compile(r"Invalid value (?P<value>.*)")

_TIMESTAMP = "an RFC 3339 timestamp with an offset, e.g. 2026-11-01T00:00:00Z"
_HINTS: dict[str, str] = {
    "time": _TIMESTAMP,
    "open_until": _TIMESTAMP,
    "due_at": _TIMESTAMP,
    "until": _TIMESTAMP,
    "expires_at": _TIMESTAMP,
    "specversion": 'the string "1.0"',
    "id": "a non-empty string",
    "promise_id": "the id of the promise (1 to 200 characters)",
    "source": "a non-empty string naming the service, e.g. prestige/marketing",
    "channel": "one of " + ", ".join(CHANNELS),
    "channels": "a non-empty list of " + ", ".join(CHANNELS),
    "max_seconds": "a number of seconds greater than 0",
    "within_seconds": "a number of seconds greater than 0",
    "calendar": "the name of a calendar in the calendars file (SPEC 2.1)",
    "max_steps": "an integer of at least 1",
    "goal": "the page name that completes the journey",
    "seconds": "a number of seconds, 0 or more",
    "page": "the page name, a string",
    "available": "true or false",
    "labels": "an object of string to string",
    "capability": "a capability id (1 to 200 characters), e.g. prestige/shop:yearbook-selection",
    "relies_on": "a list of capability ids (capability.declared)",
    "opens_at": _TIMESTAMP,
    "closes_at": _TIMESTAMP,
    "depends_on": "a non-empty list of component ids",
    "text": "the words the customer saw, a string",
    "value": "an object whose shape depends on data.kind (see the JSON Schema)",
    "terms": "an object whose shape depends on data.kind (see the JSON Schema)",
    "data": "an object (the event payload)",
    "type": "one of " + ", ".join(EVENT_TYPES),
}
_PROMISE_ID_HINT = "a promise id: 1 to 200 characters"


class _Envelope(msgspec.Struct):
    """Just the type and id, read again on the error path to tailor the message and say
    which event was rejected."""

    type: object = None
    id: object = None


def _envelope(raw: bytes) -> _Envelope:
    try:
        return msgspec.json.decode(raw, type=_Envelope)
    except (msgspec.DecodeError, RecursionError, msgspec.ValidationError):
        return _Envelope()


def parse(raw: bytes | None, origin: object = None) -> Event | Reject:
    """Decode and validate one CloudEvent (SPEC 1.3). ``None`` is a Kafka record without a
    value (a tombstone): rejected like empty bytes.

    Regression: a null record raised TypeError in the worker, which took its bug path
    (dead-letter, then rebuild the partition from its changelog) once per such record.
    """
    if raw is None:
        return Reject(
            Reason.INVALID_JSON,
            "the message has no value (a null record): send one CloudEvent per message",
            b"",
            origin=origin,
        )
    if len(raw) > MAX_EVENT_BYTES:
        return Reject(
            Reason.INVALID_EVENT,
            f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES} bytes: send smaller events",
            raw,
            origin=origin,
        )
    try:
        raw.decode("utf-8")  # msgspec skips unknown fields without checking their bytes
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return _validation_reject(str(exc), raw, origin)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Reject(Reason.INVALID_JSON, f"not valid UTF-8 JSON: {exc}", raw, origin=origin)
    except RecursionError:
        return Reject(
            Reason.INVALID_EVENT, "JSON nested too deeply to be an event", raw, origin=origin
        )
    except Exception as exc:  # noqa: BLE001 - bad input must never crash a worker
        return Reject(Reason.INVALID_EVENT, f"could not decode event: {exc!r}", raw, origin=origin)


def _validation_reject(error: str, raw: bytes, origin: object) -> Reject:
    envelope = _envelope(raw)
    event_id = envelope.id if isinstance(envelope.id, str) and envelope.id else None
    match = _PATH.match(error)
    what, path = (match["what"], match["path"] or "") if match else (error, "")
    what = what.replace("`float`", "a number").replace("`int`", "an integer")
    field_path = path.lstrip(".")
    missing = _MISSING.match(what)
    if missing:
        field_path = f"{field_path}.{missing['field']}" if field_path else missing["field"]
    leaf = field_path.rsplit(".", 1)[-1].split("[", 1)[0]
    invalid = _INVALID_VALUE.match(what)
    if field_path == "type" and invalid:
        return Reject(
            Reason.UNKNOWN_TYPE,
            f"type {invalid['value']} is not an event type this system reads; "
            f"use one of {', '.join(EVENT_TYPES)}",
            raw,
            event_id,
            origin,
        )
    if field_path == "" and what.startswith("Expected `object`"):
        return Reject(Reason.INVALID_EVENT, f"{what}: an event is a JSON object", raw, None, origin)
    if field_path == "data.kind" and invalid:
        observed = envelope.type == "delivery.observed"
        kinds = ", ".join(OBSERVATION_KINDS if observed else PROMISE_KINDS)
        message = f"data.kind {invalid['value']} is not a known kind; use one of {kinds}"
    elif missing:
        message = f"{field_path} is missing"
    else:
        message = f"{field_path or 'event'}: {what}"
    hint = _HINTS.get(leaf)
    if field_path == "id" and envelope.type == "promise.issued":
        hint = _PROMISE_ID_HINT
    if hint and not (field_path == "data.kind" and invalid):
        message += f"; it must be {hint}"
    return Reject(Reason.INVALID_EVENT, message, raw, event_id, origin)

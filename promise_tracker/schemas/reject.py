"""Rejected input as data: the original bytes, a reason code and a message for humans."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, final

from msgspec import Struct


class Reason(StrEnum):
    """Reason codes of SPEC section 1.3 (plus none of our own)."""

    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_CALENDAR = "unknown_calendar"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    UNKNOWN_PROMISE = "unknown_promise"
    TOO_LATE = "too_late"
    FROM_FUTURE = "from_future"


@final  # not subclassed: callers test type(x) is Reject, and type checkers narrow on it
class Reject(Struct, frozen=True):
    """An input that will not be applied. ``raw`` is exactly what arrived."""

    reason: Reason
    message: str
    raw: bytes
    event_id: str | None = None
    origin: Any = None  # where it came from: (file, line) in a replay

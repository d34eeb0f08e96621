"""Rejected input as data: the original bytes, a reason code and a message for humans."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, final

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


# What each reason means for whoever reads the figures: data they cannot include. One table
# for every summary that explains rejects (the report, the demo); a test holds it complete.
REASON_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        Reason.INVALID_JSON: "not JSON: a truncated message, an error page",
        Reason.INVALID_EVENT: "JSON, but not a valid event: a field missing or wrong",
        Reason.UNKNOWN_TYPE: "an event type this system does not read",
        Reason.UNKNOWN_CALENDAR: "a promise counted in a business calendar that is not configured",
        Reason.CONFLICTING_DUPLICATE: "an id sent again with other content",
        Reason.UNKNOWN_PROMISE: "an observation for a promise that never came (waited a day)",
        Reason.TOO_LATE: "too old to change a verdict (older than the retention)",
        Reason.FROM_FUTURE: "dated more than 5 minutes ahead of the clock",
    }
)


@final  # not subclassed: callers test type(x) is Reject, and type checkers narrow on it
class Reject(Struct, frozen=True):
    """An input that will not be applied. ``raw`` is exactly what arrived."""

    reason: Reason
    message: str
    raw: bytes
    event_id: str | None = None
    origin: Any = None  # where it came from: (file, line) in a replay

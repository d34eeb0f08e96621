"""Typed models of the event contract (SPEC section 1): the one source of truth.

The JSON Schema files under ``promise_tracker/schemas/json/`` are generated from these structs
(``promise-tracker schemas --write``), so emitters in other languages and this
decoder can never disagree. msgspec decodes and validates in one C pass, which is
what lets parsing stay a small share of the hot path (see docs/performance.md).

Every struct is ``gc=False``: they hold no reference cycles, and keeping hundreds of
thousands of live events out of the cyclic garbage collector's scans was the largest
single gain in replay throughput (45k -> ~62k events/s on the benchmark stream).

Subclasses restate ``frozen=True``: msgspec inherits it, type checkers do not.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

# RFC 3339 with an explicit offset; a naive timestamp is rejected.
Timestamp = Annotated[
    dt.datetime,
    Meta(tz=True, description="RFC 3339 timestamp with an offset, e.g. 2026-11-01T00:00:00Z"),
]
# SPEC bounds promise ids (1..200 chars); CloudEvents asks every id and source to be
# non-empty. Nothing else is bounded here: the 1 MiB event limit (schemas/parse.py) bounds it.
PromiseId = Annotated[str, Meta(min_length=1, max_length=200)]
EventId = Annotated[str, Meta(min_length=1)]
Channel = Literal["email", "card", "web", "app", "sms", "phone", "mail", "in_person", "other"]
Labels = dict[str, str]
CapabilityId = Annotated[str, Meta(min_length=1, max_length=200)]

CHANNELS: tuple[str, ...] = Channel.__args__  # type: ignore[attr-defined]
PROMISE_KINDS = ("deadline", "max_wait", "max_steps", "deliver_by", "channels_available")
OBSERVATION_KINDS = (
    "deadline_enforced",
    "access_denied",
    "hold_time",
    "page_reached",
    "delivered",
    "channel_status",
    "cancelled",
    "paused",
    "resumed",
)


# --- promise.issued: terms by kind ---------------------------------------------------


class DeadlineTerms(Struct, frozen=True, gc=False):
    open_until: Timestamp


class MaxWaitTerms(Struct, frozen=True, gc=False):
    max_seconds: Annotated[float, Meta(gt=0)]


class MaxStepsTerms(Struct, frozen=True, gc=False):
    max_steps: Annotated[int, Meta(ge=1)]
    goal: str


class DeliverByTerms(Struct, frozen=True, gc=False):
    """Either an absolute ``due_at`` or (v2) ``within_seconds`` of clock time after the promise
    was made, on a business ``calendar`` (SPEC 2.1; absent: round the clock), stopped while
    paused. UNSET, not None: a key written as null is invalid, not absent."""

    due_at: Timestamp | UnsetType = UNSET
    within_seconds: Annotated[float, Meta(gt=0)] | UnsetType = UNSET
    calendar: Annotated[str, Meta(min_length=1)] | UnsetType = UNSET

    def __post_init__(self) -> None:
        if (self.due_at is UNSET) == (self.within_seconds is UNSET):
            raise ValueError("give exactly one of due_at and within_seconds")
        if self.calendar is not UNSET and self.within_seconds is UNSET:
            raise ValueError("calendar goes only with within_seconds, not with due_at")


class ChannelsTerms(Struct, frozen=True, gc=False):
    channels: Annotated[list[Channel], Meta(min_length=1)]
    until: Timestamp


class _PromiseData(Struct, frozen=True, gc=False, kw_only=True, tag_field="kind"):
    channel: Channel
    expires_at: Timestamp | None = None
    text: str | None = None
    labels: Labels | None = None
    # the declared capabilities its terms rely on (capability.declared ids): checked at once
    relies_on: list[CapabilityId] | None = None


class DeadlineData(_PromiseData, frozen=True, tag="deadline"):
    terms: DeadlineTerms


class MaxWaitData(_PromiseData, frozen=True, tag="max_wait"):
    terms: MaxWaitTerms


class MaxStepsData(_PromiseData, frozen=True, tag="max_steps"):
    terms: MaxStepsTerms


class DeliverByData(_PromiseData, frozen=True, tag="deliver_by"):
    terms: DeliverByTerms


class ChannelsData(_PromiseData, frozen=True, tag="channels_available"):
    terms: ChannelsTerms


PromiseData = DeadlineData | MaxWaitData | MaxStepsData | DeliverByData | ChannelsData


# --- delivery.observed: value by kind -------------------------------------------------


class NoValue(Struct, frozen=True, gc=False):
    pass


class ReasonValue(Struct, frozen=True, gc=False):
    reason: str | None = None


class HoldTimeValue(Struct, frozen=True, gc=False):
    seconds: Annotated[float, Meta(ge=0)]


class PageValue(Struct, frozen=True, gc=False):
    page: str


class ChannelStatusValue(Struct, frozen=True, gc=False):
    channel: Channel
    available: bool


class _ObservationData(Struct, frozen=True, gc=False, kw_only=True, tag_field="kind"):
    promise_id: PromiseId


class DeadlineEnforced(_ObservationData, frozen=True, tag="deadline_enforced"):
    value: NoValue


class AccessDenied(_ObservationData, frozen=True, tag="access_denied"):
    value: ReasonValue


class HoldTime(_ObservationData, frozen=True, tag="hold_time"):
    value: HoldTimeValue


class PageReached(_ObservationData, frozen=True, tag="page_reached"):
    value: PageValue


class Delivered(_ObservationData, frozen=True, tag="delivered"):
    value: NoValue


class ChannelStatus(_ObservationData, frozen=True, tag="channel_status"):
    value: ChannelStatusValue


class Cancelled(_ObservationData, frozen=True, tag="cancelled"):
    value: ReasonValue


class Paused(_ObservationData, frozen=True, tag="paused"):
    """v2: the clock of a ``within_seconds`` promise stops (the business waits on the customer)."""

    value: ReasonValue


class Resumed(_ObservationData, frozen=True, tag="resumed"):
    value: NoValue


ObservationData = (
    DeadlineEnforced
    | AccessDenied
    | HoldTime
    | PageReached
    | Delivered
    | ChannelStatus
    | Cancelled
    | Paused
    | Resumed
)


# --- the CloudEvents envelopes --------------------------------------------------------


class _CloudEvent(Struct, frozen=True, gc=False, kw_only=True, tag_field="type"):
    specversion: Literal["1.0"]
    source: Annotated[str, Meta(min_length=1)]
    id: EventId
    time: Timestamp
    subject: str | None = None
    datacontenttype: str | None = None


class PromiseIssued(_CloudEvent, frozen=True, tag="promise.issued"):
    """A promise made to a customer; ``id`` is the promise id."""

    id: PromiseId
    data: PromiseData


class DeliveryObserved(_CloudEvent, frozen=True, tag="delivery.observed"):
    """What operations actually did; ``id`` is the observation id."""

    data: ObservationData


# --- capability.declared: what an operational system says it will do -------------------


class WindowTerms(Struct, frozen=True, gc=False):
    """When an operation is open: from ``opens_at`` (inclusive) until ``closes_at``."""

    opens_at: Timestamp | None = None
    closes_at: Timestamp | None = None

    def __post_init__(self) -> None:
        if self.opens_at is None and self.closes_at is None:
            raise ValueError("give opens_at, closes_at or both")
        if self.opens_at is not None and self.closes_at is not None:
            if self.closes_at <= self.opens_at:
                raise ValueError("closes_at must be after opens_at")


class _CapabilityData(Struct, frozen=True, gc=False, kw_only=True, tag_field="kind"):
    capability: CapabilityId  # e.g. prestige/shop:yearbook-selection; redeclaring replaces it
    text: str | None = None  # what it is, in words


class WindowCapability(_CapabilityData, frozen=True, tag="window"):
    window: WindowTerms


class DependencyCapability(_CapabilityData, frozen=True, tag="dependency"):
    """Channels that work only while every listed component works."""

    channels: Annotated[list[Channel], Meta(min_length=1)]
    depends_on: Annotated[list[CapabilityId], Meta(min_length=1)]


class StatusCapability(_CapabilityData, frozen=True, tag="status"):
    """A component's status from ``time`` on (``capability`` is the component's id): up
    until a later status says otherwise."""

    up: bool


class CapabilityDeclared(_CloudEvent, frozen=True, tag="capability.declared"):
    """A capability as declared at ``time``; the latest declaration in force wins."""

    data: WindowCapability | DependencyCapability | StatusCapability


Event = PromiseIssued | DeliveryObserved | CapabilityDeclared
EVENT_TYPES = ("promise.issued", "delivery.observed", "capability.declared")


def kind_of(promise: PromiseIssued) -> str:
    """The promise's kind, as written in ``data.kind``."""
    return type(promise.data).__struct_config__.tag  # type: ignore[return-value]


# --- promise.violated: what the engine emits ------------------------------------------


class ViolationRecord(Struct, frozen=True, gc=False, kw_only=True):
    """One emission of a violation (SPEC section 4). Times are Unix seconds (UTC).

    The last emission per ``violation_id`` is the truth; ``state`` says whether it is
    ``active`` or ``retracted``.
    """

    violation_id: str
    promise_id: str
    service: str
    channel: str
    subject: str | None
    kind: str
    reason: str
    expected: str
    observed: str
    excess: float | int | None
    unit: Literal["seconds", "steps"] | None
    occurred_at: float
    detected_at: float
    observation_id: str | None
    observed_by: str | None
    promise_text: str | None
    labels: dict[str, str]
    state: Literal["active", "retracted"]
    # the contradiction warning that said, before it happened, that this would break
    predicted_by: str | None = None


class ViolationEvent(Struct, frozen=True, gc=False, kw_only=True):
    """The CloudEvent carrying a violation on ``promises.violations``."""

    specversion: Literal["1.0"] = "1.0"
    type: Literal["promise.violated"] = "promise.violated"
    source: str
    id: str
    time: Timestamp
    subject: str
    datacontenttype: str = "application/json"
    data: ViolationRecord


class WarningRecord(Struct, frozen=True, gc=False, kw_only=True):
    """One emission of an at-risk warning (SPEC 4.1). Times are Unix seconds (UTC).

    ``due_at`` and ``time_left`` are null for the ``steps`` label and while the promise's
    due time is infinite (paused); ``outcome`` is the promise's status once ``resolved``.
    The last emission per ``warning_id`` is the truth.
    """

    warning_id: str
    promise_id: str
    service: str
    channel: str
    subject: str | None
    kind: str
    label: str
    warn_at: float
    due_at: float | None
    time_left: float | None
    promise_text: str | None
    labels: dict[str, str]
    state: Literal["active", "resolved", "retracted"]
    outcome: Literal["kept", "broken", "expired", "cancelled"] | None
    detected_at: float
    # a contradiction: the promise's words and the capability's, side by side
    detail: str | None = None


class WarningEvent(Struct, frozen=True, gc=False, kw_only=True):
    """The CloudEvent carrying a warning on ``promises.warnings``."""

    specversion: Literal["1.0"] = "1.0"
    type: Literal["promise.at_risk"] = "promise.at_risk"
    source: str
    id: str
    time: Timestamp
    subject: str
    datacontenttype: str = "application/json"
    data: WarningRecord


class OutcomeRecord(Struct, frozen=True, gc=False, kw_only=True):
    """A promise's outcome (SPEC section 3). Times are Unix seconds (UTC)."""

    promise_id: str
    status: Literal["open", "kept", "broken", "expired", "cancelled"]
    closed_at: float | None
    kind: str
    service: str
    channel: str
    subject: str | None
    issued_at: float
    text: str | None
    labels: dict[str, str]
    # What "can we keep this?" (docs/check.md) needs; None in records written before them.
    # terms: the promise's terms as written (times as RFC 3339 text)
    terms: dict[str, object] | None = None
    # what was measured: hold_seconds, delivery_seconds, steps_to_goal, early_seconds or
    # up_seconds; allowed: what the terms allowed, in the same unit; measured: its value
    # (None: nothing measured, e.g. never delivered, goal never reached, no outage seen)
    measure: str | None = None
    allowed: float | None = None
    measured: float | None = None

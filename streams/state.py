"""Per-promise state: the promise and a few order-independent summaries of its observations.

Every summary is "the earliest X" in (time, id) order, so applying observations in any
order gives the same state; cancellation is applied when the verdict is computed (an
observation counts only if it is earlier than the earliest cancellation).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from msgspec import Struct

from schemas.models import (
    AccessDenied,
    Cancelled,
    ChannelsData,
    ChannelStatus,
    DeadlineData,
    DeadlineEnforced,
    DeliverByData,
    Delivered,
    DeliveryObserved,
    HoldTime,
    MaxStepsData,
    MaxWaitData,
    PageReached,
    PromiseIssued,
)

INF = math.inf


class Seen(NamedTuple):
    """An observation as the rules need it; tuples order by (time, id), as SPEC ties do."""

    time: float
    id: str
    source: str
    detail: str  # what happened, in words
    amount: float = 0.0  # hold_time: the seconds held


class PromiseState(Struct, kw_only=True):
    """Everything the engine keeps about one promise."""

    promise: PromiseIssued
    issued: float
    close: float | None  # T of SPEC section 3: when absence rules may fire
    obs_ids: list[str] = []
    cancel: Seen | None = None  # earliest cancellation
    first: Seen | None = None  # earliest enforcement / hold / goal view / delivery
    exceed: Seen | None = None  # max_wait: earliest hold over the limit
    views: list[tuple[float, str]] = []  # max_steps: every page view
    down: dict[str, Seen] = {}  # channels_available: earliest outage per listed channel
    status: str = "open"
    closed_at: float | None = None
    emitted: dict[str, tuple[tuple, object]] = {}  # discriminator -> (content key, record)

    @property
    def cancelled_at(self) -> float:
        return self.cancel.time if self.cancel is not None else INF


def close_time(promise: PromiseIssued) -> float | None:
    """T of SPEC section 3 for this promise, or None when it has none."""
    data = promise.data
    if isinstance(data, DeadlineData):
        return data.terms.open_until.timestamp()
    if isinstance(data, DeliverByData):
        return data.terms.due_at.timestamp()
    if isinstance(data, ChannelsData):
        return data.terms.until.timestamp()
    return data.expires_at.timestamp() if data.expires_at is not None else None


def new_state(promise: PromiseIssued) -> PromiseState:
    return PromiseState(promise=promise, issued=promise.time.timestamp(), close=close_time(promise))


def _earlier(new: Seen, old: Seen | None) -> bool:
    return old is None or (new.time, new.id) < (old.time, old.id)


def apply(state: PromiseState, obs: DeliveryObserved, t: float) -> None:
    """Fold one (new, deduplicated) observation into the summaries."""
    state.obs_ids.append(obs.id)
    data = obs.data
    pdata = state.promise.data
    if isinstance(data, Cancelled):
        seen = Seen(t, obs.id, obs.source, "cancelled" + _reason(data.value.reason))
        if _earlier(seen, state.cancel):
            state.cancel = seen
        return
    if isinstance(pdata, DeadlineData):
        if isinstance(data, (DeadlineEnforced, AccessDenied)) and t < state.close:  # type: ignore[operator]
            if isinstance(data, AccessDenied):
                detail = "access_denied" + _reason(data.value.reason)
            else:
                detail = "deadline_enforced"
            seen = Seen(t, obs.id, obs.source, detail)
            if _earlier(seen, state.first):
                state.first = seen
    elif isinstance(pdata, MaxWaitData):
        if isinstance(data, HoldTime):
            seconds = data.value.seconds
            seen = Seen(t, obs.id, obs.source, "hold_time", float(seconds))
            if _earlier(seen, state.first):
                state.first = seen
            if seconds > pdata.terms.max_seconds and _earlier(seen, state.exceed):
                state.exceed = seen
    elif isinstance(pdata, MaxStepsData):
        if isinstance(data, PageReached):
            state.views.append((t, obs.id))
            if data.value.page == pdata.terms.goal:
                seen = Seen(t, obs.id, obs.source, data.value.page)
                if _earlier(seen, state.first):
                    state.first = seen
    elif isinstance(pdata, DeliverByData):
        if isinstance(data, Delivered):
            seen = Seen(t, obs.id, obs.source, "delivered")
            if _earlier(seen, state.first):
                state.first = seen
    elif isinstance(pdata, ChannelsData):
        if (
            isinstance(data, ChannelStatus)
            and not data.value.available
            and data.value.channel in pdata.terms.channels
            and state.issued <= t < state.close  # type: ignore[operator]
        ):
            seen = Seen(t, obs.id, obs.source, data.value.channel)
            if _earlier(seen, state.down.get(data.value.channel)):
                state.down[data.value.channel] = seen


def _reason(reason: str | None) -> str:
    return f" ({reason})" if reason else ""

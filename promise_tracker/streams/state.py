"""Per-promise state: the promise and a few order-independent summaries of its observations.

The summaries are "the earliest X" in (time, id) order, plus the sorted page views of a
max_steps promise, so applying observations in any order gives the same state. Cancellation
is applied when the verdict is computed (an observation counts only if it is earlier than
the earliest cancellation).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

from msgspec import UNSET, Struct

from promise_tracker.schemas.models import (
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
    Paused,
    PromiseIssued,
    Resumed,
    ViolationRecord,
    WarningRecord,
)

INF = math.inf
DEADLINE, MAX_WAIT, MAX_STEPS, DELIVER_BY, CHANNELS = range(5)
KIND_INDEX = {
    DeadlineData: DEADLINE,
    MaxWaitData: MAX_WAIT,
    MaxStepsData: MAX_STEPS,
    DeliverByData: DELIVER_BY,
    ChannelsData: CHANNELS,
}


class Seen(Struct, frozen=True, gc=False, order=True):
    """An observation as the rules need it. Orders by (time, id), as SPEC ties do (ids are
    unique, so the fields after them never decide)."""

    time: float
    id: str
    source: str
    detail: str  # what happened, in words
    amount: float = 0.0  # hold_time: the seconds held


class Finding(Struct, frozen=True, gc=False):
    """One violation as the rules see it; the engine turns it into an emission.

    Equal findings mean an unchanged violation, so a re-evaluation emits nothing.
    """

    reason: str
    occurred_at: float
    excess: float | int | None
    unit: str | None
    seen: Seen | None  # the deciding observation, if one decided
    count: int = 0  # max_steps: page views up to the goal


class Alert(Struct, frozen=True, gc=False, array_like=True):
    """One at-risk warning as the rules see it (SPEC 4.1); equal alerts emit nothing new."""

    warn_at: float
    due_at: float | None
    time_left: float | None
    state: str  # active or resolved
    outcome: str | None
    detail: str | None = None  # a contradiction's words


class PromiseState(Struct, kw_only=True, gc=False, omit_defaults=True):
    """Everything the engine keeps about one promise (no cycles: kept out of the GC's scans)."""

    promise: PromiseIssued
    kind: int  # DEADLINE .. CHANNELS: picks the fold and the rule without isinstance chains
    issued: float
    close_time: float | None  # T of SPEC section 3: when absence rules may fire
    # Containers start as None: most promises never need them, and every
    # allocated list or dict is one more object for the garbage collector to scan.
    obs_ids: list[str] | None = None  # forgotten with the promise
    cancel: Seen | None = None  # earliest cancellation
    first: Seen | None = None  # earliest enforcement / hold / goal view / delivery
    exceed: Seen | None = None  # max_wait: earliest hold over the limit
    views: list[tuple[float, str]] | None = None  # max_steps: every page view, sorted
    down: dict[str, Seen] | None = None  # channels_available: earliest outage per channel
    # deliver_by within_seconds: (time, id, paused?) of every pause and resume at or after
    # the issued time, sorted; the clock (streams/clock.py) folds them into D
    marks: list[tuple[float, str, bool]] | None = None
    status: str = "open"
    closed_at: float | None = None
    # discriminator -> (finding, last emitted record)
    emitted: dict[str, tuple[Finding, ViolationRecord]] | None = None
    # label -> (what the warning says, last emitted record) (SPEC 4.1)
    warned: dict[str, tuple[Alert, WarningRecord]] | None = None
    warn_wake: float | None = None  # the watermark at which a warning next changes
    # (allowed, measured) as the last outcome emitted said them (streams/records.py)
    measures: tuple[float | None, float | None] | None = None

    @property
    def cancelled_at(self) -> float:
        return self.cancel.time if self.cancel is not None else INF


def new_state(promise: PromiseIssued, issued: float) -> PromiseState:
    data = promise.data
    kind = KIND_INDEX[type(data)]
    if kind == DEADLINE:
        close: float | None = data.terms.open_until.timestamp()  # type: ignore[union-attr]
    elif kind == DELIVER_BY:
        due = data.terms.due_at  # type: ignore[union-attr]
        # within_seconds: D comes from the clock, which the engine sets (it holds calendars)
        close = None if due is UNSET else due.timestamp()
    elif kind == CHANNELS:
        close = data.terms.until.timestamp()  # type: ignore[union-attr]
    else:
        close = data.expires_at.timestamp() if data.expires_at is not None else None
    return PromiseState(promise=promise, kind=kind, issued=issued, close_time=close)


def _earlier(new: Seen, old: Seen | None) -> bool:
    return old is None or new < old


def apply(state: PromiseState, obs: DeliveryObserved, t: float) -> bool:
    """Fold one new observation into the summaries; False when no verdict can change."""
    if state.obs_ids is None:
        state.obs_ids = [obs.id]
    else:
        state.obs_ids.append(obs.id)
    data = obs.data
    if type(data) is Cancelled:
        seen = Seen(t, obs.id, obs.source, "cancelled")
        if _earlier(seen, state.cancel):
            state.cancel = seen
            return True
        return False
    return _FOLDS[state.kind](state, obs, data, t)


def _fold_deadline(state: PromiseState, obs: DeliveryObserved, data: object, t: float) -> bool:
    cls = type(data)
    if (cls is DeadlineEnforced or cls is AccessDenied) and t < state.close_time:  # type: ignore[operator]
        if cls is AccessDenied and data.value.reason:  # type: ignore[attr-defined]
            detail = f"access_denied ({data.value.reason})"  # type: ignore[attr-defined]
        else:
            detail = data.__struct_config__.tag  # type: ignore[attr-defined]
        seen = Seen(t, obs.id, obs.source, detail)
        if _earlier(seen, state.first):
            state.first = seen
            return True
    return False


def _fold_max_wait(state: PromiseState, obs: DeliveryObserved, data: object, t: float) -> bool:
    if type(data) is not HoldTime:
        return False
    seconds = float(data.value.seconds)
    seen = Seen(t, obs.id, obs.source, "hold_time", seconds)
    changed = False
    if _earlier(seen, state.first):
        state.first = seen
        changed = True
    if seconds > state.promise.data.terms.max_seconds and _earlier(seen, state.exceed):  # type: ignore[union-attr]
        state.exceed = seen
        changed = True
    return changed


def _fold_max_steps(state: PromiseState, obs: DeliveryObserved, data: object, t: float) -> bool:
    if type(data) is not PageReached:
        return False
    view = (t, obs.id)
    if state.views is None:
        state.views = [view]
        position = 0
    else:
        position = bisect.bisect(state.views, view)  # sorted: steps to the goal are one bisect
        state.views.insert(position, view)
    g = state.first
    terms = state.promise.data.terms
    if data.value.page == terms.goal:  # type: ignore[union-attr]
        seen = Seen(t, obs.id, obs.source, data.value.page)
        if _earlier(seen, g):
            state.first = seen
            return True
    # it counts toward the steps to the goal, or moves the N-th view (the steps warning)
    return (g is not None and view <= (g.time, g.id)) or position < terms.max_steps  # type: ignore[union-attr]


def clocked(state: PromiseState) -> bool:
    """A deliver_by whose D comes from the clock of SPEC 3 (within_seconds)."""
    return state.kind == DELIVER_BY and state.promise.data.terms.within_seconds is not UNSET  # type: ignore[union-attr]


def _fold_deliver_by(state: PromiseState, obs: DeliveryObserved, data: object, t: float) -> bool:
    cls = type(data)
    if cls is Paused or cls is Resumed:
        # only a within_seconds clock stops; earlier than the promise, nothing to stop
        if t < state.issued or not clocked(state):
            return False
        mark = (t, obs.id, cls is Paused)
        if state.marks is None:
            state.marks = [mark]
        else:
            bisect.insort(state.marks, mark)
        return True
    if cls is not Delivered:
        return False
    seen = Seen(t, obs.id, obs.source, "delivered")
    if _earlier(seen, state.first):
        state.first = seen
        return True
    return False


def _fold_channels(state: PromiseState, obs: DeliveryObserved, data: object, t: float) -> bool:
    if type(data) is not ChannelStatus or data.value.available:
        return False
    channel = data.value.channel
    if channel not in state.promise.data.terms.channels:  # type: ignore[union-attr]
        return False
    if not state.issued <= t < state.close_time:  # type: ignore[operator]
        return False
    seen = Seen(t, obs.id, obs.source, channel)
    if state.down is None:
        state.down = {channel: seen}
        return True
    if _earlier(seen, state.down.get(channel)):
        state.down[channel] = seen
        return True
    return False


_FOLDS: tuple[Callable[[PromiseState, DeliveryObserved, object, float], bool], ...] = (
    _fold_deadline,
    _fold_max_wait,
    _fold_max_steps,
    _fold_deliver_by,
    _fold_channels,
)

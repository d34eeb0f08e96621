"""The verdict of SPEC section 3: a pure function of a promise's state and the watermark."""

from __future__ import annotations

from typing import NamedTuple

from schemas.models import ChannelsData, DeadlineData, DeliverByData, MaxStepsData, MaxWaitData
from streams.state import INF, PromiseState, Seen


class Finding(NamedTuple):
    """One violation as the rules see it; the engine turns it into an emission.

    Equal findings mean an unchanged violation, so a re-evaluation emits nothing.
    """

    reason: str
    occurred_at: float
    excess: float | int | None
    unit: str | None
    seen: Seen | None  # the deciding observation, if one decided
    count: int = 0  # max_steps: page views up to the goal


class Verdict(NamedTuple):
    status: str  # open, kept, broken, expired, cancelled
    closed_at: float | None
    findings: dict[str, Finding]  # discriminator -> finding


OPEN = Verdict("open", None, {})


def verdict(state: PromiseState, watermark: float) -> Verdict:
    data = state.promise.data
    if isinstance(data, DeadlineData):
        return _deadline(state, watermark)
    if isinstance(data, MaxWaitData):
        return _max_wait(state, data, watermark)
    if isinstance(data, MaxStepsData):
        return _max_steps(state, data, watermark)
    if isinstance(data, DeliverByData):
        return _deliver_by(state, watermark)
    assert isinstance(data, ChannelsData)
    return _channels(state, watermark)


def _cancelled(state: PromiseState) -> Verdict | None:
    """Cancelled when c < T (T absent: c < infinity), else None: absence rules may decide."""
    c, close = state.cancelled_at, state.close
    if c < (close if close is not None else INF):
        return Verdict("cancelled", c, {})
    return None


def _deadline(state: PromiseState, w: float) -> Verdict:
    until = state.close
    assert until is not None
    e = state.first
    if e is not None and e.time < state.cancelled_at:
        finding = Finding("enforced_early", e.time, until - e.time, "seconds", e)
        return Verdict("broken", e.time, {"": finding})
    return _cancelled(state) or (Verdict("kept", until, {}) if w >= until else OPEN)


def _max_wait(state: PromiseState, data: MaxWaitData, w: float) -> Verdict:
    c = state.cancelled_at
    x = state.exceed
    if x is not None and x.time < c:
        finding = Finding("wait_exceeded", x.time, x.amount - data.terms.max_seconds, "seconds", x)
        return Verdict("broken", x.time, {"": finding})
    if state.first is not None and state.first.time < c:
        return Verdict("kept", state.first.time, {})
    cancelled = _cancelled(state)
    if cancelled:
        return cancelled
    if state.close is not None and w >= state.close:
        return Verdict("expired", state.close, {})
    return OPEN


def _max_steps(state: PromiseState, data: MaxStepsData, w: float) -> Verdict:
    g = state.first
    if g is not None and g.time < state.cancelled_at:
        bound = (g.time, g.id)
        count = sum(1 for view in state.views if view <= bound)
        limit = data.terms.max_steps
        if count > limit:
            finding = Finding("too_many_steps", g.time, count - limit, "steps", g, count)
            return Verdict("broken", g.time, {"": finding})
        return Verdict("kept", g.time, {})
    cancelled = _cancelled(state)
    if cancelled:
        return cancelled
    if state.close is not None and w >= state.close:
        finding = Finding("goal_not_reached", state.close, None, None, None)
        return Verdict("broken", state.close, {"": finding})
    return OPEN


def _deliver_by(state: PromiseState, w: float) -> Verdict:
    due = state.close
    assert due is not None
    d = state.first
    if d is not None and d.time < state.cancelled_at:
        if d.time <= due:
            return Verdict("kept", d.time, {})
        finding = Finding("delivered_late", due, d.time - due, "seconds", d)
        return Verdict("broken", due, {"": finding})
    cancelled = _cancelled(state)
    if cancelled:
        return cancelled
    if w >= due:
        return Verdict("broken", due, {"": Finding("not_delivered", due, None, None, None)})
    return OPEN


def _channels(state: PromiseState, w: float) -> Verdict:
    until = state.close
    assert until is not None
    c = state.cancelled_at
    findings = {
        channel: Finding("channel_unavailable", seen.time, None, None, seen)
        for channel, seen in state.down.items()
        if seen.time < c
    }
    if findings:
        return Verdict("broken", min(f.occurred_at for f in findings.values()), findings)
    return _cancelled(state) or (Verdict("kept", until, {}) if w >= until else OPEN)

"""The verdict of SPEC section 3: a pure function of a promise's state and the watermark."""

from __future__ import annotations

import bisect
from collections.abc import Callable

from promise_tracker.streams.state import INF, Finding, PromiseState, Seen

__all__ = ["Finding", "Verdict", "verdict"]


# (status, closed_at, findings): status is open, kept, broken, expired or cancelled;
# findings maps a discriminator (a channel, or "") to a Finding. A plain tuple: it is made
# on every evaluation.
Verdict = tuple[str, "float | None", "dict[str, Finding]"]

OPEN: Verdict = ("open", None, {})


def verdict(state: PromiseState, watermark: float) -> Verdict:
    return _RULES[state.kind](state, watermark)


def channels_verdict(state: PromiseState, w: float, outages: dict[str, Seen]) -> Verdict:
    """channels_available with outages from outside its own observations (a component its
    channels depend on was down): the earlier outage per channel counts."""
    return _channels(state, w, outages)


def _cancelled(state: PromiseState) -> Verdict | None:
    """Cancelled when c < T (T absent: c < infinity), else None: absence rules may decide."""
    c, close = state.cancelled_at, state.close_time
    if c < (close if close is not None else INF):
        return ("cancelled", c, {})
    return None


def _deadline(state: PromiseState, w: float) -> Verdict:
    until = state.close_time
    assert until is not None
    e = state.first
    if e is not None and e.time < state.cancelled_at:
        finding = Finding("enforced_early", e.time, until - e.time, "seconds", e)
        return ("broken", e.time, {"": finding})
    return _cancelled(state) or (("kept", until, {}) if w >= until else OPEN)


def _max_wait(state: PromiseState, w: float) -> Verdict:
    c = state.cancelled_at
    x = state.exceed
    if x is not None and x.time < c:
        limit = state.promise.data.terms.max_seconds  # type: ignore[union-attr]
        finding = Finding("wait_exceeded", x.time, x.amount - limit, "seconds", x)
        return ("broken", x.time, {"": finding})
    if state.first is not None and state.first.time < c:
        return ("kept", state.first.time, {})
    cancelled = _cancelled(state)
    if cancelled:
        return cancelled
    if state.close_time is not None and w >= state.close_time:
        return ("expired", state.close_time, {})
    return OPEN


def _max_steps(state: PromiseState, w: float) -> Verdict:
    g = state.first
    if g is not None and g.time < state.cancelled_at:
        bound = (g.time, g.id)
        count = bisect.bisect_right(state.views or (), bound)  # views are kept sorted
        limit = state.promise.data.terms.max_steps  # type: ignore[union-attr]
        if count > limit:
            finding = Finding("too_many_steps", g.time, count - limit, "steps", g, count)
            return ("broken", g.time, {"": finding})
        return ("kept", g.time, {})
    cancelled = _cancelled(state)
    if cancelled:
        return cancelled
    if state.close_time is not None and w >= state.close_time:
        finding = Finding("goal_not_reached", state.close_time, None, None, None)
        return ("broken", state.close_time, {"": finding})
    return OPEN


def _deliver_by(state: PromiseState, w: float) -> Verdict:
    due = state.close_time
    if due is None:  # within_seconds, paused for good: D is infinite
        due = INF
    d = state.first
    if d is not None and d.time < state.cancelled_at:
        if d.time <= due:
            return ("kept", d.time, {})
        finding = Finding("delivered_late", due, d.time - due, "seconds", d)
        return ("broken", due, {"": finding})
    cancelled = _cancelled(state)
    if cancelled:
        return cancelled
    if w >= due:
        return ("broken", due, {"": Finding("not_delivered", due, None, None, None)})
    return OPEN


def _channels(state: PromiseState, w: float, outages: dict[str, Seen] | None = None) -> Verdict:
    until = state.close_time
    assert until is not None
    c = state.cancelled_at
    down = state.down or {}
    if outages:
        down = dict(down)
        for channel, seen in outages.items():
            if channel not in down or seen < down[channel]:
                down[channel] = seen
    findings = {
        channel: Finding("channel_unavailable", seen.time, None, None, seen)
        for channel, seen in down.items()
        if seen.time < c
    }
    if findings:
        return ("broken", min(f.occurred_at for f in findings.values()), findings)
    return _cancelled(state) or (("kept", until, {}) if w >= until else OPEN)


_RULES: tuple[Callable[[PromiseState, float], Verdict], ...] = (
    _deadline,
    _max_wait,
    _max_steps,
    _deliver_by,
    _channels,
)

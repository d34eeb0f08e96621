"""Declared capabilities and the contradictions between them and a promise's terms.

Pure. A capability is what an operational system says it will do (``capability.declared``):
a window in which an operation is open. Declarations are kept per capability id in (time,
id) order; the one in force at an instant is the latest at or before it, so the answer does
not depend on the order in which declarations arrive. A promise that ``relies_on`` a
capability contradicts it when its terms cannot be kept under the declaration in force: a
deadline later than the window closes (or a window that opens only after the promise was
made), a delivery due before the window opens, a channel promised available after the
window closes.
"""

from __future__ import annotations

import bisect
import datetime as dt
from typing import NamedTuple

from promise_tracker.schemas.models import (
    ChannelsData,
    DeadlineData,
    DeliverByData,
    WindowCapability,
)
from promise_tracker.streams.state import PromiseState

CONTRADICTION = "contradiction:"  # warning label prefix; the capability id follows


class Declaration(NamedTuple):
    time: float
    id: str
    data: object  # WindowCapability | DependencyCapability


class Contradiction(NamedTuple):
    """One capability a promise cannot be kept under, from ``since`` until ``resolved_at``
    (a later declaration under which it can; None while none has come)."""

    capability: str
    since: float
    resolved_at: float | None
    detail: str


class Capabilities:
    """Every declaration of every capability, in (time, id) order per capability."""

    def __init__(self) -> None:
        self.declared: dict[str, list[Declaration]] = {}

    def declare(self, capability: str, declaration: Declaration) -> None:
        history = self.declared.setdefault(capability, [])
        bisect.insort(history, declaration, key=lambda d: (d.time, d.id))

    def contradictions(self, state: PromiseState) -> list[Contradiction]:
        """The capabilities this promise relies on that contradict its terms, each with
        the first episode at or after the promise was made."""
        found = []
        for capability in dict.fromkeys(state.promise.data.relies_on or ()):
            history = self.declared.get(capability)
            if history:
                episode = _episode(state, capability, history)
                if episode is not None:
                    found.append(episode)
        return found


def _episode(
    state: PromiseState, capability: str, history: list[Declaration]
) -> Contradiction | None:
    t0 = state.issued
    after = bisect.bisect_right(history, t0, key=lambda d: d.time)
    # the declaration in force when the promise was made, then every later one
    relevant = history[max(0, after - 1) :] if after else history
    since: float | None = None
    detail = ""
    for declaration in relevant:
        said = _contradicts(state, capability, declaration.data)
        if since is None:
            if said is not None:
                since, detail = max(t0, declaration.time), said
        elif said is None:
            return Contradiction(capability, since, declaration.time, detail)
    return None if since is None else Contradiction(capability, since, None, detail)


def _contradicts(state: PromiseState, capability: str, data: object) -> str | None:
    """Why the promise cannot be kept under this declaration, in words; None if it can."""
    if type(data) is not WindowCapability:
        return None  # dependencies: checked against component status (not yet)
    window = data.window
    what = data.text or capability
    terms = state.promise.data
    channel = terms.channel
    if type(terms) is DeadlineData:
        until = terms.terms.open_until
        if window.closes_at is not None and until > window.closes_at:
            return (
                f"{channel} says open until {_local(until)}; {capability} closes {what} at "
                f"{_local(window.closes_at)} ({_span(until - window.closes_at)} earlier)"
            )
        if window.opens_at is not None and window.opens_at.timestamp() > state.issued:
            return (
                f"{channel} says open now, until {_local(until)}; {capability} opens {what} "
                f"only at {_local(window.opens_at)}"
            )
    elif type(terms) is DeliverByData:
        due = state.close_time
        if window.opens_at is not None and due is not None and due < window.opens_at.timestamp():
            late = window.opens_at.timestamp() - due
            return (
                f"{channel} says delivered by {_local_ts(due, window.opens_at)}; {capability} "
                f"opens {what} at {_local(window.opens_at)} ({_span(late)} later)"
            )
    elif type(terms) is ChannelsData:
        until = terms.terms.until
        if window.closes_at is not None and until > window.closes_at:
            listed = ", ".join(terms.terms.channels)
            return (
                f"{channel} says {listed} available until {_local(until)}; {capability} "
                f"closes {what} at {_local(window.closes_at)} "
                f"({_span(until - window.closes_at)} earlier)"
            )
    return None


def _local(stamp: dt.datetime) -> str:
    """A time as its writer wrote it: its own offset, to the minute."""
    return stamp.strftime("%Y-%m-%d %H:%M %z").replace("+0000", "UTC")


def _local_ts(t: float, like: dt.datetime) -> str:
    return _local(dt.datetime.fromtimestamp(t, like.tzinfo))


def _span(delta: dt.timedelta | float) -> str:
    seconds = delta.total_seconds() if isinstance(delta, dt.timedelta) else delta
    if seconds >= 86_400 and seconds % 3600 == 0 and seconds < 7 * 86_400:
        return f"{seconds / 3600:g} h"
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 60:.0f} min"

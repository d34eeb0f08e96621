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
    CapabilityDeclared,
    ChannelsData,
    DeadlineData,
    DeliverByData,
    DependencyCapability,
    StatusCapability,
    WindowCapability,
)
from promise_tracker.streams.state import PromiseState, Seen

CONTRADICTION = "contradiction:"  # warning label prefix; the capability id follows


class Declaration(NamedTuple):
    time: float
    id: str
    data: object  # WindowCapability | DependencyCapability | StatusCapability
    source: str = ""


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
        # component -> the dependency capabilities that ever named it
        self.dependents: dict[str, set[str]] = {}

    def declare_event(self, event: CapabilityDeclared) -> None:
        """A ``capability.declared`` event, in force from its time."""
        declaration = Declaration(event.time.timestamp(), event.id, event.data, event.source)
        self.declare(event.data.capability, declaration)

    def declare(self, capability: str, declaration: Declaration) -> None:
        """Adds it in (time, id) order; the same declaration again changes nothing."""
        history = self.declared.setdefault(capability, [])
        key = (declaration.time, declaration.id)
        at = bisect.bisect_left(history, key, key=lambda d: (d.time, d.id))
        if at < len(history) and (history[at].time, history[at].id) == key:
            return
        history.insert(at, declaration)
        if type(declaration.data) is DependencyCapability:
            for component in declaration.data.depends_on:
                self.dependents.setdefault(component, set()).add(capability)

    def copy(self) -> Capabilities:
        """A copy to declare more in without changing this one (a check's "what if")."""
        copy = Capabilities()
        copy.declared = {name: list(history) for name, history in self.declared.items()}
        copy.dependents = {name: set(names) for name, names in self.dependents.items()}
        return copy

    def __len__(self) -> int:
        """How many declarations, of every capability."""
        return sum(map(len, self.declared.values()))

    def in_force(self, capability: str, t: float) -> Declaration | None:
        """The declaration in force at ``t``: the latest at or before it."""
        history = self.declared.get(capability) or []
        at = bisect.bisect_right(history, t, key=lambda d: d.time)
        return history[at - 1] if at else None

    def first_down(self, component: str, start: float, end: float) -> Declaration | None:
        """The status that first says the component is down in [start, end): the one in
        force at ``start`` if it does, else the first later one before ``end``."""
        history = self.declared.get(component) or []
        at = bisect.bisect_right(history, start, key=lambda d: d.time)
        if at and _down(history[at - 1]):
            return history[at - 1]
        for declaration in history[at:]:
            if declaration.time >= end:
                break
            if _down(declaration):
                return declaration
        return None

    def _dependencies(self, state: PromiseState) -> list[tuple[str, DependencyCapability]]:
        """(capability, declaration) of the dependencies a channels promise relies on, as
        declared when it was made (or first declared after)."""
        found = []
        for capability in dict.fromkeys(state.promise.data.relies_on or ()):
            declaration = self.in_force(capability, state.issued)
            if declaration is None:
                later = self.declared.get(capability) or []
                declaration = later[0] if later else None
            if declaration is not None and type(declaration.data) is DependencyCapability:
                found.append((capability, declaration.data))
        return found

    def outages(self, state: PromiseState) -> dict[str, Seen]:
        """Channel -> when it went down with a component it depends on, within the
        promise's [issued, until): the root component is named in the detail."""
        terms = state.promise.data
        if type(terms) is not ChannelsData:
            return {}
        until = terms.terms.until.timestamp()
        found: dict[str, Seen] = {}
        for _, dependency in self._dependencies(state):
            for channel in terms.terms.channels:
                if channel not in dependency.channels:
                    continue
                for component in dependency.depends_on:
                    down = self.first_down(component, state.issued, until)
                    if down is None:
                        continue
                    seen = Seen(
                        max(state.issued, down.time),
                        down.id,
                        down.source,
                        f"{channel} (it depends on {component}, which was down)",
                    )
                    if channel not in found or seen < found[channel]:
                        found[channel] = seen
        return found

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
        found.extend(self._down_at_issue(state))
        return found

    def _down_at_issue(self, state: PromiseState) -> list[Contradiction]:
        """A channel promised while a component it depends on is down: contradicted from
        the promise's time until the component's next status that says it is up."""
        terms = state.promise.data
        if type(terms) is not ChannelsData:
            return []
        t0 = state.issued
        found = []
        for capability, dependency in self._dependencies(state):
            channels = [ch for ch in terms.terms.channels if ch in dependency.channels]
            for component in dependency.depends_on:
                status = self.in_force(component, t0)
                if not channels or status is None or not _down(status):
                    continue
                history = self.declared[component]
                after = bisect.bisect_right(history, t0, key=lambda d: d.time)
                up = next((d.time for d in history[after:] if not _down(d)), None)
                detail = (
                    f"{terms.channel} says {', '.join(terms.terms.channels)} available until "
                    f"{_local(terms.terms.until)}; {capability}: {', '.join(channels)} "
                    f"depend on {component}, down since {_local_ts(status.time, terms.terms.until)}"
                )
                found.append(Contradiction(f"{capability}/{component}", t0, up, detail))
        return found


def _down(declaration: Declaration) -> bool:
    return type(declaration.data) is StatusCapability and not declaration.data.up


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

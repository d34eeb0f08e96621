"""One planned promise (a ``promise.issued`` event) -> its answer, a JSON-ready dict
(docs/check.md says what each number means)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from promise_tracker.check.estimate import (
    LOWER_BOUND,
    History,
    chance,
    duration_text,
    quantiles,
    round_to_grid,
    tightest,
)
from promise_tracker.check.history import Group, HistoryReader
from promise_tracker.schemas.models import CapabilityDeclared, Event, PromiseIssued, kind_of
from promise_tracker.schemas.parse import parse
from promise_tracker.schemas.reject import Reason, Reject
from promise_tracker.streams.capabilities import Capabilities
from promise_tracker.streams.state import new_state

# kind -> what its outcomes measure (as streams/records.py writes them)
MEASURES = {
    "deadline": "early_seconds",
    "max_wait": "hold_seconds",
    "max_steps": "steps_to_goal",
    "deliver_by": "delivery_seconds",
    "channels_available": "up_seconds",
}
HOUR = 3_600.0


@dataclass(frozen=True)
class CheckOptions:
    window: float = 28 * 86_400.0  # seconds of history before the promise
    confidence: float = 0.95
    min_history: int = 30


class Planned:
    """The planned terms as one threshold on the kind's measure, and how to say them."""

    def __init__(self, promise: PromiseIssued):
        self.promise = promise
        self.kind = kind_of(promise)
        self.t0 = promise.time.timestamp()
        terms: Any = promise.data.terms
        self.calendar = ""  # within_seconds counted in this business calendar's open time
        if self.kind == "deadline":
            self.threshold = 0.0  # kept: closed no earlier than promised
        elif self.kind == "max_wait":
            self.threshold = float(terms.max_seconds)
        elif self.kind == "max_steps":
            self.threshold = float(terms.max_steps)
        elif self.kind == "deliver_by":
            if terms.due_at is not UNSET:
                self.threshold = terms.due_at.timestamp() - self.t0
            else:
                self.threshold = float(terms.within_seconds)
                if terms.calendar is not UNSET:
                    self.calendar = terms.calendar
        else:
            self.threshold = terms.until.timestamp() - self.t0

    def text(self, threshold: float) -> str:
        """The terms that ``threshold`` stands for, as the customer would read them."""
        if self.kind == "deadline":
            until = self.promise.data.terms.open_until.timestamp() - threshold  # type: ignore[union-attr]
            return f"open until {_when(until)}"
        if self.kind == "max_wait":
            return f"a wait of at most {duration_text(threshold)}"
        if self.kind == "max_steps":
            return f"at most {threshold:g} steps"
        if self.kind == "deliver_by" and self.calendar:
            return f"within {duration_text(threshold)} of {self.calendar} open time"
        if self.kind == "deliver_by":
            return f"within {duration_text(threshold)}"
        return f"available for {duration_text(threshold)}"

    def rounded(self, threshold: float) -> float:
        if self.kind == "max_steps":
            return threshold
        return round_to_grid(threshold, up=MEASURES[self.kind] not in LOWER_BOUND)


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _percent(p: float) -> str:
    return f"{math.floor(p * 100 + 1e-9)}%"


def window_of(promise: PromiseIssued, options: CheckOptions) -> tuple[float, float]:
    """The history's window: ``options.window`` before the hour the promise is issued in (a
    campaign issued within one hour reads each group's history once)."""
    until = math.floor(promise.time.timestamp() / HOUR) * HOUR
    return until - options.window, until


def contradictions(promise: PromiseIssued, capabilities: Capabilities | None) -> list[dict]:
    """The declared capabilities this planned promise's terms contradict (issue 16 item 2),
    as the engine finds them when the promise is issued."""
    if capabilities is None or not promise.data.relies_on:
        return []
    state = new_state(promise, promise.time.timestamp())
    return [
        {
            "capability": c.capability,
            "since": _iso(c.since),
            "resolved_at": None if c.resolved_at is None else _iso(c.resolved_at),
            "detail": c.detail,
        }
        for c in capabilities.contradictions(state)
    ]


def answer(
    promise: PromiseIssued,
    reader: HistoryReader,
    options: CheckOptions,
    capabilities: Capabilities | None = None,
) -> dict:
    planned = Planned(promise)
    declared = 0 if capabilities is None else len(capabilities)
    since, until = window_of(promise, options)
    unknown = bool(planned.calendar) and planned.calendar not in reader.calendars
    calendar = "" if unknown else planned.calendar
    group = Group(promise.source, promise.data.channel, planned.kind, since, until, calendar)
    history = reader.history(group)
    decided = history.kept + history.broken
    result: dict[str, Any] = {
        "promise_id": promise.id,
        "service": group.service,
        "channel": group.channel,
        "kind": group.kind,
        "window": {"from": _iso(since), "until": _iso(until)},
        "history": {"kept": history.kept, "broken": history.broken},
        "keep_rate": None,
        "measure": {"name": history.measure, "measured": len(history.values)},
        "planned": {"terms": planned.text(planned.threshold), "threshold": planned.threshold},
        "probability_kept": None,
        "comparable": 0,
        "tightest": None,
        "enough_history": False,
        "sentence": "",
        # declared capabilities the terms contradict (capability.declared events given with
        # the planned promises, and with serve --kafka those of the topic), and how many
        # declarations the promise was checked against
        "contradictions": contradictions(promise, capabilities),
        "capabilities": {"declared": declared},
    }
    if calendar:  # the measure in that calendar's open seconds
        result["measure"]["calendar"] = calendar
    if unknown:
        known = ", ".join(sorted(reader.calendars)) or "none were given"
        result["sentence"] = (
            f"counted in the business calendar {planned.calendar!r}, which the "
            f"check does not have (known: {known}): give the calendars file (--calendars or "
            "PROMISE_TRACKER_CALENDARS) to measure the history in its open time; no estimate"
        )
        return result
    found = chance(history, planned.threshold)
    result["comparable"] = found.comparable
    if found.comparable < options.min_history:
        result["sentence"] = (
            f"too little history: {found.comparable} comparable outcomes of {group.kind} "
            f"promises by {group.service} on {group.channel} in the window (fewer than "
            f"{options.min_history}); no estimate"
        )
        return result
    result["enough_history"] = True
    result["keep_rate"] = history.kept / decided if decided else None
    key = (group, options)
    if key not in reader.derived:
        exact = tightest(history, options.confidence, options.min_history)
        reader.derived[key] = (quantiles(history), exact)
    result["measure"]["quantiles"], exact = reader.derived[key]
    result["measure"]["not_measured"] = len(history.open_ended)
    result["probability_kept"] = found.probability
    result["tightest"] = _tightest(planned, history, exact)
    result["sentence"] = _sentence(planned, found.probability, result["tightest"], options)  # type: ignore[arg-type]
    return result


def _tightest(planned: Planned, history: History, exact: float | None) -> dict | None:
    if exact is None:
        return None
    threshold = planned.rounded(exact)
    found = chance(history, threshold)
    return {
        "terms": planned.text(threshold),
        "threshold": threshold,
        "probability_kept": found.probability,
        "comparable": found.comparable,
    }


def _sentence(planned: Planned, p: float, tight: dict | None, options: CheckOptions) -> str:
    said = f"'{planned.text(planned.threshold)}'"
    if tight is None:
        return (
            f"no terms were kept {_percent(options.confidence)} of the time; "
            f"{said} would have been kept {_percent(p)}"
        )
    best = f"'{tight['terms']}' ({_percent(tight['probability_kept'])} kept)"
    if p >= options.confidence:
        return f"promise {said} ({_percent(p)} kept); the tightest at the same confidence: {best}"
    return f"promise {best}, not {said} ({_percent(p)})"


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def error_answer(reject: Reject, line: int | None) -> dict:
    """A planned promise that cannot be checked: the reason names the field."""
    return {
        "promise_id": reject.event_id,
        "line": line,
        "error": {"reason": str(reject.reason), "message": reject.message},
    }


def check_lines(
    lines: Iterable[bytes],
    reader: HistoryReader,
    options: CheckOptions,
    on_answer: Callable[[dict], object] | None = None,
) -> list[dict]:
    """Every planned promise's answer, in order; ``capability.declared`` lines among them
    are the capabilities the promises are checked against (wherever they are in the file);
    a line that is neither gets an error answer carrying its number."""
    numbered = ((number, line.strip()) for number, line in enumerate(lines, 1))
    return check_events(
        [(number, line) for number, line in numbered if line], reader, options, on_answer
    )


def check_events(
    events: Iterable[tuple[int | None, bytes]],
    reader: HistoryReader,
    options: CheckOptions,
    on_answer: Callable[[dict], object] | None = None,
    capabilities: Capabilities | None = None,
) -> list[dict]:
    """The answers of the planned promises among ``events`` ((position, raw event) pairs:
    the position is what an error answer carries as its ``line``), in order, each parsed
    once. The ``capability.declared`` events among them are added to ``capabilities`` (to
    a copy: the one given is not changed), and every promise is checked against them all.
    """
    planned: list[tuple[int | None, bytes, Event | Reject]] = []
    ours: list[CapabilityDeclared] = []
    for position, raw in events:
        event = parse(raw)
        if type(event) is CapabilityDeclared:
            ours.append(event)
        else:
            planned.append((position, raw, event))
    if ours and not planned:
        said = _nothing_to_check(ours)
        if on_answer is not None:
            on_answer(said)
        return [said]
    if capabilities is None:
        declared = Capabilities()
    else:  # the given ones stay as they are: a request's own go to a copy
        declared = capabilities.copy() if ours else capabilities
    for event in ours:
        declared.declare_event(event)
    answers = []
    for position, raw, event in planned:
        answers.append(_checked(event, raw, reader, options, position, declared))
        if on_answer is not None:
            on_answer(answers[-1])
    return answers


def _nothing_to_check(declarations: list[CapabilityDeclared]) -> dict:
    """Capabilities given without a planned promise: said, not answered with nothing."""
    reject = Reject(
        Reason.INVALID_EVENT,
        f"type: no promise.issued event to check, only {len(declarations)} "
        "capability.declared: give the planned promises with them",
        b"",
        event_id=declarations[0].id,
    )
    return error_answer(reject, None)


def check_bytes(
    raw: bytes,
    reader: HistoryReader,
    options: CheckOptions,
    line: int | None,
    capabilities: Capabilities | None = None,
) -> dict:
    """One planned promise's answer (or error answer)."""
    return _checked(parse(raw), raw, reader, options, line, capabilities)


def _checked(
    event: Event | Reject,
    raw: bytes,
    reader: HistoryReader,
    options: CheckOptions,
    line: int | None,
    capabilities: Capabilities | None,
) -> dict:
    if isinstance(event, Reject):
        return error_answer(event, line)
    if not isinstance(event, PromiseIssued):
        not_planned = Reject(
            Reason.INVALID_EVENT,
            "type: a check takes promise.issued events (planned promises) and the "
            f"capability.declared events they are checked against, not {_type(event)}",
            raw,
            event_id=event.id,
        )
        return error_answer(not_planned, line)
    return answer(event, reader, options, capabilities)


def _type(event: Event) -> str:
    return str(type(event).__struct_config__.tag)

"""Moving a file of events in time: stories from 2013 and synthetic streams, sent to a live
worker, must look recent (the worker rejects events older than its retention as too_late
and events ahead of its clock as from_future).

One offset moves every timestamp an event carries (its ``time``, ``data.expires_at``, the
terms ``open_until``, ``due_at`` and ``until``, and a declared window's ``opens_at`` and
``closes_at``), so the distances between them, and so
the verdicts, stay what they were. Lines that are not events are kept as they are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import orjson


def shift_lines(lines: list[bytes], end: dt.datetime, *, terms: bool = False) -> list[bytes]:
    """Every timestamp of every event moved so that the latest event time (with ``terms``:
    the latest timestamp of any kind, due dates included) is ``end``; lines that are not
    events are kept as they are (and so is a file without any event)."""
    return shift(lines, offset(lines, end, terms=terms))


def offset(lines: Iterable[bytes], end: dt.datetime, *, terms: bool = False) -> dt.timedelta:
    """How far ``shift_lines`` moves the lines: from their latest time to ``end`` (nothing
    for lines without an event)."""
    latest = latest_time(lines, terms=terms)
    return dt.timedelta(0) if latest is None else end - latest


def latest_time(lines: Iterable[bytes], *, terms: bool = False) -> dt.datetime | None:
    """The latest event time of the lines (with ``terms``: the latest timestamp of any kind);
    None when no line is an event with a time."""
    stamps = [
        stamp
        for line in lines
        for _, name, stamp in _stamps(_event_of(line))
        if terms or name == "time"
    ]
    return max(stamps, default=None)


def shift(lines: Iterable[bytes], delta: dt.timedelta) -> list[bytes]:
    """Every timestamp of every event moved by ``delta`` (by nothing: the lines as they are)."""
    if not delta:
        return list(lines)
    return [_shift(line, delta) for line in lines]


def _parse_time(value: object) -> dt.datetime | None:
    try:
        stamp = dt.datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo is not None else None


def _event_of(line: bytes) -> dict | None:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def _stamps(event: dict | None) -> list[tuple[dict, str, dt.datetime]]:
    """(holder, field name, time) of every timestamp an event carries."""
    if event is None:
        return []
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    terms = data.get("terms")
    terms = terms if isinstance(terms, dict) else {}
    window = data.get("window")  # a capability.declared window
    window = window if isinstance(window, dict) else {}
    places = [
        (event, "time"),
        (data, "expires_at"),
        *((terms, name) for name in ("open_until", "due_at", "until")),
        *((window, name) for name in ("opens_at", "closes_at")),
    ]
    found = [(holder, name, _parse_time(holder.get(name))) for holder, name in places]
    return [(holder, name, stamp) for holder, name, stamp in found if stamp is not None]


def _shift(line: bytes, delta: dt.timedelta) -> bytes:
    """Every timestamp of an event moved by ``delta``; lines that are not events unchanged."""
    event = _event_of(line)
    stamps = _stamps(event)
    if not stamps:
        return line
    for holder, name, stamp in stamps:
        holder[name] = (stamp + delta).isoformat()
    return orjson.dumps(event)

"""Reads the business calendars file (SPEC 2.1) into ``Calendar`` clocks, or says what is wrong.

One TOML file, one table per calendar: ``timezone``, the open intervals of ``mon`` .. ``sun``,
and the closed days: a ``holidays`` list, ``holidays_ics`` files (all-day events, RRULE and
EXDATE expanded by ``recurring_ical_events``) and a ``country``'s public holidays (the
``holidays`` package). Every problem raises ``CalendarError`` with one line naming the file,
the calendar, the field and the fix; the program stops at start (exit 2).

The files are read here, once; the closed dates of a year are expanded the first time a clock
asks for that year (``Calendar`` caches them), so any year a promise needs works.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import icalendar
import recurring_ical_events  # type: ignore[import-untyped]

from promise_tracker.calendars.clock import Calendar, LocalInterval
from promise_tracker.errors import CalendarError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KEYS = ("timezone", *DAYS, "holidays", "holidays_ics", "country", "subdivision")
INTERVAL = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
INTERVAL_SHAPE = "HH:MM-HH:MM"
INTERVAL_FORM = f"{INTERVAL_SHAPE}, 24:00 allowed as an end"
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def load_calendars(path: str | Path) -> dict[str, Calendar]:
    """The calendars of the TOML file at ``path``, by name; ``CalendarError`` if unusable."""
    where = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as error:
        raise CalendarError(
            f"{where}: cannot be read ({error.strerror or error}); "
            "give the path of a readable calendars file (TOML)"
        ) from error
    except UnicodeDecodeError as error:
        raise CalendarError(f"{where}: is not UTF-8 text; save it as UTF-8 TOML") from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CalendarError(
            f"{where}: does not parse as TOML ({_one_line(error)}); fix the syntax there"
        ) from error
    calendars = {}
    for name, table in document.items():
        if not isinstance(table, dict):
            raise CalendarError(
                f"{where}: {name} = {_show(table)}: a value outside any calendar table; "
                "put it under a [name] header (each table is one calendar)"
            )
        calendars[name] = _calendar(_Place(where, Path(path).parent, name), table)
    return calendars


@dataclass(frozen=True)
class _Place:
    """Where a value comes from: the file, its folder (for ICS paths) and the calendar."""

    file: str
    folder: Path
    calendar: str

    def fail(self, field: str, problem: str) -> NoReturn:
        raise CalendarError(f"{self.file}: [{self.calendar}] {field}: {problem}")


def _calendar(place: _Place, table: dict[str, Any]) -> Calendar:
    for key in table:
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=1)
            hint = f'did you mean "{near[0]}"? ' if near else ""
            place.fail(key, f"unknown key; {hint}the keys are {', '.join(KEYS)}")
    zone = _zone(place, table)
    week = {i: _day(place, day, table[day]) for i, day in enumerate(DAYS) if day in table}
    if not any(week.values()):
        place.fail(
            "mon..sun",
            "no open interval on any day; give at least one day an interval, "
            'e.g. mon = ["09:00-17:00"]',
        )
    return Calendar(place.calendar, zone, week, _closed_days(place, table))


def _zone(place: _Place, table: dict[str, Any]) -> ZoneInfo:
    if "timezone" not in table:
        place.fail("timezone", 'missing; add timezone = "Europe/Paris" (an IANA zone name)')
    name = table["timezone"]
    field = f"timezone {_show(name)}"
    if not isinstance(name, str):
        place.fail(field, 'must be a string, an IANA zone name such as "Europe/Paris"')
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, e.g. Europe
        place.fail(field, 'unknown time zone; use an IANA zone name such as "Europe/Paris"')


def _day(place: _Place, day: str, entries: Any) -> list[LocalInterval]:
    if not isinstance(entries, list):
        place.fail(
            f"{day} {_show(entries)}",
            f'must be a list of "{INTERVAL_SHAPE}" strings, e.g. ["09:00-12:30", "13:30-18:00"]',
        )
    intervals = [_interval(place, f"{day}[{i}] {_show(e)}", e) for i, e in enumerate(entries)]
    ordered = sorted(range(len(intervals)), key=lambda i: intervals[i])
    for before, after in zip(ordered, ordered[1:], strict=False):
        if intervals[after][0] < intervals[before][1]:
            place.fail(
                f"{day}[{after}] {_show(entries[after])}",
                f"overlaps {day}[{before}] {_show(entries[before])}; make the day's intervals "
                "disjoint (an end may touch the next start)",
            )
    return intervals


def _interval(place: _Place, field: str, entry: Any) -> LocalInterval:
    found = INTERVAL.fullmatch(entry.strip()) if isinstance(entry, str) else None
    if found is None:
        place.fail(field, f"not an interval; write {INTERVAL_FORM}")
    start_h, start_m, end_h, end_m = (int(part) for part in found.groups())
    if start_h > 23 or start_m > 59 or end_m > 59 or end_h > 24 or (end_h == 24 and end_m):
        place.fail(field, f"not a time of day; write {INTERVAL_FORM}")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if end <= start:
        place.fail(field, f"the end must be after the start ({INTERVAL_FORM})")
    return start, end


def _closed_days(place: _Place, table: dict[str, Any]) -> _ClosedDays | None:
    listed = frozenset(
        _holiday(place, f"holidays[{i}] {_show(entry)}", entry)
        for i, entry in enumerate(_list(place, "holidays", table.get("holidays", [])))
    )
    ics = tuple(
        _ics(place, f"holidays_ics[{i}] {_show(entry)}", entry)
        for i, entry in enumerate(_list(place, "holidays_ics", table.get("holidays_ics", [])))
    )
    country = _country(place, table.get("country"), table.get("subdivision"))
    if not listed and not ics and country is None:
        return None
    return _ClosedDays(listed, ics, country)


def _list(place: _Place, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        place.fail(f"{key} {_show(value)}", "must be a list, e.g. [...] with one entry a line")
    return value


def _holiday(place: _Place, field: str, entry: Any) -> date:
    if isinstance(entry, date) and not isinstance(entry, datetime):
        return entry  # a TOML local date, 2026-12-25 without quotes
    if isinstance(entry, str) and ISO_DATE.fullmatch(entry):
        try:
            return date.fromisoformat(entry)
        except ValueError:
            pass
    place.fail(field, 'not a date; write "YYYY-MM-DD", e.g. "2026-12-25"')


def _ics(place: _Place, field: str, entry: Any) -> Any:
    """The expansion query of one ICS file, read and checked now."""
    if not isinstance(entry, str):
        place.fail(field, "must be the path of an .ics file (a string), relative to this file")
    file = place.folder / entry
    try:
        raw = file.read_bytes()
    except OSError as error:
        place.fail(
            field,
            f"cannot be read ({error.strerror or error}: {file.absolute()}); "
            "give a path relative to the calendars file",
        )
    try:
        parsed = icalendar.Calendar.from_ical(raw)
        if parsed.name != "VCALENDAR":
            raise ValueError(f"its top component is {parsed.name}, not VCALENDAR")
        query = recurring_ical_events.of(parsed)
        list(_ics_days(query, 2000))  # a rule that cannot be expanded fails here, not in the engine
    except Exception as error:  # the parsers raise many types; any of them: not usable
        place.fail(
            field,
            f"is not a usable iCalendar file ({_one_line(error)}); "
            "export it again, or fix the property named",
        )
    return query


def _country(place: _Place, country: Any, subdivision: Any) -> tuple[str, str | None] | None:
    if country is None:
        if subdivision is not None:
            place.fail(
                f"subdivision {_show(subdivision)}", 'needs a country; add country = "FR" (say)'
            )
        return None
    if not isinstance(country, str):
        place.fail(f"country {_show(country)}", 'must be a string, e.g. "FR"')
    if subdivision is not None and not isinstance(subdivision, str):
        place.fail(f"subdivision {_show(subdivision)}", 'must be a string, e.g. "BL"')
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as error:
        if subdivision is None or "subdivision" not in str(error):
            place.fail(
                f"country {_show(country)}",
                "no public holidays known for it; use an ISO 3166-1 alpha-2 code that the "
                'holidays package supports, in capitals, e.g. "FR"',
            )
        known = ", ".join(holidays.list_supported_countries().get(country, [])) or "none"
        place.fail(
            f"subdivision {_show(subdivision)}",
            f"not a subdivision of {country} in the holidays package; use one of: {known}",
        )
    return country, subdivision


@dataclass(frozen=True)
class _ClosedDays:
    """The closed local dates of a year, from every source a calendar names."""

    listed: frozenset[date]
    ics: tuple[Any, ...]
    country: tuple[str, str | None] | None

    def __call__(self, year: int) -> set[date]:
        closed = {day for day in self.listed if day.year == year}
        for query in self.ics:
            closed.update(_ics_days(query, year))
        if self.country is not None:
            closed.update(_country_days(*self.country, year))
        return closed


def _ics_days(query: Any, year: int) -> Iterable[date]:
    """Every date of ``year`` in [DTSTART, DTEND) of an all-day event; timed ones close none."""
    first = date(year, 1, 1)
    after = date(year + 1, 1, 1) if year < date.max.year else date.max
    try:
        events = query.between(first, after)
    except OverflowError:  # year 1: the expansion reaches before date.min; nothing closes
        return
    for event in events:
        start, end = event.start, event.end
        if isinstance(start, datetime) or isinstance(end, datetime):
            continue
        day = max(start, first)
        while day < min(end, after):
            yield day
            day += timedelta(days=1)


def _country_days(country: str, subdivision: str | None, year: int) -> Iterable[date]:
    # the neighbouring years too: an observed day may fall across New Year
    years = range(max(year - 1, 1), year + 2)
    found = holidays.country_holidays(country, subdiv=subdivision, years=years)
    return (day for day in found if day.year == year)


def _show(value: Any) -> str:
    """A value as the file shows it, on one line."""
    shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

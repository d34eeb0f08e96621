"""Business-hours calendars (SPEC 2.1): when the clock of a ``within_seconds`` promise runs.

``clock.py`` is the pure clock (``Calendar.open_seconds`` and ``Calendar.advance``, and the
24/7 ``ALWAYS`` of a promise that names no calendar); ``load.py`` reads the TOML file of
calendars into clocks and stops the program with a one-line ``CalendarError`` when it cannot.
docs/calendars.md describes the file and the boundary rules.
"""

from promise_tracker.calendars.clock import ALWAYS, Calendar, always
from promise_tracker.calendars.load import load_calendars

__all__ = ["ALWAYS", "Calendar", "always", "load_calendars"]

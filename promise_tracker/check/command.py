"""``promise-tracker check FILE|-``: one JSON answer per planned promise on stdout, a summary
on stderr."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import orjson

from promise_tracker.check.answer import MEASURES, CheckOptions, check_lines
from promise_tracker.check.history import HistoryReader
from promise_tracker.errors import BadInput, UsageError
from promise_tracker.sinks.store import ClickHouseStore, Store
from promise_tracker.streams.clock import Calendar

_WINDOW = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def parse_window(text: str) -> float:
    """28d, 12h, 2w -> seconds."""
    match = _WINDOW.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise UsageError(f"--window {text!r}: give a duration such as 28d, 12h or 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


def options_from(window: str, confidence: float, min_history: int) -> CheckOptions:
    if not 0 < confidence < 1:
        raise UsageError(f"--confidence {confidence}: give a share between 0 and 1, e.g. 0.95")
    if min_history < 1:
        raise UsageError(f"--min-history {min_history}: give at least 1")
    return CheckOptions(parse_window(window), confidence, min_history)


def open_history(clickhouse: str | None, database: str | None) -> Store:
    """The store to read: a chdb directory or a server's URL, else the sink's settings."""
    from promise_tracker.runtime.settings import Settings
    from promise_tracker.sinks.runner import store_from

    settings = Settings.from_env()
    name = database or settings.database
    if clickhouse is None:
        from dataclasses import replace

        return store_from(replace(settings, database=name))
    if "://" not in clickhouse and not Path(clickhouse).is_dir():
        raise UsageError(f"--clickhouse {clickhouse}: no chdb directory there")
    return ClickHouseStore(clickhouse, name, settings.clickhouse_password)


def run_check(
    source: str,
    clickhouse: str | None,
    database: str | None,
    options: CheckOptions,
    quiet: bool,
    out: IO[bytes],
    calendars: Mapping[str, Calendar] | None = None,
) -> int:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}") from None
    store = open_history(clickhouse, database)
    try:
        reader = HistoryReader(store, MEASURES, calendars or {})
        answers = check_lines(
            data.splitlines(),
            reader,
            options,
            on_answer=lambda a: out.write(orjson.dumps(a) + b"\n"),
        )
    finally:
        store.close()
    errors = sum("error" in a for a in answers)
    if not quiet:
        for a in answers:
            if "error" in a:
                where = f"line {a['line']}: " if a["line"] is not None else f"{source}: "
                print(f"{where}{a['error']['message']}", file=sys.stderr)
            else:
                print(f"{a['promise_id']}: {a['sentence']}", file=sys.stderr)
        print(
            f"{len(answers)} planned promises checked ({errors} not valid), "
            f"{reader.queries} history queries",
            file=sys.stderr,
        )
    return BadInput.exit_code if errors else 0

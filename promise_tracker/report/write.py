"""``promise-tracker report``: read the store, write the page, print it to PDF if asked."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from promise_tracker.errors import UsageError
from promise_tracker.objectives.model import Objective
from promise_tracker.report import page
from promise_tracker.report.figures import Figures, Period, read
from promise_tracker.sinks.store import Store


@dataclass(frozen=True)
class Written:
    """What a report run wrote, and how long each part took (seconds)."""

    html: Path
    pdf: Path | None
    figures: Figures
    query_seconds: float
    render_seconds: float
    pdf_seconds: float


def write_report(
    store: Store,
    out: Path,
    period: Period,
    objectives: Sequence[Objective] = (),
    pdf: Path | None = None,
    where: str = "",
) -> Written:
    """The report of ``period`` from ``store`` into ``out`` (HTML, written whole or not at
    all), and its print into ``pdf``."""
    started = time.perf_counter()
    figures = read(store, period, objectives, where)
    queried = time.perf_counter()
    text = page.render(figures, generated=time.time())
    _replace(out, text.encode())
    rendered = time.perf_counter()
    if pdf is not None:
        from promise_tracker.report.browser import print_pdf

        print_pdf(out, pdf)
    return Written(
        html=out,
        pdf=pdf,
        figures=figures,
        query_seconds=queried - started,
        render_seconds=rendered - queried,
        pdf_seconds=time.perf_counter() - rendered,
    )


def _replace(path: Path, data: bytes) -> None:
    """Write beside, then rename: a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_SINCE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*")


def since_seconds(text: str) -> float:
    """``--since``: 30m, 12h, 7d, 2w."""
    match = _SINCE.fullmatch(text)
    if match is None or float(match.group(1)) <= 0:
        raise UsageError(f"--since {text!r}: give a length of time such as 12h, 7d or 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


def until_seconds(text: str | None) -> float:
    """``--until``: an RFC 3339 time with its offset (default: now)."""
    if text is None:
        return time.time()
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise UsageError(f"--until {text!r}: give a time with its offset, 2026-03-20T00:00:00Z")
    return moment.timestamp()


def run_report(
    *,
    since: str,
    out: str,
    until: str | None = None,
    objectives: str | None = None,
    pdf: str | None = None,
    clickhouse: str | None = None,
    database: str | None = None,
) -> Written:
    """The command: the store is ``clickhouse`` (a chdb directory or a server's URL), else
    the sink's (PROMISE_TRACKER_CLICKHOUSE_URL, else PROMISE_TRACKER_CHDB_PATH)."""
    from promise_tracker.runtime.settings import Settings
    from promise_tracker.sinks.store import ClickHouseStore

    end = until_seconds(until)
    period = Period(end - since_seconds(since), end)
    chosen: list[Objective] = []
    if objectives is not None:
        from promise_tracker.objectives.load import load_objectives

        chosen = load_objectives(objectives)
    settings = Settings.from_env()
    name = database or settings.database
    target = clickhouse or settings.clickhouse_url or settings.chdb_path
    if "://" not in target and not Path(target).is_dir():
        given = "--clickhouse" if clickhouse else "PROMISE_TRACKER_CHDB_PATH"
        raise UsageError(
            f"{given} {target}: no chdb directory there (give --clickhouse PATH|URL: the "
            "directory the sink or replay --clickhouse wrote, or a server's HTTP URL)"
        )
    store = ClickHouseStore(target, name, settings.clickhouse_password)
    try:
        return write_report(
            store,
            Path(out),
            period,
            chosen,
            pdf=None if pdf is None else Path(pdf),
            where=f"{store.address}, database {name}",
        )
    finally:
        store.close()

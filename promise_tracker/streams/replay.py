"""Offline replay (SPEC section 5): files of CloudEvents through the same engine as live."""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol

import msgspec

from promise_tracker.errors import UsageError
from promise_tracker.schemas.models import Event, OutcomeRecord, ViolationRecord, WarningRecord
from promise_tracker.schemas.parse import parse
from promise_tracker.schemas.reject import Reject
from promise_tracker.streams.engine import Engine, EngineConfig, Stats
from promise_tracker.streams.ordering import by_event_time_parsed
from promise_tracker.streams.records import outcome_record, reject_record
from promise_tracker.streams.state import PromiseState

if TYPE_CHECKING:
    from tqdm import tqdm


class ReplayError(UsageError):
    """Unusable arguments or unreadable files: reported in one line, exit status 2."""


@dataclass
class ReplaySummary:
    lines: int
    blank: int
    stats: Stats
    watermark: float
    seconds: float
    outcomes: int


class Tap(Protocol):
    """Somewhere else the replay's results go as well (the ClickHouse tables)."""

    def violation(self, record: ViolationRecord) -> None: ...

    def warning(self, record: WarningRecord) -> None: ...

    def reject(self, reject: Reject) -> None: ...

    def final_outcome(self, record: OutcomeRecord) -> None: ...


class _FileListener:
    """Streams violations, warnings and rejects to their files as they happen; outcomes at
    the end."""

    def __init__(
        self,
        violations: BinaryIO,
        outcomes: BinaryIO,
        rejects: BinaryIO,
        tap: Tap | None,
        warnings: BinaryIO | None = None,
    ):
        self._violations, self._outcomes, self._rejects = violations, outcomes, rejects
        self._warnings = warnings
        self._tap = tap
        self._encode = msgspec.json.Encoder().encode
        self.outcome_count = 0

    def violation(self, record: ViolationRecord) -> None:
        self._violations.write(self._encode(record) + b"\n")
        if self._tap is not None:
            self._tap.violation(record)

    def warning(self, record: WarningRecord) -> None:
        if self._warnings is not None:
            self._warnings.write(self._encode(record) + b"\n")
        if self._tap is not None:
            self._tap.warning(record)

    def outcome(self, state: PromiseState) -> None:
        pass  # replay writes final outcomes only

    def reject(self, reject: Reject) -> None:
        self._rejects.write(self._encode(reject_record(reject)) + b"\n")
        if self._tap is not None:
            self._tap.reject(reject)

    def evicted(self, state: PromiseState) -> None:
        self.write_outcome(state)  # final: later events for it are rejected too_late

    def write_outcome(self, state: PromiseState) -> None:
        self.outcome_count += 1
        record = outcome_record(state)
        self._outcomes.write(self._encode(record) + b"\n")
        if self._tap is not None:
            self._tap.final_outcome(record)


def replay(
    inputs: list[Path],
    violations: Path,
    outcomes: Path,
    rejects: Path,
    lateness: float = 0.0,
    config: EngineConfig | None = None,
    progress: bool | None = None,
    tap: Tap | None = None,
    warnings: Path | None = None,
    in_file_order: bool = False,
) -> ReplaySummary:
    """Run the engine over the inputs and write the output files (and give every result to
    ``tap`` too, when there is one); warnings are written when ``warnings`` is given."""
    started = time.perf_counter()
    for path in inputs:
        if not path.exists() or path.is_dir() or not os.access(path, os.R_OK):
            raise ReplayError(f"cannot read input file {path}: check the path")
    if lateness < 0:
        raise ReplayError(f"--lateness must be 0 or more seconds, got {lateness:g}")
    config = config or EngineConfig()
    if config.retention <= 0 or config.orphan_ttl <= 0:
        raise ReplayError("--retention and --orphan-ttl must be more than 0 seconds")
    outputs = (violations, outcomes, rejects) + ((warnings,) if warnings is not None else ())
    with ExitStack() as stack:
        files = [stack.enter_context(_AtomicWriter(path)) for path in outputs]
        listener = _FileListener(
            files[0], files[1], files[2], tap, files[3] if warnings is not None else None
        )
        engine = Engine(config, listener, clock=time.time)
        try:
            lines, blank = drive(
                engine, _lines(inputs, progress), lateness, in_file_order=in_file_order
            )
        except OSError as exc:  # the sort's spill files: the temporary directory is full
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) or in_file_order:
                raise
            where = exc.filename or os.environ.get("TMPDIR", "/tmp")
            raise ReplayError(
                f"cannot spill the event-time sort to {where}: {exc.strerror or exc}; "
                "free space there, set TMPDIR to a larger disk, or use --in-file-order"
            ) from exc
        engine.finish()
        for state in engine.states():
            listener.write_outcome(state)
    return ReplaySummary(
        lines=lines,
        blank=blank,
        stats=engine.stats,
        watermark=engine.watermark,
        seconds=time.perf_counter() - started,
        outcomes=listener.outcome_count,
    )


def drive(
    engine: Engine,
    lines: Iterable[tuple[str, int, bytes]],
    lateness: float,
    now: float | None = None,
    in_file_order: bool = True,
    tmpdir: str | None = None,
) -> tuple[int, int]:
    """The hot loop: parse, apply, move the watermark. Returns (lines, blank lines).

    ``lines`` are (file name, line number, bytes); ``now`` is only for tests of live checks.
    Unless ``in_file_order``, the valid events are applied in event-time order (SPEC 5): a
    stable sort, spilled to ``tmpdir`` when the input is larger than a run
    (streams/ordering.py); lines that fail to parse are rejected as they are read.
    """
    if engine.config.lateness != lateness:
        engine.config = dataclasses.replace(engine.config, lateness=lateness)
    counts = [0, 0]
    events = _parsed(engine, lines, counts)
    if not in_file_order:
        events = by_event_time_parsed(events, _reparse, tmpdir=tmpdir)
    process, advance = engine.process, engine.advance
    latest = -float("inf")
    for _, line, origin, event in events:
        t = process(event, line, origin, now)
        if t is not None:
            if t > latest:
                latest = t
            advance(latest - lateness)
    return counts[0], counts[1]


def _parsed(
    engine: Engine, lines: Iterable[tuple[str, int, bytes]], counts: list[int]
) -> Iterator[tuple[float, bytes, tuple[str, int], Event]]:
    """(time, line, origin, event) of every valid line; the others are rejected here and
    ``counts`` gets [lines, blank lines]."""
    refuse = engine.refuse
    count = blank = 0
    try:
        for name, number, line in lines:
            count += 1
            if not line or line.isspace():
                blank += 1
                continue
            origin = (name, number)
            event = parse(line, origin)
            if type(event) is Reject:
                refuse(event)
                continue
            yield event.time.timestamp(), line, origin, event
    finally:
        counts[0], counts[1] = count, blank


def _reparse(line: bytes, origin: tuple[str, int]) -> Event:
    """A spilled line parsed again after the merge (it parsed before, so it is an Event)."""
    event = parse(line, origin)
    if type(event) is Reject:  # the same bytes parsed before: only a bug gets here
        raise RuntimeError(f"line {origin} parsed before the sort but not after it")
    return event


def _lines(inputs: list[Path], progress: bool | None) -> Iterator[tuple[str, int, bytes]]:
    total = sum(path.stat().st_size for path in inputs if path.is_file())
    bar = _progress_bar(total, progress)
    for path in inputs:
        name = str(path)
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise ReplayError(f"cannot read input file {path}: {exc.strerror}") from exc
        with handle:
            for number, line in enumerate(handle, 1):
                if bar is not None and number % 4096 == 0:
                    bar.update(handle.tell() - bar.n)
                yield name, number, line.rstrip(b"\r\n")
    if bar is not None:
        bar.update(total - bar.n)
        bar.close()


def _progress_bar(total: int, progress: bool | None) -> tqdm | None:
    if progress is None:
        progress = sys.stderr.isatty() and total > 1 << 20
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="replay", file=sys.stderr)


class _AtomicWriter:
    """Write to PATH.tmp and rename on success, so a failed run leaves no half file.

    A path that exists and is not a regular file (/dev/null, /dev/stdout, a pipe) is
    written in place: renaming over it would replace the device.
    """

    def __init__(self, path: Path):
        self.path = path
        special = path.exists() and not path.is_file()
        self.tmp = None if special else path.with_name(path.name + ".tmp")

    def __enter__(self) -> BinaryIO:
        try:
            self.handle = (self.tmp or self.path).open("wb", buffering=1 << 20)
        except OSError as exc:
            raise ReplayError(f"cannot write output file {self.path}: {exc.strerror}") from exc
        return self.handle

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.handle.close()
        if self.tmp is None:
            return
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)

"""Event-time order for the offline replay (SPEC section 5): a stable external sort.

Records are ``(time, line, origin)``: event time in Unix seconds, the original line and where
it came from. They come out stably sorted by time: ties keep input order. Up to ``run_size``
records are sorted in memory and touch no disk. Beyond that each run of ``run_size`` records
is sorted and spilled to a temporary file, and the runs are merged.

The files have no name (``tempfile.TemporaryFile``: O_TMPFILE, or unlinked as soon as made),
so their space is freed when they are closed: when the output ends, fails or is closed early,
and also when the process is killed, which no clean-up code of ours would survive (a killed
replay was seen to leave a 290 MB spill directory behind).

Memory stays bounded whatever the input size: one run in memory, plus one small chunk and
one read buffer per run being merged. At most ``fan_in`` runs are merged at once (so a huge
input never holds thousands of files open); more runs are first merged in tiers, ``fan_in``
equal runs into one, like a log-structured merge. Stability: each run keeps input order
(``list.sort`` is stable), and ``heapq.merge`` gives ties to the earlier run, so merging
contiguous runs in input order is the same as a stable sort of the whole input.

``by_event_time_parsed`` carries a parsed object as a fourth element, so that a caller that
must parse every line before the sort (to reject bad ones on the spot) parses it only once
when the input fits in one run. Beyond one run the objects are dropped as records arrive
(the disk holds what ``by_event_time`` holds) and every record gets ``restore(line, origin)``
after the merge: the caller always receives a parsed object. Holding a run's parsed objects
until it is spilled was measured to cost more than parsing again (memory, and the garbage
collector walking them), and it would multiply a run's memory by about three.

Runs are written as pickled chunks of records: in C both ways, compact (the origin's file
name is written once per chunk) and faithful to the origin's types (a tuple stays a tuple).
Only files this process wrote, which no other process can open, are unpickled.
"""

from __future__ import annotations

import heapq
import os
import pickle
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import IO, Any, TypeVar

Origin = TypeVar("Origin")  # where a record came from, e.g. (file name, line number)
Parsed = TypeVar("Parsed")  # what the caller parsed the line into

# Measured with the benchmark's 290-byte lines (bench/ordering.py): a run of 50,000 adds about
# 28 MB of peak RSS, 66 MB while by_event_time_parsed holds the parsed events of one run.
RUN_SIZE = 50_000
FAN_IN = 64  # runs merged at once; each holds a chunk and a read buffer (about 200 KB)
CHUNK = 256  # records a pickle
READ_BUFFER = 1 << 16
WRITE_BUFFER = 1 << 20
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_TIME = itemgetter(0)
_HEAD = itemgetter(0, 1, 2)  # (time, line, origin) without the parsed object
_END: Any = object()


def by_event_time(
    records: Iterable[tuple[float, bytes, Origin]],
    *,
    run_size: int = RUN_SIZE,
    tmpdir: str | None = None,
    fan_in: int = FAN_IN,
) -> Generator[tuple[float, bytes, Origin], None, None]:
    """The records stably sorted by time (the first element). ``origin`` must pickle, and
    no time may be NaN (it compares false with everything).

    ``tmpdir`` is where runs are spilled (default: ``tempfile``'s, $TMPDIR); its files have
    no name, so nothing ever shows there.
    """
    _check(run_size, fan_in)
    return _sorted(records, run_size, tmpdir, fan_in, None)


def by_event_time_parsed(
    records: Iterable[tuple[float, bytes, Origin, Parsed]],
    restore: Callable[[bytes, Origin], Parsed],
    *,
    run_size: int = RUN_SIZE,
    tmpdir: str | None = None,
    fan_in: int = FAN_IN,
) -> Generator[tuple[float, bytes, Origin, Parsed], None, None]:
    """Like ``by_event_time`` for ``(time, line, origin, parsed)``; a record that was spilled
    comes back with ``restore(line, origin)`` as its parsed object."""
    _check(run_size, fan_in)
    return _sorted(records, run_size, tmpdir, fan_in, restore)


def _check(run_size: int, fan_in: int) -> None:
    if run_size < 1:
        raise ValueError(f"run_size must be at least 1, got {run_size}")
    if fan_in < 2:
        raise ValueError(f"fan_in must be at least 2, got {fan_in}")


def _sorted(
    records: Iterable[Any],
    run_size: int,
    tmpdir: str | None,
    fan_in: int,
    restore: Callable[[bytes, Any], Any] | None,
) -> Generator[Any, None, None]:
    source = iter(records)
    run = list(islice(source, run_size))
    following = next(source, _END)
    if following is _END:  # one run: no disk at all
        run.sort(key=_TIME)
        yield from run
        return
    if restore is not None:
        # More than one run: parsed objects are dropped as records arrive, and made again
        # after the merge. Holding a run of them until its spill costs more than parsing.
        run, following, source = list(map(_HEAD, run)), following[:3], map(_HEAD, source)
    with _Runs(tmpdir, fan_in) as runs:
        while following is not _END:
            runs.spill(run)
            run = [following]
            run.extend(islice(source, run_size - 1))
            following = next(source, _END)
        run.sort(key=_TIME)  # the last run is merged from memory
        runs.reduce(fan_in - 1)
        merged = heapq.merge(*runs.take(len(runs.runs)), run, key=_TIME)
        if restore is None:
            yield from merged
        else:
            for time, line, origin in merged:
                yield time, line, origin, restore(line, origin)


@dataclass(frozen=True)
class _Run:
    fd: int  # of a file without a name: its space is freed when the fd is closed
    chunks: int
    level: int  # how many merges made it: 0 for a run sorted in memory


class _Runs:
    """The spilled runs, in input order, each an open file without a name (so that nothing
    is left on disk however the process ends, even killed). Closing closes those left."""

    def __init__(self, tmpdir: str | None, fan_in: int):
        self.runs: list[_Run] = []
        self._tmpdir, self._fan_in = tmpdir, fan_in
        self._reading = ExitStack()

    def __enter__(self) -> _Runs:
        return self

    def __exit__(self, *exc: object) -> None:
        for run in self.runs:
            os.close(run.fd)
        self.runs.clear()
        self._reading.close()

    def spill(self, run: list[Any]) -> None:
        """Sort one run and write it; merge the latest ``fan_in`` runs while they are of
        one level, so that a record is rewritten at most log(runs, fan_in) times."""
        run.sort(key=_TIME)
        self.runs.append(self._write(iter(run), 0))
        runs, fan_in = self.runs, self._fan_in
        while len(runs) >= fan_in and runs[-fan_in].level == runs[-1].level:
            self._merge_tail(fan_in)

    def reduce(self, limit: int) -> None:
        """Merge the latest runs until at most ``limit`` remain."""
        while len(self.runs) > limit:
            self._merge_tail(min(self._fan_in, len(self.runs) - limit + 1))

    def take(self, count: int) -> list[Iterator[Any]]:
        """Readers of the latest ``count`` runs, which leave the list: their files are
        closed (and freed) with the runs, or after the merge for which they were taken."""
        readers = []
        start = len(self.runs) - count
        while len(self.runs) > start:
            run = self.runs[start]
            handle = open(run.fd, "rb", buffering=READ_BUFFER)
            self._reading.enter_context(handle)  # owns the fd now
            del self.runs[start]
            handle.seek(0)
            readers.append(_records(handle, run.chunks))
        return readers

    def _merge_tail(self, count: int) -> None:
        level = max(run.level for run in self.runs[-count:]) + 1
        with self._reading:
            merged = heapq.merge(*self.take(count), key=_TIME)
            self.runs.append(self._write(merged, level))
        self._reading = ExitStack()

    def _write(self, records: Iterator[Any], level: int) -> _Run:
        with tempfile.TemporaryFile(dir=self._tmpdir, buffering=WRITE_BUFFER) as handle:
            chunks = 0
            while chunk := list(islice(records, CHUNK)):
                pickle.dump(chunk, handle, _PROTOCOL)
                chunks += 1
            handle.flush()
            return _Run(os.dup(handle.fileno()), chunks, level)


def _records(handle: IO[bytes], chunks: int) -> Iterator[Any]:
    load = pickle.load
    for _ in range(chunks):
        yield from load(handle)

"""Event-time order for the offline replay (SPEC section 5): a stable external sort.

Records are ``(time, line, origin)``: event time in Unix seconds, the original line and where
it came from. They come out stably sorted by time: ties keep input order. Up to ``run_size``
records are sorted in memory and touch no disk. Beyond that each run of ``run_size`` records
is sorted and spilled to a private temporary directory, and the runs are merged; the
directory is removed when the output ends, fails or is closed early.

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
Only files this process wrote, in a directory only it can read (mode 0700), are unpickled.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, TypeVar

Origin = TypeVar("Origin")  # where a record came from, e.g. (file name, line number)
Parsed = TypeVar("Parsed")  # what the caller parsed the line into

# About 500 bytes a record for the benchmark's 290-byte lines: a run is about 25 MB (about
# 65 MB while by_event_time_parsed holds the parsed events of an input within one run).
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
    """The records stably sorted by time (the first element). ``origin`` must pickle.

    ``tmpdir`` is where the spill directory is made (default: ``tempfile``'s, $TMPDIR).
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
    with tempfile.TemporaryDirectory(prefix="promise-tracker-sort-", dir=tmpdir) as name:
        runs = _Runs(Path(name), fan_in)
        while following is not _END:
            runs.spill(run)
            run = [following]
            run.extend(islice(source, run_size - 1))
            following = next(source, _END)
        run.sort(key=_TIME)  # the last run is merged from memory
        runs.reduce(fan_in - 1)
        with ExitStack() as files:
            sources = [runs.read(spilled, files) for spilled in runs.runs]
            merged = heapq.merge(*sources, run, key=_TIME)
            if restore is None:
                yield from merged
            else:
                for time, line, origin in merged:
                    yield time, line, origin, restore(line, origin)


@dataclass(frozen=True)
class _Run:
    path: Path
    chunks: int
    level: int  # how many merges made it: 0 for a run sorted in memory


class _Runs:
    """The spilled runs, in input order, in one directory."""

    def __init__(self, directory: Path, fan_in: int):
        self.runs: list[_Run] = []
        self._directory, self._fan_in = directory, fan_in
        self._made = 0

    def spill(self, run: list[Any]) -> None:
        """Sort one run and write it; merge the latest ``fan_in`` runs while they are of
        one level, so that no record is rewritten more than log(runs) times."""
        run.sort(key=_TIME)
        self.runs.append(self._write(iter(run), 0))
        runs, fan_in = self.runs, self._fan_in
        while len(runs) >= fan_in and runs[-fan_in].level == runs[-1].level:
            self._merge_tail(fan_in)

    def reduce(self, limit: int) -> None:
        """Merge the latest runs until at most ``limit`` remain."""
        while len(self.runs) > limit:
            self._merge_tail(min(self._fan_in, len(self.runs) - limit + 1))

    def read(self, run: _Run, files: ExitStack) -> Iterator[Any]:
        handle = files.enter_context(run.path.open("rb", buffering=READ_BUFFER))
        return _records(handle, run.chunks)

    def _merge_tail(self, count: int) -> None:
        tail = self.runs[-count:]
        with ExitStack() as files:
            merged = heapq.merge(*(self.read(run, files) for run in tail), key=_TIME)
            written = self._write(merged, max(run.level for run in tail) + 1)
        for run in tail:
            run.path.unlink()
        self.runs[-count:] = [written]

    def _write(self, records: Iterator[Any], level: int) -> _Run:
        self._made += 1
        path = self._directory / f"run-{self._made}"
        chunks = 0
        with path.open("wb", buffering=WRITE_BUFFER) as handle:
            while chunk := list(islice(records, CHUNK)):
                pickle.dump(chunk, handle, _PROTOCOL)
                chunks += 1
        return _Run(path, chunks, level)


def _records(handle: IO[bytes], chunks: int) -> Iterator[Any]:
    load = pickle.load
    for _ in range(chunks):
        yield from load(handle)

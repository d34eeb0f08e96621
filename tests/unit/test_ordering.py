"""SPEC section 5: replay's event-time order is a stable sort, in memory or spilled to disk."""

from __future__ import annotations

import gc
import heapq
import os
import random
from operator import itemgetter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promise_tracker.streams import ordering
from promise_tracker.streams.ordering import by_event_time, by_event_time_parsed

by_time = itemgetter(0)


def records_of(files: int, lines: int, times: int, seed: int = 0) -> list:
    """(time, line, (file, number)) for several files, times from a small set: many ties,
    within a file and across files."""
    rng = random.Random(seed)
    return [
        (float(rng.randrange(times)), f"{name}:{number}".encode(), (name, number))
        for name in (f"service-{i}.jsonl" for i in range(files))
        for number in range(1, lines + 1)
    ]


def open_in(where: Path) -> int:
    """Files this process holds open in ``where``. Spilled runs have no name, but their
    descriptors still point into the directory they were made in (``#123 (deleted)``)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(f"{where}/")
        except OSError:
            continue
    return count


def nothing_left(where: Path) -> bool:
    return open_in(where) == 0 and not any(where.iterdir())


def test_in_memory_is_the_stable_sort_and_touches_no_disk(tmp_path: Path) -> None:
    records = records_of(files=3, lines=200, times=20)
    out = by_event_time(records, run_size=len(records), tmpdir=str(tmp_path))
    first = next(out)
    assert nothing_left(tmp_path)
    assert [first, *out] == sorted(records, key=by_time)


@pytest.mark.parametrize("run_size", [1, 2, 7, 199, 200, 599])
def test_spilled_runs_merge_to_the_stable_sort(tmp_path: Path, run_size: int) -> None:
    records = records_of(files=3, lines=200, times=20)
    out = by_event_time(records, run_size=run_size, tmpdir=str(tmp_path))
    first = next(out)
    assert open_in(tmp_path) >= 1  # it did spill
    assert not any(tmp_path.iterdir())  # to files without a name
    assert [first, *out] == sorted(records, key=by_time)
    assert nothing_left(tmp_path)


@pytest.mark.parametrize(("run_size", "fan_in"), [(1, 2), (3, 2), (5, 3), (2, 4), (10, 64)])
def test_merging_in_tiers_keeps_the_stable_sort(tmp_path: Path, run_size: int, fan_in: int) -> None:
    """More runs than fan_in: runs are merged into bigger runs first, still stably."""
    records = records_of(files=4, lines=150, times=7, seed=1)
    out = by_event_time(records, run_size=run_size, tmpdir=str(tmp_path), fan_in=fan_in)
    assert list(out) == sorted(records, key=by_time)
    assert nothing_left(tmp_path)


def test_ties_keep_file_order_then_line_order(tmp_path: Path) -> None:
    later = [(5.0, b"a1", ("a", 1)), (1.0, b"a2", ("a", 2)), (5.0, b"a3", ("a", 3))]
    earlier = [(5.0, b"b1", ("b", 1)), (0.0, b"b2", ("b", 2)), (5.0, b"b3", ("b", 3))]
    for run_size in (1, 2, 6):
        out = by_event_time(later + earlier, run_size=run_size, tmpdir=str(tmp_path))
        assert [line for _, line, _ in out] == [b"b2", b"a2", b"a1", b"a3", b"b1", b"b3"]


def test_a_full_single_run_stays_in_memory(tmp_path: Path) -> None:
    records = records_of(files=1, lines=10, times=3)
    out = by_event_time(records, run_size=10, tmpdir=str(tmp_path))
    next(out)
    assert nothing_left(tmp_path)
    out.close()


def test_spilled_records_keep_their_bytes_and_origin_types(tmp_path: Path) -> None:
    records = [(2.0, b"\xff\x00not utf-8\n", ("f", 1)), (1.0, b"", ("f", 2))]
    out = list(by_event_time(records, run_size=1, tmpdir=str(tmp_path)))
    assert out == [records[1], records[0]]
    assert all(type(origin) is tuple for _, _, origin in out)


def test_empty_input(tmp_path: Path) -> None:
    assert list(by_event_time([], tmpdir=str(tmp_path))) == []
    assert list(by_event_time_parsed([], str, run_size=1, tmpdir=str(tmp_path))) == []
    assert nothing_left(tmp_path)


def test_spilled_files_are_freed_when_the_consumer_stops_early(tmp_path: Path) -> None:
    records = records_of(files=2, lines=100, times=50)
    out = by_event_time(records, run_size=10, tmpdir=str(tmp_path))
    next(out)
    assert open_in(tmp_path) >= 1
    out.close()
    assert nothing_left(tmp_path)


def test_spilled_files_are_freed_when_an_abandoned_output_is_collected(
    tmp_path: Path,
) -> None:
    out = by_event_time(records_of(2, 100, 50), run_size=10, tmpdir=str(tmp_path))
    next(out)
    assert open_in(tmp_path) >= 1
    del out
    gc.collect()
    assert nothing_left(tmp_path)


def test_spilled_files_are_freed_when_the_input_fails(tmp_path: Path) -> None:
    def failing():
        yield from records_of(files=1, lines=30, times=5)
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        list(by_event_time(failing(), run_size=4, tmpdir=str(tmp_path)))
    assert nothing_left(tmp_path)


def test_spilled_files_are_freed_when_the_consumer_fails(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        for _ in by_event_time(records_of(1, 30, 5), run_size=4, tmpdir=str(tmp_path)):
            raise ZeroDivisionError
    assert nothing_left(tmp_path)


def test_nothing_is_read_before_the_first_record_is_asked_for(tmp_path: Path) -> None:
    def refused():
        raise AssertionError("read too early")
        yield

    by_event_time(refused(), run_size=1, tmpdir=str(tmp_path))
    assert nothing_left(tmp_path)


def test_parsed_objects_travel_in_memory_and_are_made_again_after_a_spill(
    tmp_path: Path,
) -> None:
    """Within one run the caller's own objects come out, restore never called; beyond it
    every record gets restore(line, origin) (none is held until its run is spilled)."""
    plain = records_of(files=2, lines=25, times=6)
    parsed = [(t, line, origin, {"parsed": line}) for t, line, origin in plain]
    calls: list[tuple[bytes, tuple[str, int]]] = []

    def restore(line: bytes, origin: tuple[str, int]) -> dict[str, bytes]:
        calls.append((line, origin))
        return {"parsed": line}

    out = list(by_event_time_parsed(parsed, restore, run_size=50, tmpdir=str(tmp_path)))
    assert out == sorted(parsed, key=by_time)
    assert calls == []
    assert {id(payload) for *_, payload in out} == {id(payload) for *_, payload in parsed}

    for run_size in (1, 7, 49):
        calls.clear()
        out = list(by_event_time_parsed(parsed, restore, run_size=run_size, tmpdir=str(tmp_path)))
        assert out == sorted(parsed, key=by_time)
        assert calls == [(line, origin) for _, line, origin, _ in out]
    assert nothing_left(tmp_path)


def test_arguments_are_checked_when_called() -> None:
    with pytest.raises(ValueError, match="run_size"):
        by_event_time([], run_size=0)
    with pytest.raises(ValueError, match="fan_in"):
        by_event_time_parsed([], str, fan_in=1)


def test_chunks_shorter_than_a_run_read_back_whole(tmp_path: Path, monkeypatch) -> None:
    """A run written as several chunks (and a last partial one) reads back in order."""
    monkeypatch.setattr(ordering, "CHUNK", 3)
    records = records_of(files=2, lines=40, times=9)
    assert list(by_event_time(records, run_size=10, tmpdir=str(tmp_path), fan_in=2)) == sorted(
        records, key=by_time
    )


def test_never_more_than_fan_in_runs_are_merged_at_once(tmp_path: Path, monkeypatch) -> None:
    """Files open at once stay bounded however many runs a large input makes."""
    widths: list[int] = []
    merge = heapq.merge

    def counting(*iterables, key=None):
        widths.append(len(iterables))
        return merge(*iterables, key=key)

    monkeypatch.setattr(heapq, "merge", counting)
    records = records_of(files=2, lines=200, times=30)
    out = list(by_event_time(records, run_size=3, tmpdir=str(tmp_path), fan_in=5))
    assert out == sorted(records, key=by_time)
    assert len(widths) > 10 and max(widths) == 5


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    times=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 1e9, -3.25]), max_size=120),
    run_size=st.integers(min_value=1, max_value=130),
    fan_in=st.integers(min_value=2, max_value=5),
    chunk=st.integers(min_value=1, max_value=9),
    parsed=st.booleans(),
)
def test_any_input_comes_out_as_the_stable_sort(
    tmp_path: Path, times: list[float], run_size: int, fan_in: int, chunk: int, parsed: bool
) -> None:
    """Many ties, any run size (one run or many, merged in tiers), any chunk size."""
    options: dict[str, Any] = {"run_size": run_size, "tmpdir": str(tmp_path), "fan_in": fan_in}
    out: list
    saved = ordering.CHUNK
    ordering.CHUNK = chunk
    try:
        if parsed:
            records: list = [(t, b"%d" % i, ("f", i), [i]) for i, t in enumerate(times)]
            out = list(by_event_time_parsed(records, lambda line, o: [o[1]], **options))
        else:
            records = [(t, b"%d" % i, ("f", i)) for i, t in enumerate(times)]
            out = list(by_event_time(records, **options))
    finally:
        ordering.CHUNK = saved
    assert out == sorted(records, key=by_time)
    assert nothing_left(tmp_path)

"""A live worker that crashes and restores its engine from persisted entries ends where an
uninterrupted run ends, however often it crashes and whatever it had not yet sent."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from promise_tracker.schemas.parse import parse
from promise_tracker.schemas.reject import Reject
from promise_tracker.streams.engine import Engine
from promise_tracker.streams.snapshot import decode_entry, encode_entry
from tests.property.strategies import CONFIG, FAST, LATENESS, final_state, streams, summary
from tests.support import Collected, line

INF = float("inf")


def crashing_run(
    events: list[dict],
    lateness: float,
    crashes: list[tuple[int, bool]],
    batch: int,
    commit_every: int,
) -> tuple[dict, dict, list, dict]:
    """Drive the engine as the worker does, crashing it at the given positions.

    Every ``batch`` events the worker persists the entries changed in the batch and then
    sends the batch's emissions (the other order is wrong: see tests/unit/test_live.py);
    every
    ``commit_every`` batches it commits its input position. A crash loses the engine and
    whatever was not yet persisted or sent; a crash flagged True falls between the two
    steps of a batch's end. The restarted engine restores from what was persisted (which
    may be ahead of the commit), says its emissions again and re-reads from the commit.
    Returns the final state as the output topic tells it."""
    raws = [line(event) for event in events]
    out = Collected()  # the engine's listener: emissions wait there until sent
    topic: list = []  # the output topic
    warnings_topic: list = []
    store: dict[str, bytes] = {}
    changed: dict[str, bytes | None] = {}
    max_time = stored_max = -INF

    def fresh() -> Engine:
        engine = Engine(CONFIG, out, clock=lambda: 0.0)
        engine.dirty = set()
        return engine

    def persist() -> None:
        nonlocal stored_max
        stored_max = max_time  # the worker persists its clocks with the entries
        for pid, value in changed.items():
            if value is None:
                store.pop(pid, None)
            else:
                store[pid] = value
        changed.clear()

    def send() -> None:
        topic.extend(out.emissions)
        out.emissions.clear()
        warnings_topic.extend(out.warnings)
        out.warnings.clear()

    engine = fresh()
    position = committed = batches = 0
    pending = sorted(crashes)
    while position < len(raws):
        if pending and pending[0][0] <= position:
            _, halfway = pending.pop(0)
            if halfway:  # the batch's state was persisted, its emissions not sent
                persist()
            out.emissions.clear()
            out.warnings.clear()
            changed.clear()
            engine = fresh()
            max_time = stored_max
            engine.restore((decode_entry(raw) for raw in store.values()), max_time - lateness)
            engine.announce()
            send()  # what it says again describes persisted state
            position = committed
            continue
        event = parse(raws[position], origin=position)
        if isinstance(event, Reject):
            engine.refuse(event)
        else:
            t = engine.process(event, raws[position], position)
            if t is not None:
                max_time = max(max_time, t)
                engine.advance(max_time - lateness)
        for pid in engine.dirty:
            entry = engine.entry(pid)
            changed[pid] = None if entry is None else encode_entry(entry)
        engine.dirty.clear()
        position += 1
        if position % batch == 0 or position == len(raws):
            persist()
            send()
            batches += 1
            if batches % commit_every == 0:
                committed = position
    engine.finish()
    persist()
    send()
    out.emissions, out.warnings = topic, warnings_topic
    active, outcomes, rejected, warnings = summary(engine, out)
    return active, outcomes, sorted(set(rejected)), warnings


CRASHES = st.lists(st.tuples(st.integers(0, 16), st.booleans()), max_size=4)


@FAST
@given(st.data())
def test_crash_and_restore_end_where_an_uninterrupted_run_ends(data):
    events = data.draw(streams())
    lateness = data.draw(LATENESS)
    crashes = data.draw(CRASHES)
    batch = data.draw(st.integers(1, 4))
    commit_every = data.draw(st.integers(1, 3))
    active, outcomes, rejected, warnings = final_state(events, lateness)
    assert crashing_run(events, lateness, crashes, batch, commit_every) == (
        active,
        outcomes,
        sorted(set(rejected)),
        warnings,
    )


@FAST
@given(streams())
def test_entries_round_trip_through_json(events):
    out = Collected()
    engine = Engine(CONFIG, out, clock=lambda: 0.0)
    engine.dirty = set()
    for number, raw in enumerate(map(line, events)):
        event = parse(raw)
        if not isinstance(event, Reject):
            engine.process(event, raw, number)
    for pid in engine.dirty:
        entry = engine.entry(pid)
        assert entry is not None
        assert decode_entry(encode_entry(entry)) == entry

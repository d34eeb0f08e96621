"""A live worker that crashes and restores its engine from persisted entries ends where an
uninterrupted run ends, however often it crashes and whatever it had not yet sent."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.parse import parse
from schemas.reject import Reject
from streams.engine import Engine, EngineConfig
from streams.snapshot import decode_entry, encode_entry
from tests.property.test_order import FAST, LATENESS, _summary, final_state, streams
from tests.support import Collected, line

INF = float("inf")


def crashing_run(
    events: list[dict], lateness: float, crashes: list[int], commit_every: int
) -> tuple[dict, dict, list]:
    """Drive the engine as the worker does: persist each changed entry after every event,
    commit the input every few events. A crash loses the engine and every emission since
    the last commit; the restarted engine restores from the entries (which may be ahead of
    the commit), says its emissions again, and re-reads the input from the commit."""
    raws = [line(event) for event in events]
    out = Collected()
    store: dict[str, bytes] = {}
    max_time = -INF

    def fresh() -> Engine:
        engine = Engine(EngineConfig(), out, clock=lambda: 0.0)
        engine.dirty = set()
        return engine

    engine = fresh()
    position = committed = sent_at_commit = 0
    pending = sorted(set(crashes))
    while position < len(raws):
        if pending and pending[0] <= position:
            pending.pop(0)
            del out.emissions[sent_at_commit:]  # never reached the output topic
            engine = fresh()
            engine.restore((decode_entry(raw) for raw in store.values()), max_time - lateness)
            engine.announce()
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
            if entry is None:
                store.pop(pid, None)
            else:
                store[pid] = encode_entry(entry)
        engine.dirty.clear()
        position += 1
        if position % commit_every == 0:
            committed, sent_at_commit = position, len(out.emissions)
    engine.finish()
    active, outcomes, rejected = _summary(engine, out)
    return active, outcomes, sorted(set(rejected))


@FAST
@given(st.data())
def test_crash_and_restore_end_where_an_uninterrupted_run_ends(data):
    events = data.draw(streams())
    lateness = data.draw(LATENESS)
    crashes = data.draw(st.lists(st.integers(0, len(events)), max_size=4))
    commit_every = data.draw(st.integers(1, 5))
    active, outcomes, rejected = final_state(events, lateness)
    assert crashing_run(events, lateness, crashes, commit_every) == (
        active,
        outcomes,
        sorted(set(rejected)),
    )


@FAST
@given(streams())
def test_entries_round_trip_through_json(events):
    out = Collected()
    engine = Engine(EngineConfig(), out, clock=lambda: 0.0)
    engine.dirty = set()
    for number, raw in enumerate(map(line, events)):
        event = parse(raw)
        if not isinstance(event, Reject):
            engine.process(event, raw, number)
    for pid in engine.dirty:
        entry = engine.entry(pid)
        assert entry is not None
        assert decode_entry(encode_entry(entry)) == entry

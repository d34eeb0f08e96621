"""SPEC section 5: the final state does not depend on the order of the input lines."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.property.strategies import FAST, LATENESS, final_state, streams


@FAST
@given(st.data())
def test_any_permutation_gives_the_same_final_state(data):
    events = data.draw(streams())
    shuffled = data.draw(st.permutations(events))
    lateness = data.draw(LATENESS)
    assert final_state(shuffled, lateness) == final_state(events, lateness)


@FAST
@given(st.data())
def test_exact_duplicates_change_nothing(data):
    events = data.draw(streams())
    extra = data.draw(st.lists(st.sampled_from(events), min_size=1, max_size=5))
    mixed = data.draw(st.permutations(events + extra))
    lateness = data.draw(LATENESS)
    assert final_state(mixed, lateness) == final_state(events, lateness)


@FAST
@given(st.data())
def test_late_input_ends_where_time_ordered_input_ends(data):
    """Time-ordered input has no late events; any other order re-emits and retracts its way
    to the same final state."""
    events = data.draw(streams())
    in_time_order = sorted(events, key=lambda e: e["time"])
    lateness = data.draw(LATENESS)
    shuffled = data.draw(st.permutations(events))
    assert final_state(shuffled, lateness) == final_state(in_time_order, lateness)

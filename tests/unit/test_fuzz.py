"""Thousands of malformed lines: every one is rejected with a reason, nothing crashes."""

from __future__ import annotations

import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from promise_tracker.schemas import Reason, Reject, parse
from promise_tracker.streams.replay import replay
from tests.malformed import malformed


def test_thousands_of_malformed_lines_are_all_rejected(tmp_path):
    rng = random.Random(20261127)
    lines = [malformed(rng) for _ in range(3000)]
    for raw in lines:
        result = parse(raw)
        assert isinstance(result, Reject), raw[:200]
        assert result.reason in Reason and result.message and result.raw == raw
    source = tmp_path / "junk.jsonl"
    source.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    out = {n: tmp_path / f"{n}.jsonl" for n in ("v", "o", "r")}
    summary = replay([source], out["v"], out["o"], out["r"], progress=False)
    rejected = [orjson.loads(x) for x in out["r"].read_bytes().splitlines()]
    assert len(rejected) == summary.lines - summary.blank
    assert all(r["reason"] in {str(x) for x in Reason} for r in rejected)
    assert out["v"].read_bytes() == b"" and out["o"].read_bytes() == b""


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_rejected_with_their_bytes(raw: bytes):
    result = parse(raw)
    assert isinstance(result, Reject) and result.reason in Reason and result.raw == raw


@settings(max_examples=500, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
    )
)
def test_random_json_is_rejected_with_a_reason(value):
    result = parse(orjson.dumps(value))
    assert isinstance(result, Reject) and result.reason in (
        Reason.INVALID_EVENT,
        Reason.UNKNOWN_TYPE,
    )

"""The parser: every bad input becomes a reject that names the field and the fix."""

from __future__ import annotations

import orjson
import pytest

from promise_tracker.schemas import Reason, Reject, parse
from promise_tracker.schemas.jsonschema import check
from promise_tracker.schemas.models import PromiseIssued
from tests.support import observe, promise, ts

GOOD = promise("p", "deadline", {"open_until": ts(24)}, text="Selection date: 11/01")


def mutated(**changes) -> bytes:
    event = orjson.loads(orjson.dumps(GOOD))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = event
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[leaf]
        else:
            target[leaf] = value
    return orjson.dumps(event)


def test_a_good_event_parses_to_a_typed_promise():
    event = parse(orjson.dumps(GOOD))
    assert isinstance(event, PromiseIssued) and event.data.text == "Selection date: 11/01"


@pytest.mark.parametrize(
    ("raw", "reason", "names"),
    [
        (b"not json", Reason.INVALID_JSON, "JSON"),
        (b'{"a": "\xff"}', Reason.INVALID_JSON, "UTF-8"),
        (b"null", Reason.INVALID_EVENT, "object"),
        (b"[]", Reason.INVALID_EVENT, "object"),
        (mutated(type="promise.teleported"), Reason.UNKNOWN_TYPE, "promise.teleported"),
        (mutated(type=KeyError), Reason.INVALID_EVENT, "type is missing"),
        (mutated(specversion="0.3"), Reason.INVALID_EVENT, "specversion"),
        (mutated(id=""), Reason.INVALID_EVENT, "id"),
        (mutated(id="x" * 201), Reason.INVALID_EVENT, "id"),
        (mutated(source=KeyError), Reason.INVALID_EVENT, "source is missing"),
        (mutated(time="2026-01-01T00:00:00"), Reason.INVALID_EVENT, "time"),
        (mutated(time="yesterday"), Reason.INVALID_EVENT, "time"),
        (mutated(time=1767225600), Reason.INVALID_EVENT, "time"),
        (mutated(data=KeyError), Reason.INVALID_EVENT, "data is missing"),
        (mutated(data__kind="promise_ish"), Reason.INVALID_EVENT, "data.kind 'promise_ish'"),
        (mutated(data__channel="pigeon"), Reason.INVALID_EVENT, "data.channel"),
        (mutated(data__terms={"due_at": ts(1)}), Reason.INVALID_EVENT, "data.terms.open_until"),
        (mutated(data__labels={"team": 7}), Reason.INVALID_EVENT, "data.labels"),
        (mutated(data__text=["x"]), Reason.INVALID_EVENT, "data.text"),
        (mutated(source=""), Reason.INVALID_EVENT, "source"),
        (b"[" * 100_000 + b"]" * 100_000, Reason.INVALID_EVENT, "object"),
        (b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", Reason.INVALID_EVENT, "nested"),
        (b" " * (1 << 20) + b"{}", Reason.INVALID_EVENT, "limit"),
    ],
)
def test_bad_input_is_rejected_with_a_reason_and_the_field(raw, reason, names):
    reject = parse(raw)
    assert isinstance(reject, Reject)
    assert reject.reason == reason and reject.raw == raw
    assert names in reject.message


@pytest.mark.parametrize(
    ("kind", "value", "field"),
    [
        ("hold_time", {"seconds": -1}, "data.value.seconds"),
        ("hold_time", {"seconds": "20m"}, "data.value.seconds"),
        ("page_reached", {}, "data.value.page"),
        ("channel_status", {"channel": "phone"}, "data.value.available"),
        ("channel_status", {"channel": "fax", "available": False}, "data.value.channel"),
    ],
)
def test_observation_values_are_checked_by_kind(kind, value, field):
    reject = parse(orjson.dumps(observe("o", "p", kind, ts(1), **value)))
    assert isinstance(reject, Reject) and reject.reason == Reason.INVALID_EVENT
    assert field in reject.message


@pytest.mark.parametrize(
    ("kind", "terms", "field"),
    [
        ("max_wait", {"max_seconds": 0}, "data.terms.max_seconds"),
        ("max_steps", {"max_steps": 0, "goal": "g"}, "data.terms.max_steps"),
        ("max_steps", {"max_steps": 2.5, "goal": "g"}, "data.terms.max_steps"),
        ("channels_available", {"channels": [], "until": ts(1)}, "data.terms.channels"),
        ("deliver_by", {"due_at": "2026-13-01T00:00:00Z"}, "data.terms.due_at"),
    ],
)
def test_terms_must_fit_the_kind(kind, terms, field):
    reject = parse(orjson.dumps(promise("p", kind, terms)))
    assert isinstance(reject, Reject) and field in reject.message


def test_long_strings_are_fine_below_the_event_limit():
    """SPEC bounds only promise ids; the 1 MiB event limit bounds everything else."""
    event = observe("o" * 5000, "p", "page_reached", ts(1), page="p" * 5000)
    event["source"] = "s" * 5000
    assert not isinstance(parse(orjson.dumps(event)), Reject)
    long_text = mutated(data__text="x" * 100_000, subject="y" * 5000)
    assert not isinstance(parse(long_text), Reject)


def test_offsets_are_honoured():
    a = parse(orjson.dumps(promise("p", "deadline", {"open_until": "2026-01-02T01:00:00+01:00"})))
    assert a.data.terms.open_until.timestamp() == 1767312000.0


def test_published_json_schema_files_match_the_models():
    assert check() == [], "run: promise-tracker schemas --write"

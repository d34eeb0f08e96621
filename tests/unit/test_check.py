"""``promise-tracker check``: its numbers equal a computation from the replay's own outcomes
file on a generated stream (the files carry the measures, streams/records.py), the history
store being the same replay's tables on chdb."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.cli import cli, replay_generated

PLANNED_AT = "2026-03-06T00:00:00Z"  # after the generated stream's promises
UNTIL = dt.datetime(2026, 3, 6, tzinfo=dt.UTC).timestamp()
WINDOW = 28 * 86_400
UPPER = {"deadline", "max_wait", "max_steps", "deliver_by"}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A generated stream replayed into files and a chdb store: (store, outcomes)."""
    chdb, outcomes, _ = replay_generated(tmp_path_factory.mktemp("check"))
    return chdb, outcomes


def _busiest(outcomes: list[dict], kind: str) -> tuple[str, str]:
    groups = Counter((o["service"], o["channel"]) for o in outcomes if o["kind"] == kind)
    return groups.most_common(1)[0][0]


def _planned(pid: str, kind: str, service: str, channel: str) -> dict:
    terms = {
        "deadline": {"open_until": "2026-03-20T00:00:00Z"},
        "max_wait": {"max_seconds": 900},
        "max_steps": {"max_steps": 4, "goal": "done"},
        "deliver_by": {"due_at": "2026-03-07T12:00:00Z"},
        "channels_available": {"channels": [channel], "until": "2026-03-06T06:00:00Z"},
    }[kind]
    return {
        "specversion": "1.0",
        "type": "promise.issued",
        "source": service,
        "id": pid,
        "time": PLANNED_AT,
        "data": {"kind": kind, "channel": channel, "terms": terms},
    }


def _threshold(kind: str) -> float:
    return {
        "deadline": 0.0,
        "max_wait": 900.0,
        "max_steps": 4.0,
        "deliver_by": 36 * 3_600.0,
        "channels_available": 6 * 3_600.0,
    }[kind]


def _expected(outcomes: list[dict], kind: str, service: str, channel: str, t: float) -> dict:
    """The answer's numbers, by direct count over the outcomes file."""
    history = [
        o
        for o in outcomes
        if (o["kind"], o["service"], o["channel"]) == (kind, service, channel)
        and UNTIL - WINDOW <= o["issued_at"] < UNTIL
        and o["status"] in ("kept", "broken")
    ]
    kept = sum(o["status"] == "kept" for o in history)
    comparable = satisfied = 0
    for o in history:
        m = o["measured"]
        if kind in UPPER:
            comparable += 1
            satisfied += m is not None and m <= t
        elif m is not None:
            comparable += 1
            satisfied += m >= t
        elif o["allowed"] >= t:  # no outage in a window at least as long
            comparable += 1
            satisfied += 1
    values = sorted(o["measured"] for o in history if o["measured"] is not None)
    return {
        "kept": kept,
        "broken": len(history) - kept,
        "comparable": comparable,
        "probability": satisfied / comparable,
        "median": values[math.ceil(0.5 * len(values)) - 1],
        "history": history,
    }


def _check(store: Path, events: list[dict], *more: str) -> tuple[list[dict], str, int]:
    text = b"".join(orjson.dumps(e) + b"\n" for e in events)
    plan = store.parent / "plan.jsonl"
    plan.write_bytes(text)
    done = cli("check", str(plan), "--clickhouse", str(store), "--database",
               "promise_tracker_replay", *more)  # fmt: skip
    return [orjson.loads(x) for x in done.stdout.splitlines()], done.stderr, done.returncode


@pytest.mark.parametrize("kind", ["deadline", "max_wait", "max_steps", "deliver_by",
                                  "channels_available"])  # fmt: skip
def test_the_probabilities_are_the_outcome_files(replayed, kind):
    store, outcomes = replayed
    service, channel = _busiest(outcomes, kind)
    answers, stderr, code = _check(store, [_planned("plan-1", kind, service, channel)])
    assert code == 0, stderr
    [got] = answers
    want = _expected(outcomes, kind, service, channel, _threshold(kind))
    assert want["comparable"] >= 30, "the generated history is too small for this test"
    assert got["enough_history"] is True
    assert got["history"] == {"kept": want["kept"], "broken": want["broken"]}
    assert got["keep_rate"] == pytest.approx(want["kept"] / (want["kept"] + want["broken"]))
    assert got["comparable"] == want["comparable"]
    assert got["probability_kept"] == pytest.approx(want["probability"], abs=1e-12)
    assert got["measure"]["quantiles"]["0.5"] == want["median"]
    assert got["contradictions"] == [] and got["capabilities"] == {"declared": 0}
    assert "plan-1: " in stderr and got["sentence"] in stderr
    tight = got["tightest"]
    if tight is not None:  # its probability too, recomputed at its threshold
        again = _expected(outcomes, kind, service, channel, tight["threshold"])
        assert tight["probability_kept"] == pytest.approx(again["probability"], abs=1e-12)
        assert tight["probability_kept"] >= 0.95
        assert (
            f"'{tight['terms']}' ({math.floor(tight['probability_kept'] * 100)}% kept)"
            in (got["sentence"])
        )


def test_the_tightest_terms_are_the_tightest(replayed):
    """max_wait: the tightest limit kept 95% is kept 95%; one second less is not."""
    store, outcomes = replayed
    service, channel = _busiest(outcomes, "max_wait")
    [got], _, _ = _check(store, [_planned("p", "max_wait", service, channel)])
    tight = got["tightest"]["threshold"]
    below = _expected(outcomes, "max_wait", service, channel, tight - 60)  # one grid step
    assert below["probability"] < 0.95 <= got["tightest"]["probability_kept"]


def test_too_little_history_says_so_instead_of_guessing(replayed):
    store, outcomes = replayed
    service, channel = _busiest(outcomes, "max_wait")
    events = [
        _planned("known", "max_wait", service, channel),
        _planned("unknown", "max_wait", "nobody/here", channel),
    ]
    answers, stderr, code = _check(store, events, "--min-history", "100000")
    assert code == 0
    for got in answers:
        assert got["enough_history"] is False
        assert got["probability_kept"] is None and got["tightest"] is None
        assert got["sentence"].startswith("too little history")
        assert "fewer than 100000" in got["sentence"]
    [_, unknown] = answers
    assert unknown["comparable"] == 0 and unknown["history"] == {"kept": 0, "broken": 0}


def test_a_bad_line_is_an_error_naming_the_field(replayed):
    store, outcomes = replayed
    bad = _planned("bad", "max_wait", "s", "web")
    bad["data"]["terms"]["max_seconds"] = "soon"
    observation = {**_planned("obs", "max_wait", "s", "web"), "type": "delivery.observed"}
    answers, stderr, code = _check(
        store, [bad, _planned("ok", "max_steps", "s", "web"), observation]
    )
    assert code == 3
    assert answers[0]["error"]["message"].startswith("data.terms.max_seconds:")
    assert answers[0]["promise_id"] == "bad" and answers[0]["line"] == 1
    assert answers[1]["promise_id"] == "ok" and "error" not in answers[1]
    assert "error" in answers[2]
    assert "line 1: data.terms.max_seconds" in stderr


def test_bad_options_are_usage_errors(replayed):
    store, _ = replayed
    for option in (["--window", "soon"], ["--confidence", "1.5"], ["--min-history", "0"]):
        _, stderr, code = _check(store, [], *option)
        assert code == 2 and option[0] in stderr


def test_outcome_records_carry_terms_and_measures(replayed):
    """Every decided outcome in the file has its terms, measure and allowed value."""
    _, outcomes = replayed
    decided = [o for o in outcomes if o["status"] in ("kept", "broken")]
    assert decided
    for o in decided:
        assert o["terms"] and o["measure"] and o["allowed"] is not None, o
        if o["kind"] in ("deadline", "max_wait"):
            assert o["measured"] is not None, o
        if o["kind"] == "max_steps" and o["status"] == "kept":
            assert o["measured"] <= o["terms"]["max_steps"], o
        if o["kind"] == "deliver_by" and o["status"] == "kept":
            assert o["measured"] <= o["allowed"], o


def test_a_planned_promise_that_contradicts_a_declared_window_says_so(replayed):
    """Issue 16 item 2 in the check: capability.declared lines beside the planned promises
    (anywhere in the file) are what the promises are checked against."""
    store, outcomes = replayed
    service, channel = _busiest(outcomes, "deadline")
    card = _planned("card", "deadline", service, channel)
    card["data"]["relies_on"] = ["shop:selection"]
    fine = _planned("fine", "deadline", service, channel)
    fine["data"]["relies_on"] = ["shop:other"]

    def window(did: str, capability: str, closes: str) -> dict:
        return {
            "specversion": "1.0",
            "type": "capability.declared",
            "source": "shop",
            "id": did,
            "time": "2026-01-01T00:00:00Z",
            "data": {"kind": "window", "capability": capability, "window": {"closes_at": closes}},
        }

    events = [
        card,
        window("w1", "shop:selection", "2026-03-19T00:00:00Z"),  # a day before open_until
        window("w2", "shop:other", "2026-03-21T00:00:00Z"),
        fine,
    ]
    answers, _, code = _check(store, events)
    assert code == 0 and [a["promise_id"] for a in answers] == ["card", "fine"]
    (said,) = answers[0]["contradictions"]
    assert said["capability"] == "shop:selection" and said["resolved_at"] is None
    assert "closes shop:selection at 2026-03-19 00:00 UTC (24 h earlier)" in said["detail"]
    assert answers[1]["contradictions"] == []
    assert answers[0]["capabilities"] == answers[1]["capabilities"] == {"declared": 2}
    # a capability line that is not valid is an error answer naming its line and field
    bad = window("w3", "shop:selection", "soon")
    answers, stderr, code = _check(store, [card, bad])
    assert code == 3 and answers[1]["line"] == 2 and answers[1]["promise_id"] == "w3"
    assert answers[1]["error"]["message"].startswith("data.window.closes_at:")
    assert answers[0]["capabilities"] == {"declared": 0}
    # capabilities without a planned promise: said, not an empty answer
    answers, stderr, code = _check(store, [window("w4", "shop:selection", "2026-03-19T00:00:00Z")])
    assert code == 3 and len(answers) == 1
    assert answers[0]["error"]["message"].startswith(
        "type: no promise.issued event to check, only 1 capability.declared"
    )


class _NoHistory:
    """A store with no outcomes (the in-memory twin of ClickHouseStore.rows)."""

    def rows(self, sql: str, params: object = None) -> list[dict]:
        return [{"kept": 0, "broken": 0, "values_": [], "open_ended": []}]


def test_the_capabilities_given_are_not_changed_by_the_events_checked():
    """check_events (the API's path): the declarations among the events are added to a
    copy of the ones given (serve --kafka's, shared by every request)."""
    from promise_tracker.check.answer import (
        MEASURES,
        CheckOptions,
        check_events,
    )
    from promise_tracker.check.history import HistoryReader
    from promise_tracker.schemas.models import CapabilityDeclared
    from promise_tracker.schemas.parse import parse
    from promise_tracker.streams.capabilities import Capabilities

    def window(did: str, closes: str, time: str) -> dict:
        return {"specversion": "1.0", "type": "capability.declared", "source": "shop",
                "id": did, "time": time, "data": {"kind": "window", "capability": "shop:x",
                                                 "window": {"closes_at": closes}}}  # fmt: skip

    given = Capabilities()
    early = parse(orjson.dumps(window("w1", "2026-03-19T00:00:00Z", "2026-01-01T00:00:00Z")))
    assert type(early) is CapabilityDeclared
    given.declare_event(early)
    card = _planned("card", "deadline", "s", "web")
    card["data"]["relies_on"] = ["shop:x"]
    later = window("w2", "2026-03-21T00:00:00Z", "2026-02-01T00:00:00Z")  # resolves it
    reader = HistoryReader(_NoHistory(), MEASURES)
    events = [(0, orjson.dumps(later)), (1, orjson.dumps(card))]
    [with_later] = check_events(events, reader, CheckOptions(), capabilities=given)
    assert with_later["contradictions"] == [] and with_later["capabilities"] == {"declared": 2}
    assert len(given) == 1
    [alone] = check_events([(0, orjson.dumps(card))], reader, CheckOptions(), capabilities=given)
    assert len(alone["contradictions"]) == 1 and alone["capabilities"] == {"declared": 1}


OFFICE = """
[office]
timezone = "UTC"
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]
"""


def _office_seconds(start: float, end: float) -> float:
    """Seconds of [start, end) inside Monday-Friday 09:00-17:00 UTC, day by day (an
    independent count: not the calendar module's)."""
    total = 0.0
    day = dt.datetime.fromtimestamp(start, dt.UTC).replace(hour=0, minute=0, second=0)
    while day.timestamp() < end:
        if day.weekday() < 5:
            opens, closes = day.timestamp() + 9 * 3_600, day.timestamp() + 17 * 3_600
            total += max(0.0, min(end, closes) - max(start, opens))
        day += dt.timedelta(days=1)
    return total


def test_a_delivery_within_business_time_is_measured_in_its_calendars_open_time(replayed):
    """A deliver_by "within 8 hours of office time": each past delivery of the group counts
    by the office hours it took (Mon-Fri 09-17 UTC), and the probability is the share of
    them within 8 such hours, as counted over the outcomes file; without the calendars the
    check says it cannot measure and guesses nothing."""
    store, outcomes = replayed
    service, channel = _busiest(outcomes, "deliver_by")
    plan = _planned("office-1", "deliver_by", service, channel)
    plan["data"]["terms"] = {"within_seconds": 8 * 3_600, "calendar": "office"}
    calendars = store.parent / "calendars.toml"
    calendars.write_text(OFFICE)
    [got], stderr, code = _check(store, [plan], "--calendars", str(calendars))
    assert code == 0, stderr
    history = _expected(outcomes, "deliver_by", service, channel, 0)["history"]
    took = sorted(
        _office_seconds(o["issued_at"], o["issued_at"] + o["measured"])
        for o in history
        if o["measured"] is not None
    )
    within = sum(t <= 8 * 3_600 for t in took)
    assert got["measure"]["calendar"] == "office" and got["comparable"] == len(history) >= 30
    assert got["probability_kept"] == pytest.approx(within / len(history), abs=1e-12)
    assert got["measure"]["quantiles"]["0.5"] == pytest.approx(took[math.ceil(0.5 * len(took)) - 1])
    assert got["planned"]["terms"] == "within 8 hours of office open time"
    assert _office_seconds(0, 7 * 86_400) == 40 * 3_600  # the counter itself: a 40-hour week
    [blind], _, code = _check(store, [plan])
    assert code == 0 and blind["probability_kept"] is None and blind["enough_history"] is False
    assert "'office', which the check does not have" in blind["sentence"]
    assert "--calendars" in blind["sentence"]

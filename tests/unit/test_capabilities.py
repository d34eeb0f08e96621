"""Declared capabilities and contradictions at issue time (issue 16, items 1-2), through the
engine as the replay drives it: the Prestige card said "open until 11/01" while the shop was
declared to close the selection on 10/31."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from promise_tracker.schemas.parse import parse
from promise_tracker.schemas.reject import Reject
from promise_tracker.streams.risk import warning_id
from tests.property.strategies import FAST
from tests.support import observe, promise, run, ts


def declared(did: str, capability: str, at: str, **window: str) -> dict:
    return {
        "specversion": "1.0",
        "type": "capability.declared",
        "source": "prestige/shop",
        "id": did,
        "time": at,
        "data": {
            "kind": "window",
            "capability": capability,
            "text": "yearbook selection",
            "window": window,
        },
    }


SHOP = "prestige/shop:yearbook-selection"
CARD = promise(
    "card",
    "deadline",
    {"open_until": "2013-11-01T23:59:00-04:00"},
    at="2013-10-07T10:00:00-04:00",
    channel="card",
    relies_on=[SHOP],
    text="Your yearbook selection date is 11/01/2013.",
)
CLOSES_EARLY = declared(
    "d1", SHOP, "2013-09-01T00:00:00-04:00", closes_at="2013-10-31T23:59:00-04:00"
)
FIXED = declared("d2", SHOP, "2013-10-20T12:00:00-04:00", closes_at="2013-11-01T23:59:00-04:00")
CLOCK = promise("clock", "max_wait", {"max_seconds": 60}, at="2013-10-25T00:00:00-04:00")
ENFORCED = observe("closed", "card", "deadline_enforced", "2013-11-01T00:00:00-04:00")
LABEL = "contradiction:" + SHOP


def final(events: list[dict]) -> tuple[dict, dict]:
    r = run(events)
    warnings = {w.warning_id: w for w in r.out.warnings}
    violations = {v.violation_id: v for v in r.out.emissions}
    return warnings, violations


def test_the_card_contradicts_the_shop_at_issue_time_with_both_words_side_by_side():
    warnings, _ = final([CLOSES_EARLY, CARD, CLOCK])
    (w,) = warnings.values()
    assert w.warning_id == warning_id("card", LABEL)
    assert (w.state, w.label, w.outcome) == ("active", LABEL, None)
    assert w.detail == (
        "card says open until 2013-11-01 23:59 -0400; prestige/shop:yearbook-selection closes "
        "yearbook selection at 2013-10-31 23:59 -0400 (24 h earlier)"
    )
    issued = parse(orjson.dumps(CARD))
    assert not isinstance(issued, Reject)
    assert w.warn_at == issued.time.timestamp()  # at once: weeks before 11/01


def test_a_redeclaration_that_lets_the_promise_be_kept_resolves_it():
    warnings, _ = final([CLOSES_EARLY, CARD, FIXED, CLOCK])
    (w,) = warnings.values()
    assert (w.state, w.outcome) == ("resolved", None)


def test_the_breach_carries_the_contradiction_that_predicted_it():
    warnings, violations = final([CLOSES_EARLY, CARD, ENFORCED, CLOCK])
    (v,) = violations.values()
    assert v.reason == "enforced_early"
    assert v.predicted_by == warning_id("card", LABEL)
    (w,) = warnings.values()
    assert (w.state, w.outcome) == ("resolved", "broken")


def test_no_contradiction_no_prediction():
    ok = declared("d0", SHOP, "2013-09-01T00:00:00-04:00", closes_at="2013-11-02T00:00:00-04:00")
    warnings, violations = final([ok, CARD, ENFORCED, CLOCK])
    assert warnings == {}
    (v,) = violations.values()
    assert v.predicted_by is None


def test_a_declaration_after_the_promise_contradicts_from_its_own_time():
    later = declared("d3", SHOP, "2013-10-15T00:00:00-04:00", closes_at="2013-10-31T23:59:00-04:00")
    warnings, _ = final([CARD, later, CLOCK])
    (w,) = warnings.values()
    assert w.state == "active"
    assert w.warn_at == parse(orjson.dumps(later)).time.timestamp()  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(6))
def test_any_order_gives_the_same_final_warnings_and_violations(seed: int):
    events = [CLOSES_EARLY, CARD, FIXED, ENFORCED, CLOCK]
    want = final(sorted(events, key=lambda e: e["time"]))
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    got = final(shuffled)

    def facts(answer: tuple[dict, dict]) -> tuple:
        warnings, violations = answer
        return (
            {k: (w.state, w.outcome, w.warn_at, w.detail) for k, w in warnings.items()},
            {k: (v.reason, v.state, v.predicted_by) for k, v in violations.items()},
        )

    assert facts(got) == facts(want)


def test_a_delivery_due_before_the_window_opens_contradicts():
    cap = "clinic/vaccines:booking"
    decl = declared("v1", cap, "2026-01-01T00:00:00Z", opens_at="2026-03-01T08:00:00Z")
    due = promise(
        "jab",
        "deliver_by",
        {"due_at": "2026-02-15T00:00:00Z"},
        at="2026-01-10T00:00:00Z",
        relies_on=[cap],
    )
    warnings, _ = final([decl, due])
    (w,) = warnings.values()
    assert w.state == "active" and "opens yearbook selection at 2026-03-01 08:00 UTC" in w.detail


def test_a_bad_declaration_is_rejected_naming_the_field():
    bad = declared("x", SHOP, "2013-09-01T00:00:00Z", opens_at="2013-10-02T00:00:00Z",
                   closes_at="2013-10-01T00:00:00Z")  # fmt: skip
    reject = parse(orjson.dumps(bad))
    assert isinstance(reject, Reject)
    assert str(reject.reason) == "invalid_event" and "data.window" in reject.message
    assert "closes_at must be after opens_at" in reject.message


@st.composite
def declarations_and_promises(draw) -> list[dict]:
    """Windows of two capabilities declared and redeclared at random hours; promises of
    every kind that can contradict one, relying on one or both; some deliveries."""
    hours = st.floats(0, 20).map(lambda h: round(h, 1))  # within the orphan TTL (1 day)
    events: list[dict] = []
    for i in range(draw(st.integers(0, 5))):
        cap = draw(st.sampled_from(["cap-a", "cap-b"]))
        at = draw(hours)
        bounds = sorted(draw(st.lists(hours, min_size=2, max_size=2, unique=True)))
        which = draw(st.sampled_from(["opens", "closes", "both"]))
        window = {}
        if which in ("opens", "both"):
            window["opens_at"] = ts(bounds[0])
        if which in ("closes", "both"):
            window["closes_at"] = ts(bounds[1])
        events.append(declared(f"d{i}", cap, ts(at), **window))
    if draw(st.booleans()):  # phone depends on comp-x, whose status changes
        events.append(
            capability(
                "dep-x",
                ts(draw(hours)),
                {
                    "kind": "dependency",
                    "capability": "cap-dep",
                    "channels": ["phone"],
                    "depends_on": ["comp-x"],
                },
            )
        )
        for k in range(draw(st.integers(0, 4))):
            up = draw(st.booleans())
            data = {"kind": "status", "capability": "comp-x", "up": up}
            events.append(capability(f"s{k}", ts(draw(hours)), data))
    for j in range(draw(st.integers(1, 3))):
        at, close = sorted(draw(st.lists(hours, min_size=2, max_size=2)))
        kind = draw(st.sampled_from(["deadline", "deliver_by", "channels_available"]))
        terms = {
            "deadline": {"open_until": ts(close)},
            "deliver_by": {"due_at": ts(close)},
            "channels_available": {"channels": ["phone"], "until": ts(close)},
        }[kind]
        relies = draw(
            st.lists(st.sampled_from(["cap-a", "cap-b", "cap-dep"]), min_size=1, max_size=2)
        )
        events.append(promise(f"p{j}", kind, terms, at=ts(at), relies_on=relies))
        if draw(st.booleans()):
            what = {"deadline": "deadline_enforced", "deliver_by": "delivered"}.get(kind)
            if what:
                events.append(observe(f"o{j}", f"p{j}", what, ts(draw(hours))))
    return events


@FAST
@given(st.data())
def test_property_capabilities_are_order_independent(data):
    events = data.draw(declarations_and_promises())
    shuffled = data.draw(st.permutations(events))

    def facts(answer: tuple[dict, dict]) -> tuple:
        warnings, violations = answer
        return (
            {k: (w.state, w.outcome, w.warn_at, w.detail) for k, w in warnings.items()
             if w.state != "retracted"},
            {k: (v.reason, v.occurred_at, v.predicted_by) for k, v in violations.items()
             if v.state == "active"},
        )  # fmt: skip

    assert facts(final(shuffled)) == facts(final(sorted(events, key=lambda e: e["time"])))


# --- dependencies: one portal outage breaks every channel that depends on it ----------------

CHANNELS_CAP = "gov/channels"
PORTAL = "gov/eligibility-portal"


def capability(did: str, at: str, data: dict) -> dict:
    return {
        "specversion": "1.0",
        "type": "capability.declared",
        "source": "gov/ops",
        "id": did,
        "time": at,
        "data": data,
    }


DEPENDS = capability(
    "dep",
    "2013-09-01T00:00:00-04:00",
    {
        "kind": "dependency",
        "capability": CHANNELS_CAP,
        "channels": ["phone", "mail", "in_person"],
        "depends_on": [PORTAL],
    },
)
LETTER = promise(
    "letter",
    "channels_available",
    {"channels": ["phone", "mail", "in_person"], "until": "2013-12-15T00:00:00-05:00"},
    at="2013-10-01T10:00:00-04:00",
    channel="mail",
    relies_on=[CHANNELS_CAP],
    text="Apply by phone, by mail or in person.",
)


def status(did: str, at: str, up: bool) -> dict:
    return capability(did, at, {"kind": "status", "capability": PORTAL, "up": up})


LATER = promise("later", "max_wait", {"max_seconds": 60}, at="2013-10-05T00:00:00-04:00")


def test_one_portal_outage_breaks_all_three_channels_naming_the_root_cause():
    down = status("s1", "2013-10-02T08:00:00-04:00", up=False)
    warnings, violations = final([DEPENDS, LETTER, down, LATER])
    assert sorted(v.observed for v in violations.values()) == [
        f"{ch} (it depends on {PORTAL}, which was down) unavailable at 2013-10-02T12:00:00Z"
        for ch in ("in_person", "mail", "phone")
    ]
    assert {v.reason for v in violations.values()} == {"channel_unavailable"}
    assert {v.observation_id for v in violations.values()} == {"s1"}
    assert warnings == {}  # the portal was up when the letter went out: nothing to foresee


def test_a_channel_promised_while_its_component_is_down_is_a_contradiction_at_once():
    down = status("s0", "2013-09-30T08:00:00-04:00", up=False)
    warnings, violations = final([DEPENDS, down, LETTER, LATER])
    (w,) = warnings.values()
    # said at once, and the promise broke at once: resolved as broken
    assert (w.state, w.outcome) == ("resolved", "broken")
    assert w.label.startswith("contradiction:gov/channels")
    assert "phone, mail, in_person depend on gov/eligibility-portal, down since" in w.detail
    assert {v.predicted_by for v in violations.values()} == {w.warning_id}
    assert len(violations) == 3


def test_a_late_status_that_shows_the_portal_was_up_retracts_everything():
    down = status("s0", "2013-09-30T08:00:00-04:00", up=False)
    up = status("s2", "2013-10-01T09:00:00-04:00", up=True)  # before the letter
    r = run([DEPENDS, down, LETTER, LATER, up])
    last = {v.violation_id: v for v in r.out.emissions}
    assert len(last) == 3 and {v.state for v in last.values()} == {"retracted"}
    warned = {w.warning_id: w for w in r.out.warnings}
    assert {w.state for w in warned.values()} == {"retracted"}
    assert r.engine.promises["letter"].status == "open"


def test_the_leadership_figure_counts_the_breaches_a_contradiction_foretold(tmp_path):
    """replay --clickhouse, then the panel's SQL on chdb: the card's breach was foretold,
    the phone promise's was not."""
    from promise_tracker.dashboards import queries as q
    from promise_tracker.dashboards.macros import ALL, Request, dashboard_sql
    from promise_tracker.sinks.store import ClickHouseStore
    from tests.cli import cli

    phone = promise(
        "phone", "max_wait", {"max_seconds": 60}, at="2013-10-07T10:00:00-04:00", channel="phone"
    )
    held = observe("held", "phone", "hold_time", "2013-10-08T10:00:00-04:00", seconds=1200)
    events = tmp_path / "events.jsonl"
    lines = [CLOSES_EARLY, CARD, ENFORCED, phone, held, CLOCK]
    events.write_bytes(b"\n".join(orjson.dumps(e) for e in lines) + b"\n")
    done = cli(
        "replay", str(events), "--violations", "/dev/null", "--outcomes", "/dev/null",
        "--rejects", "/dev/null", "--clickhouse", str(tmp_path / "chdb"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = ClickHouseStore(tmp_path / "chdb", "promise_tracker_replay").connect()
    store.command("USE promise_tracker_replay")
    everything = {"service": [ALL], "channel": [ALL], "kind": [ALL], "violation_id": ""}
    request = Request(1_370_000_000, 1_390_000_000, 86_400_000, everything)
    try:
        (row,) = store.rows(dashboard_sql(q.FORESEEN_BREACHES, request))
        (warned,) = store.rows(dashboard_sql(q.WARNINGS_SAVED, request))
    finally:
        store.close()
    assert (row["could_have_been_caught"], row["broken_promises"]) == (1, 2)
    # the card's contradiction (resolved, broken) is not an at-risk warning "broken anyway"
    assert (warned["saved"], warned["broken_anyway"]) == (0, 0)


# --- found by review: restore, reopening, the watermark ---------------------------------------


def test_a_promise_reopened_after_a_restore_still_closes_at_its_time():
    """Broken at once by a component down; the engine is restored from its entries; a late
    status shows the component was up: the promise is open again and must be kept at T."""
    from promise_tracker.streams.engine import Engine, EngineConfig
    from promise_tracker.streams.replay import drive
    from promise_tracker.streams.snapshot import decode_entry, encode_entry
    from tests.support import Collected, line

    def drive_events(engine: Engine, events: list[dict]) -> None:
        drive(engine, (("t", n, line(e)) for n, e in enumerate(events, 1)), 0.0)

    dep = capability(
        "dep", ts(0), {"kind": "dependency", "capability": "d", "channels": ["sms"],
                       "depends_on": ["gw"]},
    )  # fmt: skip
    down = capability("down", ts(1), {"kind": "status", "capability": "gw", "up": False})
    up = capability("up", ts(1.5), {"kind": "status", "capability": "gw", "up": True})
    p = promise("p", "channels_available", {"channels": ["sms"], "until": ts(48)}, at=ts(2),
                relies_on=["d"])  # fmt: skip
    first = Engine(EngineConfig(), Collected(), clock=lambda: 0.0)
    first.dirty = set()
    drive_events(first, [dep, down, p])
    assert first.promises["p"].status == "broken"
    entries = [decode_entry(encode_entry(first.entry(pid))) for pid in first.dirty]
    restored = Engine(EngineConfig(), Collected(), clock=lambda: 0.0)
    drive_events(restored, [dep, down])  # declarations first, as the worker gives them
    restored.restore([e for e in entries if e is not None], first.watermark)
    drive_events(restored, [up, promise("clock", "max_wait", {"max_seconds": 1}, at=ts(60))])
    assert restored.promises["p"].status == "kept"


def test_a_declaration_moves_no_watermark():
    ahead = capability("m", ts(500), {"kind": "status", "capability": "gw", "up": False})
    due = promise("due", "deliver_by", {"due_at": ts(10)}, at=ts(1))
    r = run([due, ahead])
    assert r.engine.watermark == parse(orjson.dumps(due)).time.timestamp()  # type: ignore[union-attr]
    assert r.engine.promises["due"].status == "open"


def test_a_pause_waiting_for_its_promise_counts_for_too_late():
    """The promise's T counts the pause that arrived before it (SPEC 1.3 v2)."""
    from promise_tracker.streams.engine import EngineConfig

    day = 24.0
    within = promise("w", "deliver_by", {"within_seconds": 86_400}, at=ts(0))
    events = [
        promise("tick", "max_wait", {"max_seconds": 1}, at=ts(7.4 * day)),
        observe("pz", "w", "paused", ts(0.5 * day)),  # held: its promise comes later
        observe("rs", "w", "resumed", ts(2 * day)),
        promise("tock", "max_wait", {"max_seconds": 1}, at=ts(8.2 * day)),
        within,  # D = 2.5 days with the pause; 1 day without it (1 + 7 < 8.2: too late)
    ]
    r = run(events, config=EngineConfig(retention=7 * 86_400))
    assert [x.event_id for x in r.out.rejects] == []
    assert "w" in r.engine.promises


def test_a_contradiction_reads_as_caught_before_issue_only_when_it_was_in_force_then():
    from promise_tracker.streams.wording import foreseen

    issued = 1381154400.0  # 2013-10-07 10:00 EDT
    assert foreseen(issued, issued, "card says ...").startswith(
        "could have been caught before it was issued: flagged when it was made "
        "(2013-10-07T14:00:00Z): card says"
    )
    later = foreseen(issued + 86_400, issued, "card says ...")
    assert later.startswith("foreseen from 2013-10-08T14:00:00Z, when a capability it relies")
    assert "caught before" not in later

"""One test per rule, reason and boundary of SPEC section 3."""

from __future__ import annotations

import pytest

from promise_tracker.streams.engine import violation_id
from tests.support import observe, promise, run, ts, unix

DAY_H = 24.0


def deadline(pid: str = "p", until_h: float = DAY_H, **data) -> dict:
    return promise(pid, "deadline", {"open_until": ts(until_h)}, **data)


class TestDeadline:
    def test_enforced_exactly_at_the_deadline_is_kept(self):
        r = run([deadline(), observe("o", "p", "deadline_enforced", ts(DAY_H))])
        assert r.status("p") == "kept" and r.closed_at("p") == unix(DAY_H)
        assert r.out.active() == {}

    def test_enforced_a_millisecond_early_is_broken(self):
        r = run([deadline(), observe("o", "p", "deadline_enforced", ts(DAY_H, -0.001))])
        (v,) = r.out.active().values()
        assert (v.reason, v.unit, v.observation_id) == ("enforced_early", "seconds", "o")
        assert v.excess == pytest.approx(0.001, abs=1e-6)
        assert v.occurred_at == unix(DAY_H, -0.001) and r.status("p") == "broken"

    def test_access_denied_counts_and_the_earliest_wins_even_when_it_arrives_last(self):
        r = run(
            [
                deadline(),
                observe("late", "p", "access_denied", ts(12), reason="closed"),
                observe("early", "p", "access_denied", ts(3), reason="closed"),
            ]
        )
        (v,) = r.out.active().values()
        assert v.observation_id == "early" and v.excess == pytest.approx(21 * 3600)
        assert [e.observation_id for e in r.out.emissions] == [
            "late",
            "early",
        ]  # same id, re-emitted
        assert v.violation_id == violation_id("p", "")

    def test_open_before_the_watermark_reaches_the_deadline(self):
        r = run([deadline(), observe("x", "other", "delivered", ts(DAY_H, -1))])
        assert r.status("p") == "open" and r.closed_at("p") is None

    def test_kept_exactly_when_the_watermark_reaches_the_deadline(self):
        assert run([deadline()], watermark=unix(DAY_H)).status("p") == "kept"

    def test_cancelled_before_the_deadline_and_enforcement_after_cancel_does_not_count(self):
        r = run(
            [
                deadline(),
                observe("c", "p", "cancelled", ts(6)),
                observe("e", "p", "deadline_enforced", ts(7)),
            ],
            watermark=unix(48),
        )
        assert r.status("p") == "cancelled" and r.closed_at("p") == unix(6)
        assert r.out.active() == {}

    def test_late_cancel_before_enforcement_retracts_the_violation(self):
        r = run(
            [
                deadline(),
                observe("e", "p", "deadline_enforced", ts(7)),
                observe("c", "p", "cancelled", ts(6)),
            ]
        )
        assert [e.state for e in r.out.emissions] == ["active", "retracted"]
        assert r.status("p") == "cancelled"

    def test_cancel_after_the_deadline_does_not_cancel(self):
        r = run([deadline(), observe("c", "p", "cancelled", ts(30))])
        assert r.status("p") == "kept"


def max_wait(pid: str = "p", seconds: float = 300, **data) -> dict:
    return promise(pid, "max_wait", {"max_seconds": seconds}, channel="phone", **data)


class TestMaxWait:
    def test_exactly_max_seconds_is_kept(self):
        r = run([max_wait(), observe("h", "p", "hold_time", ts(1), seconds=300)])
        assert r.status("p") == "kept" and r.closed_at("p") == unix(1)

    def test_over_is_broken_with_the_excess_in_seconds(self):
        r = run([max_wait(), observe("h", "p", "hold_time", ts(1), seconds=1200)])
        (v,) = r.out.active().values()
        assert (v.reason, v.excess, v.unit, v.occurred_at) == (
            "wait_exceeded",
            900,
            "seconds",
            unix(1),
        )

    def test_ties_at_the_same_time_go_to_the_smaller_id(self):
        r = run(
            [
                max_wait(),
                observe("b", "p", "hold_time", ts(1), seconds=1000),
                observe("a", "p", "hold_time", ts(1), seconds=400),
            ]
        )
        (v,) = r.out.active().values()
        assert v.observation_id == "a" and v.excess == 100

    def test_a_later_long_hold_breaks_a_kept_promise(self):
        r = run(
            [
                max_wait(),
                observe("ok", "p", "hold_time", ts(1), seconds=10),
                observe("long", "p", "hold_time", ts(2), seconds=301),
            ]
        )
        assert r.status("p") == "broken" and r.out.reasons() == {"p": ["wait_exceeded"]}

    def test_nothing_measured_by_expiry_is_expired_not_kept(self):
        r = run([max_wait(expires_at=ts(12))], watermark=unix(12))
        assert r.status("p") == "expired" and r.closed_at("p") == unix(12)

    def test_without_expiry_it_stays_open(self):
        assert run([max_wait()], watermark=unix(10_000)).status("p") == "open"

    def test_cancelled_without_expiry(self):
        r = run([max_wait(), observe("c", "p", "cancelled", ts(5))])
        assert r.status("p") == "cancelled"

    def test_hold_after_cancel_does_not_count(self):
        r = run(
            [
                max_wait(),
                observe("c", "p", "cancelled", ts(5)),
                observe("h", "p", "hold_time", ts(6), seconds=9999),
            ]
        )
        assert r.status("p") == "cancelled" and r.out.active() == {}


def max_steps(pid: str = "p", steps: int = 3, **data) -> dict:
    return promise(pid, "max_steps", {"max_steps": steps, "goal": "pose"}, **data)


def pages(pid: str, *names: str, start_h: float = 1.0) -> list[dict]:
    return [
        observe(f"{pid}-v{i}", pid, "page_reached", ts(start_h, i), page=name)
        for i, name in enumerate(names)
    ]


class TestMaxSteps:
    def test_exactly_max_steps_is_kept(self):
        r = run([max_steps(), *pages("p", "login", "code", "pose")])
        assert r.status("p") == "kept" and r.closed_at("p") == unix(1, 2)

    def test_one_step_over_is_broken_with_the_excess_in_steps(self):
        r = run([max_steps(), *pages("p", "login", "code", "packages", "pose", "pose")])
        (v,) = r.out.active().values()
        assert (v.reason, v.excess, v.unit) == ("too_many_steps", 1, "steps")
        assert v.observation_id == "p-v3" and v.occurred_at == unix(1, 3)

    def test_views_at_the_same_time_are_ordered_by_id(self):
        r = run(
            [
                max_steps(steps=1),
                observe("b", "p", "page_reached", ts(1), page="pose"),
                observe("a", "p", "page_reached", ts(1), page="home"),
            ]
        )
        assert r.out.reasons() == {"p": ["too_many_steps"]}

    def test_goal_not_reached_by_expiry(self):
        r = run([max_steps(expires_at=ts(20)), *pages("p", "home")], watermark=unix(20))
        (v,) = r.out.active().values()
        assert (v.reason, v.occurred_at, v.excess, v.unit, v.observation_id) == (
            "goal_not_reached",
            unix(20),
            None,
            None,
            None,
        )

    def test_a_late_goal_view_turns_goal_not_reached_into_kept(self):
        r = run(
            [
                max_steps(expires_at=ts(20)),
                observe("clock", "x", "delivered", ts(30)),
                *pages("p", "pose", start_h=2),
            ]
        )
        assert [e.state for e in r.out.emissions] == ["active", "retracted"]
        assert r.status("p") == "kept"

    def test_open_without_expiry_and_cancelled(self):
        assert run([max_steps()], watermark=unix(1e4)).status("p") == "open"
        r = run([max_steps(), observe("c", "p", "cancelled", ts(1))])
        assert r.status("p") == "cancelled"


def deliver_by(pid: str = "p", due_h: float = 48, **data) -> dict:
    return promise(pid, "deliver_by", {"due_at": ts(due_h)}, channel="email", **data)


class TestDeliverBy:
    def test_delivered_exactly_at_due_is_kept(self):
        r = run([deliver_by(), observe("d", "p", "delivered", ts(48))])
        assert r.status("p") == "kept" and r.out.active() == {}

    def test_delivered_late_occurs_at_due_with_the_excess(self):
        r = run([deliver_by(), observe("d", "p", "delivered", ts(54))])
        (v,) = r.out.active().values()
        assert (v.reason, v.occurred_at, v.excess) == ("delivered_late", unix(48), 6 * 3600)
        assert r.closed_at("p") == unix(48)

    def test_not_delivered_fires_at_due_then_becomes_delivered_late_under_the_same_id(self):
        r = run([deliver_by(), observe("x", "other", "delivered", ts(50))])
        assert r.out.reasons() == {"p": ["not_delivered"]}
        r = run(
            [
                deliver_by(),
                observe("x", "other", "delivered", ts(50)),
                observe("d", "p", "delivered", ts(49)),
            ]
        )
        first, second = r.out.emissions
        assert first.violation_id == second.violation_id
        assert (first.reason, second.reason) == ("not_delivered", "delivered_late")

    def test_a_late_delivery_on_time_retracts_not_delivered(self):
        r = run(
            [
                deliver_by(),
                observe("x", "other", "delivered", ts(50)),
                observe("d", "p", "delivered", ts(47)),
            ]
        )
        assert [e.state for e in r.out.emissions] == ["active", "retracted"]
        assert r.status("p") == "kept"

    def test_cancelled_before_due_but_not_after(self):
        r = run([deliver_by(), observe("c", "p", "cancelled", ts(24))], watermark=unix(100))
        assert r.status("p") == "cancelled"
        r = run([deliver_by(), observe("c", "p", "cancelled", ts(49))])
        assert r.out.reasons() == {"p": ["not_delivered"]}


def channels(pid: str = "p", listed=("phone", "mail", "in_person"), **data) -> dict:
    terms = {"channels": list(listed), "until": ts(96)}
    return promise(pid, "channels_available", terms, at=ts(0), channel="mail", **data)


def status(oid: str, at_h: float, channel: str, available: bool = False) -> dict:
    return observe(oid, "p", "channel_status", ts(at_h), channel=channel, available=available)


class TestChannels:
    def test_one_violation_per_listed_channel_from_its_earliest_outage(self):
        r = run(
            [
                channels(),
                status("before", -1, "phone"),
                status("phone2", 34, "phone"),
                status("phone1", 33, "phone"),
                status("sms", 34, "sms"),
                status("mail-up", 34, "mail", available=True),
                status("at-T", 96, "in_person"),
                status("mail", 40, "mail"),
            ]
        )
        active = {v.violation_id: v for v in r.out.active().values()}
        assert set(active) == {violation_id("p", "phone"), violation_id("p", "mail")}
        assert active[violation_id("p", "phone")].observation_id == "phone1"
        assert r.status("p") == "broken" and r.closed_at("p") == unix(33)

    def test_kept_when_the_window_closes_without_outage(self):
        r = run([channels(), status("up", 3, "phone", available=True)], watermark=unix(96))
        assert r.status("p") == "kept" and r.closed_at("p") == unix(96)

    def test_cancelled(self):
        r = run([channels(), observe("c", "p", "cancelled", ts(2)), status("x", 3, "phone")])
        assert r.status("p") == "cancelled" and r.out.active() == {}


def test_kind_tables_line_up():
    """Kinds are dispatched by index: the models, folds and rules tables must agree."""
    from promise_tracker.schemas.models import PROMISE_KINDS
    from promise_tracker.streams.rules import _RULES
    from promise_tracker.streams.state import _FOLDS, KIND_INDEX

    for cls, index in KIND_INDEX.items():
        kind = PROMISE_KINDS[index]
        assert cls.__struct_config__.tag == kind
        assert kind.startswith(_FOLDS[index].__name__.removeprefix("_fold_"))
        assert kind.startswith(_RULES[index].__name__.removeprefix("_"))


def test_a_decided_promise_that_reopens_still_fires_at_its_due_time():
    """A late cancellation can uncount the deciding delivery while the watermark is short of
    D (lateness): the promise is open again and not_delivered must still fire at D."""
    events = [
        deliver_by(due_h=10),
        observe("d", "p", "delivered", ts(12)),  # W = 8h: delivered_late, decided
        observe("c", "p", "cancelled", ts(11)),  # D <= c < d: d no longer counts; open again
    ]
    r = run(events, lateness=4 * 3600)
    assert r.status("p") == "open" and r.out.active() == {}
    r = run([*events, observe("clock", "p", "page_reached", ts(15), page="x")], lateness=4 * 3600)
    (v,) = r.out.active().values()
    assert (v.reason, v.occurred_at, r.status("p")) == ("not_delivered", unix(10), "broken")

"""Violations as Alertmanager alerts, and the rules of how long each one fires."""

from __future__ import annotations

import pytest

from promise_tracker.paging.alerts import Lifetime, alert
from promise_tracker.runtime.settings import Settings, SettingsError
from promise_tracker.streams.wording import at
from tests.records import DETECTED, paged_violation

HOLD, RESEND = 3600.0, 60.0
GRAFANA = "http://grafana.example:3000/"


def lifetime(limit: int = 100) -> Lifetime:
    return Lifetime(HOLD, RESEND, limit, GRAFANA)


def ends(post: dict) -> str:
    return post["endsAt"]


def test_an_alert_says_what_broke_and_whom_to_wake_but_not_who_the_customer_is():
    made = alert(paged_violation(), GRAFANA)
    assert made["labels"] == {
        "alertname": "PromiseBroken",
        "service": "shop/web",
        "channel": "card",
        "kind": "deadline",
        "reason": "enforced_early",
        "severity": "page",
        "violation_id": "v1",
    }
    notes = made["annotations"]
    assert notes["summary"] == "Choose your pose online until 01/02."  # what the customer read
    assert notes["expected"] == "open until 2026-01-02T00:00:00Z"
    assert notes["observed"] == "access_denied at 2026-01-01T12:00:00Z"
    assert notes["excess"] == "43200 seconds"
    assert notes["promise_id"] == "p1"
    assert notes["occurred_at"] == "2026-01-01T12:00:00Z"
    assert notes["description"] == (
        "shop/web broke a deadline promise on card (enforced_early): promised open until "
        "2026-01-02T00:00:00Z; access_denied at 2026-01-01T12:00:00Z"
    )
    assert made["startsAt"] == "2026-01-01T12:00:01.500Z"
    assert made["generatorURL"] == (
        "http://grafana.example:3000/d/promise-tracker-oncall/promise-tracker-on-call"
        "?var-violation_id=v1"
    )
    assert "endsAt" not in made
    assert "77120394" not in repr(made)  # the subject is personal data


def test_severity_defaults_to_ticket_and_a_missing_excess_or_text_is_no_trouble():
    made = alert(paged_violation(labels={}, excess=None, unit=None, promise_text=None), GRAFANA)
    assert made["labels"]["severity"] == "ticket"
    assert "excess" not in made["annotations"]
    assert made["annotations"]["summary"] == "deadline promise p1"
    steps = alert(paged_violation(excess=2, unit="steps", labels={"severity": "ticket"}), GRAFANA)
    assert steps["annotations"]["excess"] == "2 steps"


def test_an_active_violation_fires_with_a_lease_of_four_resends():
    life = lifetime()
    now = DETECTED + 10
    [post] = life.offer(paged_violation(), 3, now)
    assert ends(post) == at(now + 4 * RESEND)
    assert post["startsAt"] == at(DETECTED)
    assert list(life.firing) == ["v1"]


def test_re_sends_renew_the_lease_but_never_past_the_hold():
    life = lifetime()
    life.offer(paged_violation(), 0, DETECTED)
    [post] = life.due(DETECTED + 600)
    assert ends(post) == at(DETECTED + 600 + 4 * RESEND)
    [post] = life.due(DETECTED + HOLD - 30)
    assert ends(post) == at(DETECTED + HOLD)  # the hold caps it
    assert life.due(DETECTED + HOLD) == []  # past the hold: let go, it lapses by itself
    assert life.firing == {}


def test_a_retraction_resolves_the_alert_now_and_it_is_not_sent_again():
    life = lifetime()
    life.offer(paged_violation(), 0, DETECTED)
    now = DETECTED + 120
    [post] = life.offer(paged_violation(state="retracted", detected_at=now), 0, now)
    assert ends(post) == at(now)
    assert post["labels"]["violation_id"] == "v1"
    assert post["startsAt"] == at(DETECTED)  # the alert that fired, not a new one
    assert life.firing == {}
    assert life.due(now + RESEND) == []


def test_a_retraction_of_an_alert_fired_elsewhere_is_posted_while_within_the_hold():
    """After a rebalance the new owner may retract what the old owner fired."""
    now = DETECTED + 120
    [post] = lifetime().offer(paged_violation(state="retracted", detected_at=now - 1), 0, now)
    assert ends(post) == at(now)
    old = paged_violation(state="retracted", detected_at=now - HOLD - 1)
    assert lifetime().offer(old, 0, now) == []


def test_a_violation_past_its_hold_when_seen_is_not_posted():
    """A restart re-announces every held record with its original detected_at."""
    life = lifetime()
    assert life.offer(paged_violation(), 0, DETECTED + HOLD + 1) == []
    assert life.firing == {}


def test_the_same_emission_said_again_posts_nothing_new():
    life = lifetime()
    assert len(life.offer(paged_violation(), 0, DETECTED)) == 1
    assert life.offer(paged_violation(), 0, DETECTED + 5) == []  # Alertmanager has it
    assert len(life.due(DETECTED + RESEND)) == 1  # and it is still re-sent


def test_a_changed_verdict_with_other_labels_resolves_the_old_alert_and_fires_the_new():
    """not_delivered becoming delivered_late reuses the violation id (SPEC section 4)."""
    life = lifetime()
    first = paged_violation(kind="deliver_by", reason="not_delivered")
    life.offer(first, 0, DETECTED)
    later = DETECTED + 300
    second = paged_violation(kind="deliver_by", reason="delivered_late", detected_at=later)
    resolved, fired = life.offer(second, 0, later)
    assert resolved["labels"]["reason"] == "not_delivered" and ends(resolved) == at(later)
    assert fired["labels"]["reason"] == "delivered_late"
    assert ends(fired) == at(later + 4 * RESEND)
    assert [f.alert["labels"]["reason"] for f in life.firing.values()] == ["delivered_late"]


def test_an_alert_never_ends_before_it_starts():
    """A detected_at a little ahead of this clock (another machine's) must not make an
    alert Alertmanager refuses."""
    life = lifetime()
    ahead = DETECTED + 5
    life.offer(paged_violation(detected_at=ahead), 0, DETECTED)
    [post] = life.offer(paged_violation(state="retracted", detected_at=ahead), 0, DETECTED)
    assert ends(post) == post["startsAt"] == at(ahead)


def test_forget_lets_go_of_the_partitions_given_only():
    life = lifetime()
    life.offer(paged_violation("a"), 1, DETECTED)
    life.offer(paged_violation("b"), 2, DETECTED)
    life.offer(paged_violation("c"), 1, DETECTED)
    assert life.forget([1]) == 2
    assert list(life.firing) == ["b"]


def test_the_firing_set_is_capped_oldest_first():
    life = lifetime(limit=2)
    for vid in ("a", "b", "c"):
        life.offer(paged_violation(vid), 0, DETECTED)
    assert list(life.firing) == ["b", "c"]
    assert life.evicted == 1


def test_the_paging_settings_are_read_and_checked_up_front():
    env = {
        "PROMISE_TRACKER_ALERTMANAGER_URL": "http://alertmanager:9093",
        "PROMISE_TRACKER_ALERT_HOLD": "12h",
        "PROMISE_TRACKER_ALERT_RESEND": "30s",
    }
    settings = Settings.from_env(env)
    assert (settings.alertmanager_url, settings.alert_hold, settings.alert_resend) == (
        "http://alertmanager:9093",
        43200.0,
        30.0,
    )
    assert Settings.from_env({}).alertmanager_url == ""  # paging is off unless asked for
    for name, raw in [
        ("ALERTMANAGER_URL", "alertmanager:9093"),
        ("GRAFANA_URL", "ftp://grafana"),
        ("ALERT_RESEND", "0"),
        ("ALERT_QUEUE_MAX", "none"),
    ]:
        with pytest.raises(SettingsError, match=f"PROMISE_TRACKER_{name}"):
            Settings.from_env({f"PROMISE_TRACKER_{name}": raw})

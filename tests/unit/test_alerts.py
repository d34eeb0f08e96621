"""Violations and at-risk warnings as Alertmanager alerts, the rules of how long each one
fires, and where deploy/alertmanager/alertmanager.yml routes them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgspec
import pytest

from promise_tracker.errors import CalendarError
from promise_tracker.paging.alerts import Lifetime, alert, span
from promise_tracker.runtime.settings import Settings, SettingsError
from promise_tracker.schemas.models import WarningRecord
from promise_tracker.streams.wording import at
from promise_tracker.streams.worker import engine_config
from tests.records import DETECTED, paged_violation
from tests.support import CASES, ROOT

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


# --- at-risk warnings (SPEC 4.1) ----------------------------------------------------------

DUE = DETECTED + 900  # 15 minutes after the warning


def paged_warning(wid: str = "w1", state: str = "active", **changes: object) -> WarningRecord:
    """A warning as the pager gets it: a subject (which no alert may carry), a team label."""
    fields = {
        "warning_id": wid,
        "promise_id": "p2",
        "service": "shop/shipping",
        "channel": "email",
        "subject": "customer/77120394",
        "kind": "deliver_by",
        "label": "0.75",
        "warn_at": DETECTED - 1.5,
        "due_at": DUE - 1.5,
        "time_left": 900.0,
        "promise_text": "Delivered by Friday.",
        "labels": {"severity": "page", "team": "shipping"},
        "state": state,
        "outcome": None if state != "resolved" else "kept",
        "detected_at": DETECTED,
        **changes,
    }
    return msgspec.convert(fields, WarningRecord)


def test_a_warning_says_which_promise_is_about_to_break_and_never_pages():
    made = alert(paged_warning(), GRAFANA)
    assert made["labels"] == {
        "alertname": "PromiseAtRisk",
        "service": "shop/shipping",
        "channel": "email",
        "kind": "deliver_by",
        "label": "0.75",
        "severity": "warning",  # not the promise's own "page": a warning wakes no one
        "warning_id": "w1",
    }
    notes = made["annotations"]
    assert notes["summary"] == "Delivered by Friday."  # what the customer read
    assert notes["promise_id"] == "p2"
    assert notes["warn_at"] == "2026-01-01T12:00:00Z"
    assert notes["due_at"] == "2026-01-01T12:15:00Z"
    assert notes["time_left"] == "15 minutes"
    assert notes["description"] == (
        "shop/shipping may break a deliver_by promise on email: due at 2026-01-01T12:15:00Z, "
        "15 minutes left (0.75 of its time was gone at 2026-01-01T12:00:00Z)"
    )
    assert made["startsAt"] == "2026-01-01T12:00:01.500Z"
    assert made["generatorURL"] == (
        "http://grafana.example:3000/d/promise-tracker-oncall/promise-tracker-on-call"
        "?var-service=shop/shipping"
    )
    assert "77120394" not in repr(made)  # the subject is personal data


def test_a_contradiction_is_a_ticket_labelled_by_its_capability_with_both_sides_words():
    detail = (
        "card says open until 2013-11-01 23:59 -0400; prestige/shop:yearbook-selection "
        "closes yearbook selection at 2013-10-31 23:59 -0400 (24 h earlier)"
    )
    made = alert(
        paged_warning(label="contradiction:prestige/shop:yearbook-selection", detail=detail),
        GRAFANA,
    )
    assert made["labels"] == {
        "alertname": "PromiseContradictsCapability",
        "service": "shop/shipping",
        "channel": "email",
        "kind": "deliver_by",
        "capability": "prestige/shop:yearbook-selection",
        "severity": "ticket",  # not the promise's own "page": not on-call's to fix
        "warning_id": "w1",
    }
    notes = made["annotations"]
    assert notes["description"] == (
        "shop/shipping made a deliver_by promise on email that "
        f"prestige/shop:yearbook-selection says cannot be kept: {detail}"
    )
    assert notes["summary"] == "Delivered by Friday." and notes["promise_id"] == "p2"
    assert "time_left" not in notes and "77120394" not in repr(made)


def test_a_steps_warning_or_a_paused_clock_has_no_due_time_and_says_why():
    steps = alert(
        paged_warning(kind="max_steps", label="steps", due_at=None, time_left=None), GRAFANA
    )
    assert steps["labels"]["label"] == "steps"
    assert "due_at" not in steps["annotations"] and "time_left" not in steps["annotations"]
    assert steps["annotations"]["description"].endswith(
        "the steps it allows were used up at 2026-01-01T12:00:00Z, short of the goal"
    )
    paused = alert(paged_warning(due_at=None, time_left=None, promise_text=None), GRAFANA)
    assert "its clock is paused" in paused["annotations"]["description"]
    assert paused["annotations"]["summary"] == "deliver_by promise p2"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (900, "15 minutes"),
        (3150, "52 minutes 30 seconds"),
        (4500, "1 hour 15 minutes"),
        (183600, "2 days 3 hours"),
        (90061, "1 day 1 hour"),  # two units: the minute and the second are noise by then
        (86401, "1 day"),
    ],
)
def test_time_left_in_words(seconds, words):
    assert span(seconds) == words


def test_a_warning_fires_while_active_and_resolves_when_its_promise_is_decided():
    life = lifetime()
    [post] = life.offer(paged_warning(), 0, DETECTED)
    assert ends(post) == at(DETECTED + 4 * RESEND)
    assert life.offer(paged_warning(), 0, DETECTED + 5) == []  # said again: nothing new
    now = DETECTED + 120
    [post] = life.offer(paged_warning(state="resolved", detected_at=now), 0, now)
    assert ends(post) == at(now)
    assert post["startsAt"] == at(DETECTED)  # the alert that fired, not a new one
    assert post["labels"]["warning_id"] == "w1"
    assert life.firing == {}
    assert life.due(now + RESEND) == []


def test_a_retracted_warning_resolves_its_alert_even_one_fired_elsewhere():
    now = DETECTED + 120
    [post] = lifetime().offer(paged_warning(state="retracted", detected_at=now - 1), 0, now)
    assert ends(post) == at(now)
    old = paged_warning(state="resolved", detected_at=now - HOLD - 1, due_at=now - 60)
    assert lifetime().offer(old, 0, now) == []  # past its hold and its due time: lapsed


def test_a_warning_fires_until_its_due_time_when_that_is_after_the_hold():
    """A 30-day promise warned at 0.75 has 7.5 days left: news for longer than a day."""
    life = lifetime()
    due = DETECTED + 3 * HOLD
    life.offer(paged_warning(due_at=due, time_left=due - DETECTED), 0, DETECTED)
    [post] = life.due(DETECTED + 2 * HOLD)
    assert ends(post) == at(DETECTED + 2 * HOLD + 4 * RESEND)
    [post] = life.due(due - 30)
    assert ends(post) == at(due)
    assert life.due(due) == []


def test_a_warning_and_a_violation_of_one_promise_are_two_alerts():
    life = lifetime()
    life.offer(paged_warning("w1", promise_id="p1"), 0, DETECTED)
    life.offer(paged_violation("v1"), 0, DETECTED)
    names = sorted(p["labels"]["alertname"] for p in life.due(DETECTED + RESEND))
    assert names == ["PromiseAtRisk", "PromiseBroken"]


def test_the_warning_settings_are_read_and_checked_up_front():
    calendars = CASES / "v2" / "calendars.toml"
    env = {
        "PROMISE_TRACKER_WARN_AT": " 0.75, 0.9,0.75",
        "PROMISE_TRACKER_CALENDARS": str(calendars),
    }
    settings = Settings.from_env(env)
    config = engine_config(settings)
    assert config.warn_at == (("0.75", 0.75), ("0.9", 0.9))
    assert sorted(config.calendars) == ["always-lon", "ops-ny", "support-eu"]
    default = engine_config(Settings.from_env({}))
    assert (default.warn_at, dict(default.calendars)) == ((("0.75", 0.75),), {})
    for raw in ("0.75,1", "soon", "0"):
        with pytest.raises(SettingsError, match="PROMISE_TRACKER_WARN_AT"):
            Settings.from_env({"PROMISE_TRACKER_WARN_AT": raw})


def test_a_calendars_file_the_worker_cannot_use_stops_it_with_one_line(tmp_path: Path):
    bad = tmp_path / "calendars.toml"
    bad.write_text('[support-eu]\ntimezone = "Europe/Paris"\nmon = ["09:00-25:00"]\n')
    for path in (bad, tmp_path / "missing.toml"):
        settings = Settings.from_env({"PROMISE_TRACKER_CALENDARS": str(path)})
        with pytest.raises(CalendarError) as caught:
            engine_config(settings)
        message = str(caught.value)
        assert message.startswith(f"PROMISE_TRACKER_CALENDARS: {path}")
        assert "\n" not in message


# --- routing (deploy/alertmanager/alertmanager.yml) -----------------------------------------


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "PromiseAtRisk", "severity": "warning"}, "chat"),
        ({"alertname": "PromiseAtRisk", "severity": "page"}, "chat"),  # a warning never pages
        ({"alertname": "PromiseBroken", "severity": "page"}, "pager"),
        ({"alertname": "PromiseBroken", "severity": "ticket"}, "ticket"),
        ({"alertname": "PromiseBroken", "severity": "other"}, "ticket"),
        ({"alertname": "PromiseContradictsCapability", "severity": "ticket"}, "ticket"),
        ({"alertname": "PromiseContradictsCapability", "severity": "page"}, "ticket"),
    ],
)
def test_the_example_routes_send_warnings_to_chat_and_violations_as_before(labels, receiver):
    """amtool comes with Debian's prometheus-alertmanager (./dev test installs it)."""
    config = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    done = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={config}"]
        + [f"--verify.receivers={receiver}", "service=shop/web"]
        + [f"{name}={value}" for name, value in labels.items()],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [receiver]

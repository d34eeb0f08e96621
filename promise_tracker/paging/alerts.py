"""Violations and at-risk warnings as Prometheus Alertmanager alerts, and how long each one
fires. Pure: times are passed in, nothing here does I/O (promise_tracker/paging/pager.py posts
what this returns).

One alert per violation id (``PromiseBroken``) and one per warning id (``PromiseAtRisk``, or
``PromiseContradictsCapability`` for a contradiction with a declared capability, a ticket). A
violation's labels say what broke and whom to wake (``severity`` from the promise's own labels,
``ticket`` unless it says ``page``); a warning's say which promise is about to break (severity
``warning``: routed to a channel that does not wake anyone). The annotations say what the
customer was told and what happened or is about to. The customer (the record's ``subject``) is
personal data and stays out of the alert: the linked dashboard is where someone with access
looks them up.

Lifetime, following Alertmanager's client guidance (a client re-sends its firing alerts, and
each carries an ``endsAt`` so that Alertmanager resolves it by itself if the client goes away):

* an active violation or warning fires from its ``detected_at`` for at most ``hold`` seconds
  (a warning: or until its due time, when that is later; the promise is decided by then);
* every ``resend`` seconds each firing alert is sent again with ``endsAt`` = the earlier of
  now + 4 * resend and the end of its hold;
* a retraction, or a warning's resolution (its promise decided), sends the alert with
  ``endsAt`` = now (resolved) and it stops being re-sent;
* an emission whose hold has passed when it is seen (said again after a restart) is not sent
  at all: its alert has lapsed already;
* the same emission said again (a restart or a rebalance re-announces every held record with
  its original detected_at) has the same labels, so Alertmanager updates the alert it has
  instead of notifying again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from promise_tracker.schemas.models import ViolationRecord, WarningRecord
from promise_tracker.streams.capabilities import CONTRADICTION
from promise_tracker.streams.risk import STEPS
from promise_tracker.streams.wording import at

ALERTNAME = "PromiseBroken"
DEFAULT_SEVERITY = "ticket"
AT_RISK_ALERTNAME = "PromiseAtRisk"
AT_RISK_SEVERITY = "warning"
CONTRADICTION_ALERTNAME = "PromiseContradictsCapability"
CONTRADICTION_SEVERITY = "ticket"  # for whoever issues the promises: nobody is woken
DASHBOARD = "/d/promise-tracker-oncall/promise-tracker-on-call"
LEASES = 4  # resend periods a sent alert stays firing without news from the pager

Alert = dict[str, Any]  # the JSON object of Alertmanager's POST /api/v2/alerts
Paged = ViolationRecord | WarningRecord  # what the worker offers the pager
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def alert(record: Paged, grafana_url: str) -> Alert:
    """The alert of a violation or a warning, without ``endsAt`` (the lifetime rules add it)."""
    if isinstance(record, WarningRecord):
        return warning_alert(record, grafana_url)
    return violation_alert(record, grafana_url)


def violation_alert(record: ViolationRecord, grafana_url: str) -> Alert:
    severity = record.labels.get("severity") or DEFAULT_SEVERITY
    annotations = {
        "summary": record.promise_text or f"{record.kind} promise {record.promise_id}",
        "description": (
            f"{record.service} broke a {record.kind} promise on {record.channel} "
            f"({record.reason}): promised {record.expected}; {record.observed}"
        ),
        "expected": record.expected,
        "observed": record.observed,
        "promise_id": record.promise_id,
        "occurred_at": at(record.occurred_at),
    }
    if record.excess is not None:
        annotations["excess"] = f"{record.excess:g} {record.unit or ''}".rstrip()
    return {
        "labels": {
            "alertname": ALERTNAME,
            "service": record.service,
            "channel": record.channel,
            "kind": record.kind,
            "reason": record.reason,
            "severity": severity,
            "violation_id": record.violation_id,
        },
        "annotations": annotations,
        "generatorURL": (
            f"{grafana_url.rstrip('/')}{DASHBOARD}?var-violation_id={quote(record.violation_id)}"
        ),
        "startsAt": at(record.detected_at),
    }


def warning_alert(record: WarningRecord, grafana_url: str) -> Alert:
    """SPEC 4.1: a promise about to break while it can still be kept; or (issue 16) one made
    that a declared capability says cannot be kept: a ticket for whoever issues such
    promises (it is not on-call's to fix), labelled by the capability, so that a campaign of
    many such promises is one notification."""
    if record.label.startswith(CONTRADICTION):
        capability = record.label.removeprefix(CONTRADICTION)
        said = (
            f"{record.service} made a {record.kind} promise on {record.channel} that "
            f"{capability} says cannot be kept: {record.detail or 'see the warning'}"
        )
        labels = {"capability": capability, "severity": CONTRADICTION_SEVERITY}
        return _warning_alert(record, grafana_url, CONTRADICTION_ALERTNAME, labels, said)
    said = (
        f"{record.service} may break a {record.kind} promise on {record.channel}: "
        f"{_at_risk(record)}"
    )
    labels = {"label": record.label, "severity": AT_RISK_SEVERITY}
    alert = _warning_alert(record, grafana_url, AT_RISK_ALERTNAME, labels, said)
    if record.time_left is not None:
        alert["annotations"]["time_left"] = span(record.time_left)
    return alert


def _warning_alert(
    record: WarningRecord, grafana_url: str, name: str, labels: dict[str, str], said: str
) -> Alert:
    annotations = {
        "summary": record.promise_text or f"{record.kind} promise {record.promise_id}",
        "description": said,
        "promise_id": record.promise_id,
        "warn_at": at(record.warn_at),
    }
    if record.due_at is not None:
        annotations["due_at"] = at(record.due_at)
    return {
        "labels": {
            "alertname": name,
            "service": record.service,
            "channel": record.channel,
            "kind": record.kind,
            **labels,
            "warning_id": record.warning_id,
        },
        "annotations": annotations,
        "generatorURL": f"{grafana_url.rstrip('/')}{DASHBOARD}?var-service={quote(record.service)}",
        "startsAt": at(record.detected_at),
    }


def _at_risk(record: WarningRecord) -> str:
    if record.label == STEPS:
        return f"the steps it allows were used up at {at(record.warn_at)}, short of the goal"
    gone = f"{record.label} of its time was gone at {at(record.warn_at)}"
    if record.due_at is None:
        return f"{gone}; its clock is paused, so it has no due time until it resumes"
    left = span(record.time_left) if record.time_left is not None else "no time"
    return f"due at {at(record.due_at)}, {left} left ({gone})"


def span(seconds: float) -> str:
    """A length of time in words, in its largest unit and the next (the rest left out):
    ``2 days 3 hours``, ``15 minutes``, ``1 day``."""
    left = round(seconds)
    first = next((i for i, (_, size) in enumerate(_UNITS) if left >= size), len(_UNITS) - 1)
    words = []
    for unit, size in _UNITS[first : first + 2]:
        count, left = divmod(left, size)
        if count:
            words.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(words) or "0 seconds"


def paged_id(record: Paged) -> str:
    """The id an alert is kept under: the violation's or the warning's (they never meet)."""
    return record.warning_id if isinstance(record, WarningRecord) else record.violation_id


def ending(alert: Alert, starts: float, ends: float) -> Alert:
    """The alert with an ``endsAt``, never before its start (Alertmanager refuses that)."""
    return {**alert, "endsAt": at(max(ends, starts))}


@dataclass
class Firing:
    """An alert this worker keeps sending, and the partition whose engine holds it."""

    alert: Alert
    partition: int
    starts: float  # detected_at
    until: float  # Lifetime.until: it is not sent beyond this


class Lifetime:
    """The alerts firing from one worker: what to post for an emission, and on each re-send.

    At most ``limit`` alerts are held; beyond it the oldest is let go (counted in
    ``evicted``) and lapses in Alertmanager at the ``endsAt`` it was last sent with.
    """

    def __init__(self, hold: float, resend: float, limit: int, grafana_url: str):
        self.hold = hold
        self.resend = resend
        self.limit = limit
        self.grafana_url = grafana_url
        self.firing: dict[str, Firing] = {}  # by violation or warning id, oldest first
        self.evicted = 0

    def offer(self, record: Paged, partition: int, now: float) -> list[Alert]:
        """What to post now for one emission (in this order): possibly nothing."""
        posts = []
        vid = paged_id(record)
        fires = record.state == "active"  # else retracted, or a warning resolved
        until = self.until(record)
        new = alert(record, self.grafana_url)
        old = self.firing.pop(vid, None)
        if old is not None:
            if fires and old.alert == new and until > now:
                self.firing[vid] = Firing(old.alert, partition, old.starts, old.until)
                return []  # said again: Alertmanager has it, the re-sends keep it firing
            if not fires or old.alert["labels"] != new["labels"]:
                # over, or another verdict (e.g. not_delivered became delivered_late)
                # whose labels make it another alert: the old one resolves
                posts.append(ending(old.alert, old.starts, now))
        if until <= now:
            return posts  # lapsed already
        if not fires:
            if old is None:  # fired by an earlier process or another worker
                posts.append(ending(new, record.detected_at, now))
            return posts
        firing = Firing(new, partition, record.detected_at, until)
        self.firing[vid] = firing
        posts.append(self._lease(firing, now))
        while len(self.firing) > self.limit:
            del self.firing[next(iter(self.firing))]
            self.evicted += 1
        return posts

    def due(self, now: float) -> list[Alert]:
        """Every firing alert with a fresh ``endsAt``; those past their hold are let go."""
        for vid in [vid for vid, f in self.firing.items() if f.until <= now]:
            del self.firing[vid]  # sent last with endsAt <= until: it has lapsed
        return [self._lease(f, now) for f in self.firing.values()]

    def until(self, record: Paged) -> float:
        """When an emission's alert stops firing even if nothing ends it: its hold, and for a
        warning with a due time not before that time (its promise is decided by then, and
        that ends it; a warning of a 30-day promise is news until then)."""
        until = record.detected_at + self.hold
        if isinstance(record, WarningRecord) and record.due_at is not None:
            until = max(until, record.due_at)
        return until

    def forget(self, partitions: Iterable[int]) -> int:
        """Stop sending the alerts of partitions this worker no longer owns: their new owner
        says them again (and may retract one, which this worker must not keep firing)."""
        gone = set(partitions)
        vids = [vid for vid, f in self.firing.items() if f.partition in gone]
        for vid in vids:
            del self.firing[vid]
        return len(vids)

    def _lease(self, firing: Firing, now: float) -> Alert:
        return ending(firing.alert, firing.starts, min(now + LEASES * self.resend, firing.until))

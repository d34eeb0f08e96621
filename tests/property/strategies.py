"""Random event streams for the properties (hypothesis strategies), and the final state a
run of one ends in, as the properties compare it."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from promise_tracker.calendars import load_calendars
from promise_tracker.schemas.models import OBSERVATION_KINDS, PROMISE_KINDS
from promise_tracker.streams.engine import Engine, EngineConfig
from promise_tracker.streams.risk import warn_fractions
from tests.support import CASES, observe, promise, run, ts

HOURS = st.floats(min_value=0, max_value=20, allow_nan=False).map(lambda h: round(h, 2))
PAGES = st.sampled_from(["home", "login", "pose"])
CHANNELS = st.sampled_from(["phone", "mail", "web"])
# with lateness, decided promises can reopen (a late cancellation uncounts their deciding
# observation while the watermark is still short of T): absence rules must still fire
LATENESS = st.sampled_from([0.0, 1800.0, 4 * 3600.0])
# v2: the published calendars (business hours, a DST night window, round the clock), and two
# warning points
CONFIG = EngineConfig(
    calendars=load_calendars(CASES / "v2" / "calendars.toml"),
    warn_at=warn_fractions("0.5,0.75"),
)
CALENDARS = st.sampled_from([None, "support-eu", "ops-ny", "always-lon"])


@st.composite
def promises(draw, pid: str) -> dict:
    kind = draw(st.sampled_from((*PROMISE_KINDS, "within")))
    at, close = sorted(draw(st.lists(HOURS, min_size=2, max_size=2)))
    if kind == "within":  # deliver_by on a clock (SPEC v2 3)
        terms: dict = {"within_seconds": draw(st.sampled_from([600, 3600, 4 * 3600, 9 * 3600]))}
        calendar = draw(CALENDARS)
        if calendar is not None:
            terms["calendar"] = calendar
        return promise(pid, "deliver_by", terms, at=ts(at))
    extra = {"expires_at": ts(close)} if draw(st.booleans()) else {}
    terms = {
        "deadline": {"open_until": ts(close)},
        "max_wait": {"max_seconds": draw(st.sampled_from([60, 300, 900]))},
        "max_steps": {"max_steps": draw(st.integers(1, 3)), "goal": "pose"},
        "deliver_by": {"due_at": ts(close)},
        "channels_available": {"channels": ["phone", "mail"], "until": ts(close)},
    }[kind]
    if kind not in ("max_wait", "max_steps"):
        extra = {}
    return promise(pid, kind, terms, at=ts(at), **extra)


@st.composite
def observations(draw, oid: str, pid: str) -> dict:
    kind = draw(st.sampled_from(OBSERVATION_KINDS))
    value = {
        "hold_time": {"seconds": draw(st.sampled_from([0, 60, 300, 301, 1200]))},
        "page_reached": {"page": draw(PAGES)},
        "channel_status": {"channel": draw(CHANNELS), "available": draw(st.booleans())},
    }.get(kind, {})
    return observe(oid, pid, kind, ts(draw(HOURS)), **value)


@st.composite
def streams(draw) -> list[dict]:
    count = draw(st.integers(1, 4))
    events = [draw(promises(f"p{i}")) for i in range(count)]
    for j in range(draw(st.integers(0, 12))):
        pid = f"p{draw(st.integers(0, count))}"  # p{count} never arrives: an orphan
        events.append(draw(observations(f"o{j}", pid)))
    return events


def final_state(events: list[dict], lateness: float = 0.0) -> tuple[dict, dict, list, dict]:
    r = run(events, lateness=lateness, config=CONFIG)
    r.engine.finish()
    assert r.engine.stats.active == len(r.out.active())  # the running count stays true
    return summary(r.engine, r.out)


def summary(engine: Engine, out) -> tuple[dict, dict, list, dict]:
    active = {
        vid: (v.reason, v.occurred_at, v.excess, v.unit, v.observation_id)
        for vid, v in out.active().items()
    }
    outcomes = {pid: (s.status, s.closed_at) for pid, s in engine.promises.items()}
    rejected = sorted((str(r.reason), r.event_id) for r in out.rejects)
    last = {w.warning_id: w for w in out.warnings}
    warnings = {
        wid: (w.label, round(w.warn_at, 3), w.state, w.outcome, w.due_at)
        for wid, w in last.items()
        if w.state != "retracted"
    }
    assert engine.stats.at_risk == sum(w[2] == "active" for w in warnings.values())
    return active, outcomes, rejected, warnings


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

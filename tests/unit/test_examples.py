"""The example stories under examples/ give the verdicts their README promises.

Every expectation below was worked out by hand from SPEC section 3 (outcomes) and
section 4 (violation ids), not copied from a run of the program: if the engine and
this file disagree, suspect the engine first and check the SPEC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from promise_tracker.streams.engine import EngineConfig
from promise_tracker.streams.records import final_active, read_jsonl
from promise_tracker.streams.replay import replay
from promise_tracker.streams.risk import warning_id

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def ts(text: str) -> float:
    """An RFC 3339 time as Unix seconds, the unit of the output files."""
    return dt.datetime.fromisoformat(text).timestamp()


def vid(promise_id: str, discriminator: str = "") -> str:
    """SPEC section 4: violation_id = sha256(promise_id + "\\n" + discriminator)[:32]."""
    return hashlib.sha256(f"{promise_id}\n{discriminator}".encode()).hexdigest()[:32]


# promise id -> (status, closed_at)
# and promise id -> {discriminator: (reason, occurred_at, excess, observation_id)}
EXPECTED: dict[str, tuple[dict, dict]] = {
    "prestige-portraits.jsonl": (
        {
            # deadline: access_denied at 09:12 < open_until 23:59:59 -> broken at 09:12
            "prestige-2013-card-8841": ("broken", ts("2013-11-01T09:12:00-04:00")),
            # max_steps: the goal page never appears; W (11/05 08:30 EST) >= expires_at
            "prestige-2013-card-8842": ("broken", ts("2013-11-04T23:59:59-05:00")),
            # max_wait: a 1200 s hold against a 120 s promise -> broken at the hold
            "prestige-2013-phone-8843": ("broken", ts("2013-11-01T09:40:00-04:00")),
        },
        {
            "prestige-2013-card-8841": {
                # excess = 23:59:59 - 09:12:00 = 14 h 47 min 59 s
                "": (
                    "enforced_early",
                    ts("2013-11-01T09:12:00-04:00"),
                    53279,
                    "prestige-web-deny-5520",
                ),
            },
            "prestige-2013-card-8842": {
                "": ("goal_not_reached", ts("2013-11-04T23:59:59-05:00"), None, None),
            },
            "prestige-2013-phone-8843": {
                # excess = 1200 - 120
                "": (
                    "wait_exceeded",
                    ts("2013-11-01T09:40:00-04:00"),
                    1080,
                    "prestige-acd-call-20131101-0447",
                ),
            },
        },
    ),
    "obamacare-letter.jsonl": (
        {
            # channels_available: the earliest outage of a listed channel decides closed_at:
            # the portal every channel depends on went down at 08:00
            "marketplace-2013-letter-HH4471093": ("broken", ts("2013-10-01T08:00:00-04:00")),
        },
        {
            "marketplace-2013-letter-HH4471093": {
                # each channel is down from 08:00 with the portal (its own outages at 08:04
                # and 09:30 come later; the 09/30 phone outage is before the letter; web is
                # not a channel the letter listed)
                channel: (
                    "channel_unavailable",
                    ts("2013-10-01T08:00:00-04:00"),
                    None,
                    "mkt-portal-20131001-0800-down",
                )
                for channel in ("phone", "mail", "in_person")
            },
        },
    ),
    "kept-promises.jsonl": (
        {
            # deadline: enforced at 00:00:00 on the 16th, i.e. not before open_until; W >= U
            "citylib-2024-renewal-5521": ("kept", ts("2024-04-15T23:59:59-04:00")),
            # max_wait: one hold of 250 s <= 300 s -> kept at the hold
            "northbank-2024-phone-30117": ("kept", ts("2024-04-10T14:06:10-04:00")),
            # deliver_by: delivered 15:42 <= 17:00 -> kept at the delivery
            "pharmaplus-2024-rx-66120": ("kept", ts("2024-04-11T15:42:00-04:00")),
            # max_steps: goal is the 3rd page view (the 4th comes after it) -> kept at the goal
            "eurorail-2024-web-7730": ("kept", ts("2024-04-12T10:03:12+02:00")),
            # channels_available: the only outage is at/after `until`; W >= until
            "cityutil-2024-storm-line-0412": ("kept", ts("2024-04-14T00:00:00Z")),
        },
        {},
    ),
}


SHOP = "prestige/shop:yearbook-selection"
CARD = "prestige-2013-card-8841"
# file -> the contradictions flagged when a promise was made: promise id -> (label, warn_at,
# final state, final outcome, detail), and the violation each one predicted
CONTRADICTIONS: dict[str, dict[str, tuple[str, float, str, str | None, str]]] = {
    "prestige-portraits.jsonl": {
        # the card (10/07) says 11/01 23:59:59; the shop was declared (09/12) to close the
        # selection on 10/31 23:59:59: 24 h earlier, flagged when the card was issued and
        # resolved with the promise's outcome when it broke
        CARD: (
            f"contradiction:{SHOP}",
            ts("2013-10-07T10:00:00-04:00"),
            "resolved",
            "broken",
            f"card says open until 2013-11-01 23:59 -0400; {SHOP} closes yearbook selection "
            "at 2013-10-31 23:59 -0400 (24 h earlier)",
        ),
    },
    "obamacare-letter.jsonl": {},  # the portal went down after the letter was issued
    "kept-promises.jsonl": {},
}
PORTAL = "gov/eligibility-portal"


def run(inputs: list[Path], out: Path, config: EngineConfig | None = None):
    out.mkdir(parents=True, exist_ok=True)
    v, o, r = out / "violations.jsonl", out / "outcomes.jsonl", out / "rejects.jsonl"
    w = out / "warnings.jsonl"
    replay(inputs, v, o, r, config=config, progress=False, warnings=w)
    warnings = {x["warning_id"]: x for x in read_jsonl(w)}  # the last emission per id
    return final_active(read_jsonl(v)), read_jsonl(o), read_jsonl(r), warnings


def check(
    name: str, active: dict, outcomes: list[dict], rejects: list[dict], warnings: dict
) -> None:
    want_outcomes, want_violations = EXPECTED[name]
    assert rejects == []
    check_contradictions(name, active, warnings)

    ids = [o["promise_id"] for o in outcomes]
    assert sorted(ids) == sorted(set(ids)), "an outcome was written twice"
    got = {o["promise_id"]: (o["status"], o["closed_at"]) for o in outcomes}
    assert set(got) == set(want_outcomes)
    for pid, (status, closed_at) in want_outcomes.items():
        assert got[pid][0] == status, pid
        assert got[pid][1] == pytest.approx(closed_at), pid

    # the exact set of active violation reasons per promise
    reasons: dict[str, set[str]] = {}
    for e in active.values():
        reasons.setdefault(e["promise_id"], set()).add(e["reason"])
    assert reasons == {
        pid: {reason for reason, *_ in by_disc.values()} for pid, by_disc in want_violations.items()
    }

    # and each violation in detail, under its deterministic id
    want = {
        vid(pid, disc): (pid, *spec)
        for pid, by_disc in want_violations.items()
        for disc, spec in by_disc.items()
    }
    assert set(active) == set(want)
    for key, (pid, reason, occurred_at, excess, observation_id) in want.items():
        e = active[key]
        assert (e["promise_id"], e["reason"], e["observation_id"]) == (pid, reason, observation_id)
        assert e["occurred_at"] == pytest.approx(occurred_at)
        if excess is None:
            assert e["excess"] is None and e["unit"] is None
        else:
            assert e["excess"] == pytest.approx(excess)
            assert e["unit"] == "seconds"


def check_contradictions(name: str, active: dict, warnings: dict) -> None:
    """The contradictions and what they predicted: every violation of a promise whose
    contradiction was in force when it broke carries that warning's id, no other does."""
    want = CONTRADICTIONS[name]
    found = {
        w["promise_id"]: (w["label"], w["warn_at"], w["state"], w["outcome"], w["detail"])
        for w in warnings.values()
        if w["label"].startswith("contradiction:")
    }
    assert found == want
    predicting = {pid: warning_id(pid, label) for pid, (label, *_) in want.items()}
    for violation in active.values():
        assert violation["predicted_by"] == predicting.get(violation["promise_id"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_verdicts(name: str, tmp_path: Path) -> None:
    path = EXAMPLES / name
    for line in path.read_text("utf-8").splitlines():  # SPEC 1: every line a CloudEvent
        event = json.loads(line)
        assert event["specversion"] == "1.0"
        assert {"type", "source", "id", "time", "data"} <= set(event)
    check(name, *run([path], tmp_path))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_verdicts_do_not_depend_on_line_order(name: str, tmp_path: Path) -> None:
    """SPEC 5: the final state must not depend on the order of the input lines.

    Reversed, the newest event comes first, so the oldest ones arrive far behind the
    watermark; the retention is raised so they are still applied (SPEC 2) rather than
    rejected too_late, which is the one way line order may legitimately matter here.
    """
    lines = (EXAMPLES / name).read_text("utf-8").splitlines()
    reversed_path = tmp_path / f"reversed-{name}"
    reversed_path.write_text("\n".join(reversed(lines)) + "\n", "utf-8")
    config = EngineConfig(retention=365 * 86_400.0)
    check(name, *run([reversed_path], tmp_path / "out", config))


def test_several_inputs_are_one_stream_with_a_progress_bar(tmp_path, capsys):
    """Inputs are read in order as one stream; the bar (tqdm, on stderr) counts their bytes."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    files = [examples / "obamacare-letter.jsonl", examples / "kept-promises.jsonl"]  # 2013, 2024
    v, o, r = (tmp_path / n for n in ("v.jsonl", "o.jsonl", "r.jsonl"))
    summary = replay(files, v, o, r, progress=True)
    assert summary.lines == sum(len(f.read_bytes().splitlines()) for f in files)
    assert "replay" in capsys.readouterr().err
    assert r.read_bytes() == b"" and len(o.read_bytes().splitlines()) == 1 + 5


def test_one_portal_outage_names_the_root_cause_and_measures_the_letter(tmp_path: Path) -> None:
    """Each channel's violation says it failed with the portal it depends on, and the
    letter's outcome measures 3600 s from the letter (07:00) to the portal's outage (08:00),
    not to the first outage the monitor saw on a channel itself (08:04)."""
    active, outcomes, _, _ = run([EXAMPLES / "obamacare-letter.jsonl"], tmp_path)
    assert sorted(v["observed"] for v in active.values()) == [
        f"{channel} (it depends on {PORTAL}, which was down) unavailable at 2013-10-01T12:00:00Z"
        for channel in ("in_person", "mail", "phone")
    ]
    (letter,) = outcomes
    assert (letter["measure"], letter["measured"]) == ("up_seconds", 3600.0)

"""The two seed stories (examples/) end to end through the live worker on a real broker
(issue 16): the Prestige card is flagged as contradicting the shop's declared window when it
is issued, before anything of 11/01 has happened, and a ticket (not a page) says so in the
real Alertmanager; the portal outage breaks the letter's three
channels, each naming the portal; and what the worker finally says is what the replay of the
same files says, line for line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from promise_tracker.runtime.topics import ensure_topics
from promise_tracker.streams.risk import warning_id
from tests.alertmanager import Alertmanager
from tests.live import (
    LiveOutputs,
    WorkerProcess,
    assert_reaches,
    fresh_settings,
    replay_answer,
    sentinels,
    wait_for,
)
from tests.streams import QUIET, send
from tests.support import ROOT

STORIES = [
    ROOT / "examples" / "prestige-portraits.jsonl",
    ROOT / "examples" / "obamacare-letter.jsonl",
]
PARTITIONS = 2
W = "2013-11-05T08:30:00-05:00"  # the latest event of the stories: the replay's watermark
YEAR = str(365 * 86_400)  # the stories are five weeks apart: nothing is too late
CARD = "prestige-2013-card-8841"
CONTRADICTION = warning_id(CARD, "contradiction:prestige/shop:yearbook-selection")
LETTER = "marketplace-2013-letter-HH4471093"
CARD_ISSUED = dt.datetime.fromisoformat("2013-10-07T10:00:00-04:00").timestamp()
BEFORE_11_01 = dt.datetime.fromisoformat("2013-10-08T00:00:00-04:00")


def stories(tmp_path: Path) -> tuple[Path, int]:
    """Both stories in event-time order as one stream, then the sentinels at W; and how many
    lines come before 10/08 (the shop's declaration, the card, the letter's first days)."""
    lines = [line for story in STORIES for line in story.read_bytes().splitlines() if line]
    lines.sort(key=lambda line: dt.datetime.fromisoformat(orjson.loads(line)["time"]))
    early = sum(dt.datetime.fromisoformat(orjson.loads(x)["time"]) < BEFORE_11_01 for x in lines)
    path = tmp_path / "stories.jsonl"
    path.write_bytes(b"\n".join([*lines, *sentinels(W, PARTITIONS)]) + b"\n")
    return path, early


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    am = Alertmanager(tmp_path / "alertmanager")
    am.start()
    yield am
    am.stop()


def test_the_seed_stories_through_the_live_worker(kafka, tmp_path, alertmanager):
    stream, early = stories(tmp_path)
    expected = replay_answer(stream, tmp_path, "--retention", YEAR, "--orphan-ttl", YEAR)
    settings = fresh_settings(
        kafka,
        partitions=PARTITIONS,
        lateness=0.0,
        quiet=QUIET,
        retention=float(YEAR),
        orphan_ttl=float(YEAR),
        alertmanager_url=alertmanager.url,
    )
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    outputs = LiveOutputs(settings)
    try:
        # up to 10/07: the shop's window (closes 10/31) and the card (says 11/01)
        send(stream, settings, slice(0, early))

        def flagged() -> bool:
            w = outputs.answer()["warnings"].get(CONTRADICTION)
            return w is not None and w["state"] == "active"

        assert wait_for(flagged, 60), worker.tail()
        now = outputs.answer()
        card = now["warnings"][CONTRADICTION]
        assert card["warn_at"] == CARD_ISSUED  # at once, 25 days before 11/01
        assert card["detail"] == (
            "card says open until 2013-11-01 23:59 -0400; prestige/shop:yearbook-selection "
            "closes yearbook selection at 2013-10-31 23:59 -0400 (24 h earlier)"
        )
        assert not any(v["promise_id"] == CARD for v in now["violations"].values())

        # a ticket for whoever issues the cards, grouped by the capability: nobody is woken
        def tickets() -> dict[str, dict]:
            return alertmanager.firing("PromiseContradictsCapability")

        assert wait_for(lambda: CONTRADICTION in tickets(), 30), worker.tail()
        ticket = tickets()[CONTRADICTION]
        assert ticket["labels"]["capability"] == "prestige/shop:yearbook-selection"
        assert ticket["labels"]["severity"] == "ticket"
        assert ticket["receivers"] == [{"name": "ticket"}]
        assert ticket["annotations"]["description"].endswith(card["detail"])

        send(stream, settings, slice(early, None))  # the rest: 11/01, the portal, the clock
        assert_reaches(outputs, expected, worker)
        final = outputs.answer()
        assert final["warnings"][CONTRADICTION]["state"] == "resolved"
        (broken,) = [v for v in final["violations"].values() if v["promise_id"] == CARD]
        assert broken["predicted_by"] == CONTRADICTION
        letter = [v for v in final["violations"].values() if v["promise_id"] == LETTER]
        assert sorted(v["observed"].split(" unavailable")[0] for v in letter) == [
            f"{channel} (it depends on gov/eligibility-portal, which was down)"
            for channel in ("in_person", "mail", "phone")
        ]
        assert {v["observation_id"] for v in letter} == {"mkt-portal-20131001-0800-down"}
        # the card was decided: its ticket resolves (the broken card pages on its own)
        assert wait_for(lambda: CONTRADICTION not in tickets(), 30), worker.tail()
    finally:
        outputs.close()
        worker.stop()

"""The README's first command, end to end: ``promise-tracker demo`` from nothing running.

KAFKA_PORT, when set, is the port the demo's broker takes (else it finds a free pair)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

from promise_tracker.sinks import readback as queries
from promise_tracker.sinks.store import ChdbStore
from tests.support import ROOT

KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
MALFORMED = ("invalid_json", "invalid_event", "unknown_type")  # what the SDK refuses


def test_the_demo_runs_the_pipeline_and_stops_what_it_started(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "promise_tracker.cli", "demo", "--events", "3000"]
        + ["--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "6/6 what ClickHouse says" in out
    # the stories' verdicts, read back from ClickHouse with the words the customer saw
    assert "prestige-2013-card-8841 (deadline, card, prestige/marketing)" in out
    assert "enforced_early: promised open until" in out
    assert out.count("channel_unavailable:") == 3  # phone, mail and in person
    # one portal outage broke all three, and the verdicts name it
    assert out.count("(it depends on gov/eligibility-portal, which was down)") == 3
    # the card contradicted the shop's declared window when it was issued
    caught = re.findall(r"could have been caught before it was issued: .*\(24 h earlier\)", out)
    assert len(caught) == 1 and "prestige/shop:yearbook-selection closes" in caught[0]
    assert 'the customer read: "Your yearbook selection date is 11/01/2013.' in out
    assert re.search(r"prestige/customer-service\s+max_wait\s+0\s+1\s+0\s+0\s+0\s+0%", out)
    assert "sending" in done.stderr  # the progress bar
    port = re.search(r"starting Kafka on 127.0.0.1:(\d+)", out).group(1)
    env = {**os.environ, "KAFKA_PORT": port, "KAFKA_DATA": str(tmp_path / "demo" / "kafka")}
    assert subprocess.run([KAFKA_SH, "status"], env=env, capture_output=True).returncode != 0
    assert (tmp_path / "demo" / "chdb").is_dir()
    store = ChdbStore(str(tmp_path / "demo" / "chdb"), "promise_tracker").connect()
    try:
        _assert_the_summary_says_what_the_store_holds(out, store)
    finally:
        store.close()


def _assert_the_summary_says_what_the_store_holds(out: str, store: ChdbStore) -> None:
    """Issue 12: a manager read 2,119 violations next to 2,028 broken promises, the rejects
    as a Python dict and 2026 dates beside a card of 2013, with nothing explaining them."""
    status = Counter(row["status"] for row in queries.outcomes(store).values())
    promises = sum(status.values())
    assert (
        f"{promises:,} promises: {status['kept']:,} kept, {status['broken']:,} broken, "
        f"{status['expired']:,} unverifiable, {status['cancelled']:,} cancelled, "
        f"{status['open']:,} still open." in out
    )
    # more violations than broken promises, and the line saying why
    active = [v for v in queries.violations(store).values() if v["state"] == "active"]
    broken = {v["promise_id"] for v in active}
    assert len(active) > len(broken) == status["broken"]
    assert f"{len(active):,} violations on the {len(broken):,} broken promises: " in out
    assert "a promise can be broken in more than one way" in out
    # the rejects: what was sent on purpose, where they are kept, a row per reason
    rejects = Counter(row["reason"] for row in queries.rejects(store))
    malformed = sum(rejects[reason] for reason in MALFORMED)
    assert malformed > 0
    assert f"the demo sends {malformed:,} malformed lines" in out
    assert "on purpose, to show that bad input is rejected with a reason and kept" in out
    assert "the Kafka topic promises.dlq and the ClickHouse table rejects" in out
    for reason, count in rejects.items():
        assert re.search(rf"^  {reason} +{count:,}  \w", out, re.MULTILINE), reason
    assert re.search(rf"^  total +{rejects.total():,}$", out, re.MULTILINE)
    assert "{'" not in out  # no Python dict printed
    # the stories were moved from 2013 to now: the card's date beside the one the verdict shows
    assert "(they happened in 2013: the demo moved each story to end ten minutes ago" in out
    moved = re.search(
        r"in the story: open until 2013-11-01T23:59:59-04:00, shifted to (\S+Z)\n", out
    )
    assert moved and f"enforced_early: promised open until {moved.group(1)};" in out

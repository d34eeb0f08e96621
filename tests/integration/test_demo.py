"""The README's first command, end to end: ``promise-tracker demo`` from nothing running."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.support import ROOT

KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"


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
    assert 'the customer read: "Your yearbook selection date is 11/01/2013.' in out
    assert re.search(r"prestige/customer-service\s+max_wait\s+0\s+1\s+0\s+0\s+0\s+0%", out)
    assert re.search(r"rejected events \{'invalid_event': \d+", out)  # the junk went to the DLQ
    assert "sending" in done.stderr  # the progress bar
    port = re.search(r"starting Kafka on 127.0.0.1:(\d+)", out).group(1)
    env = {**os.environ, "KAFKA_PORT": port, "KAFKA_DATA": str(tmp_path / "demo" / "kafka")}
    assert subprocess.run([KAFKA_SH, "status"], env=env, capture_output=True).returncode != 0
    assert (tmp_path / "demo" / "chdb").is_dir()

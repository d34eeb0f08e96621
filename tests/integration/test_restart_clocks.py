"""Regression: committed input ran ahead of the clocks in the changelog.

The worker saved a partition's clocks (the largest event time per input topic) only when
its wall-clock tick found them changed, but committed offsets on its own schedule. Input
read after the last tick and committed before the next was never read again by a new
owner, whose restored watermark stayed behind it; without the wall clock's help (a
topic that never goes quiet, or the equality tests' long ``quiet``) the deadlines that
input made due never fired. Seen as a flaky two-worker test (70 absence violations
missing). The clocks are now saved before every commit.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from pathlib import Path

from promise_tracker.emit import Emitter
from promise_tracker.runtime.kafka import group_lag
from promise_tracker.runtime.topics import ensure_topics
from tests.live import WorkerProcess, fresh_settings, wait_for
from tests.prometheus import free_port, scrape

HOUR = 3600.0


def _event(kind: str, pid: str, at: dt.datetime) -> dict:
    stamp = at.isoformat()
    if kind == "promise":
        return {
            "specversion": "1.0",
            "type": "promise.issued",
            "source": "test/clocks",
            "id": pid,
            "time": stamp,
            "data": {"kind": "deliver_by", "channel": "web", "terms": {"due_at": stamp}},
        }
    return {
        "specversion": "1.0",
        "type": "delivery.observed",
        "source": "test/clocks",
        "id": f"{pid}-delivered",
        "time": stamp,
        "data": {"promise_id": pid, "kind": "delivered", "value": {}},
    }


def _watermark(port: int) -> float | None:
    """The partition's watermark, from the worker's metrics (absent while it is -inf)."""
    try:
        delays = scrape(f"http://127.0.0.1:{port}/metrics").by(
            "promise_tracker_watermark_delay_seconds", "partition"
        )
    except OSError:
        return None
    return time.time() - delays["0"] if "0" in delays else None


def test_a_new_owner_restores_the_clocks_of_everything_committed(kafka: str, tmp_path: Path):
    # no tick after the first (made before any input), and no quiet topic: only the
    # commits could save the clocks
    # (a stable instance: the restarted worker takes the partition back at once)
    settings = fresh_settings(
        kafka, partitions=1, tick_interval=HOUR, quiet=HOUR, instance="clocks"
    )
    ensure_topics(settings)
    first = WorkerProcess(settings, tmp_path / "first.log").start()
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    with Emitter(settings) as emitter:
        for n in range(20):
            emitter.send_event(_event("promise", f"p{n}", at))
            emitter.send_event(_event("delivery", f"p{n}", at))
    topics = [settings.issued, settings.observed]
    assert wait_for(lambda: group_lag(settings, settings.group, topics) == 0, 60), first.tail()
    first.kill()  # SIGKILL: nothing more is saved than what was committed

    port = free_port()
    second = WorkerProcess(replace(settings, metrics_port=port), tmp_path / "second.log").start()
    try:
        assert wait_for(lambda: _watermark(port) is not None, 60), second.tail()
        restored = _watermark(port)
        assert restored is not None
        # the events' time minus the lateness (5 s), within the metric's clock skew
        assert abs(restored - (at.timestamp() - settings.lateness)) < 2, second.tail()
    finally:
        second.stop()

"""The pager's thread against a small HTTP server in this process that answers as told: what
it posts, and what an outage costs (tests/integration/test_paging.py uses the real
Alertmanager)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from promise_tracker.paging.alerts import Lifetime
from promise_tracker.paging.pager import Pager
from promise_tracker.streams.wording import at
from tests.records import paged_violation
from tests.unit.test_alerts import paged_warning


class Receiver(ThreadingHTTPServer):
    """Answers ``status`` to every POST, and keeps the alerts of those it took (200)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.status = 200
        self.alerts: list[dict] = []
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def firing(self) -> set[str]:
        """The ids (violation or warning) of every alert it took."""
        return {a["labels"].get("violation_id") or a["labels"]["warning_id"] for a in self.alerts}


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/api/v2/alerts"
        self.server.requests += 1
        if self.server.status == 200:
            self.server.alerts += orjson.loads(body)
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def pager(url: str, resend: float = 0.3, queue_max: int = 100, limit: int = 100) -> Pager:
    lifetime = Lifetime(hold=3600, resend=resend, limit=limit, grafana_url="http://g")
    return Pager(url, lifetime, queue_max, clock=lambda: paged_violation().detected_at + 1).start()


def wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_offers_are_posted_and_counted(receiver):
    p = pager(receiver.url, resend=60)
    try:
        p.offer(paged_violation("a"), 0)
        p.offer(paged_violation("b"), 1)
        assert wait(lambda: receiver.firing() == {"a", "b"})
        assert (p.sent, p.failed_posts, p.dropped, p.active_count) == (2, 0, 0, 2)
        assert wait(lambda: p.queue_depth == 0)
    finally:
        p.close()


def test_an_outage_neither_blocks_the_offers_nor_loses_a_firing_alert(receiver):
    receiver.status = 503
    p = pager(receiver.url, queue_max=5)
    try:
        started = time.perf_counter()
        for n in range(20):
            p.offer(paged_violation(f"v{n}"), 0)
        assert time.perf_counter() - started < 0.5  # never waits for the network
        assert wait(lambda: p.failed_posts >= 2 and p.dropped == 15)  # beyond the queue
        assert p.queue_depth <= 5
        assert receiver.alerts == []
        receiver.status = 200
        # the firing set is sent whole once it answers again: no firing alert is lost
        assert wait(lambda: receiver.firing() == {f"v{n}" for n in range(20)})
    finally:
        p.close()


def test_a_refused_post_is_counted_and_not_sent_again(receiver):
    receiver.status = 400
    p = pager(receiver.url, resend=60)
    try:
        p.offer(paged_violation("a"), 0)
        assert wait(lambda: p.failed_posts == 1 and p.queue_depth == 0)
        time.sleep(0.5)
        assert (receiver.requests, p.dropped) == (1, 1)
    finally:
        p.close()


def test_the_firing_set_is_capped_and_the_evicted_count_as_dropped(receiver):
    p = pager(receiver.url, resend=60, limit=2)
    try:
        for vid in ("a", "b", "c"):
            p.offer(paged_violation(vid), 0)
        assert (p.active_count, p.dropped) == (2, 1)
    finally:
        p.close()


def test_forget_drops_the_firing_and_pending_alerts_of_those_partitions(receiver):
    receiver.status = 503
    p = pager(receiver.url)
    try:
        p.offer(paged_violation("mine"), 0)
        p.offer(paged_violation("theirs"), 1)
        p.forget([1])
        assert p.active_count == 1
        receiver.status = 200
        assert wait(lambda: "mine" in receiver.firing())
        time.sleep(0.5)  # a re-send or two
        assert "theirs" not in receiver.firing()
    finally:
        p.close()


def test_close_sends_what_is_pending_and_does_not_hang_when_nobody_answers(receiver):
    p = pager(receiver.url, resend=60)
    p.offer(paged_violation("last"), 0)
    p.close()
    assert "last" in receiver.firing()
    down = pager("http://127.0.0.1:9", resend=60)  # nothing listens on the discard port
    down.offer(paged_violation("lost"), 0)
    started = time.monotonic()
    down.close(timeout=0.5)
    assert time.monotonic() - started < 3


def test_warnings_are_posted_beside_violations_and_their_resolution_too(receiver):
    p = pager(receiver.url, resend=60)
    clock = p.clock()
    try:
        p.offer(paged_violation("v"), 0)
        p.offer(paged_warning("w"), 0)
        assert wait(lambda: receiver.firing() == {"v", "w"})
        assert p.active_count == 2
        [warning] = [a for a in receiver.alerts if a["labels"]["alertname"] == "PromiseAtRisk"]
        assert warning["labels"]["severity"] == "warning"
        assert warning["endsAt"] > at(clock)  # firing
        p.offer(paged_warning("w", state="resolved", detected_at=clock), 0)
        assert wait(lambda: len(receiver.alerts) == 3)
        resolved = receiver.alerts[-1]
        assert (resolved["labels"]["warning_id"], resolved["endsAt"]) == ("w", at(clock))
        assert p.active_count == 1  # the violation fires on
    finally:
        p.close()

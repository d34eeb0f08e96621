"""Pages through Prometheus Alertmanager: a background thread posting the worker's violations
and at-risk warnings to ``{alertmanager_url}/api/v2/alerts``, under the lifetime rules of
paging/alerts.py.

The worker only calls ``offer`` (cheap, never blocks on the network); an Alertmanager outage
must neither stop the pipeline nor lose a page:

* posts wait in a queue of at most ``alert_queue_max``; while Alertmanager is down they are
  retried with jittered backoff, and when the queue is full the oldest post is dropped
  (counted in ``dropped``). A dropped firing post costs nothing: the alert is in the firing
  set, which is sent whole every ``alert_resend`` and right after an outage ends. A dropped
  resolution leaves its alert firing in Alertmanager until the ``endsAt`` it was last sent
  with, at most 4 * alert_resend later;
* the firing set holds at most ``alert_max_active`` alerts; beyond it the oldest is let go
  (counted in ``dropped``) and lapses at its last ``endsAt`` the same way;
* a post Alertmanager refuses as invalid (4xx) is not retried: it is logged and counted.

Counters for metrics: ``queue_depth``, ``active_count``, ``sent`` (alerts posted),
``failed_posts`` (requests that failed), ``dropped``.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from http.client import HTTPException

import orjson

from promise_tracker.paging.alerts import Alert, Lifetime, Paged
from promise_tracker.runtime.backoff import Backoff
from promise_tracker.runtime.settings import Settings

log = logging.getLogger("promise_tracker.pager")

BATCH = 500  # alerts per request
TIMEOUT = 5.0  # seconds one request may take


class Refused(Exception):
    """Alertmanager answered that the alerts are invalid: sending them again cannot help."""


class Pager:
    """Offers in, posts out, from one daemon thread with its own HTTP client."""

    def __init__(
        self,
        url: str,
        lifetime: Lifetime,
        queue_max: int,
        clock: Callable[[], float] = time.time,
    ):
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.lifetime = lifetime
        self.queue_max = queue_max
        self.clock = clock
        self._pending: deque[tuple[int, Alert]] = deque()  # (partition, alert), oldest first
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._deadline = float("inf")
        self._dropped = 0
        self.sent = 0
        self.failed_posts = 0

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.time) -> Pager:
        lifetime = Lifetime(
            settings.alert_hold,
            settings.alert_resend,
            settings.alert_max_active,
            settings.grafana_url,
        )
        return cls(settings.alertmanager_url, lifetime, settings.alert_queue_max, clock)

    # --- the worker's side -----------------------------------------------------------

    def start(self) -> Pager:
        self._thread = threading.Thread(target=self._run, name="pager", daemon=True)
        self._thread.start()
        log.info("paging through Alertmanager at %s", self.url)
        return self

    def offer(self, record: Paged, partition: int) -> None:
        """One emission of the violations or the warnings topic, after it was produced."""
        with self._wake:
            posts = self.lifetime.offer(record, partition, self.clock())
            if not posts:
                return
            pending = self._pending
            for post in posts:
                pending.append((partition, post))
            while len(pending) > self.queue_max:
                pending.popleft()
                self._dropped += 1
            self._wake.notify()

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions this worker no longer owns: neither re-send nor post their alerts."""
        gone = set(partitions)
        with self._wake:
            self.lifetime.forget(gone)
            self._pending = deque(item for item in self._pending if item[0] not in gone)

    def close(self, timeout: float = 2.0) -> None:
        """Post what is pending, for at most ``timeout`` seconds, then stop. Firing alerts
        are not resolved: another worker takes them over, or they lapse at their endsAt."""
        thread = self._thread
        if thread is None:
            return
        with self._wake:
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._wake.notify()
        thread.join(timeout + TIMEOUT)
        if self._pending:
            log.warning("%d alert posts not sent before the worker stopped", len(self._pending))

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def active_count(self) -> int:
        return len(self.lifetime.firing)

    @property
    def dropped(self) -> int:
        return self._dropped + self.lifetime.evicted

    # --- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(first=0.5, cap=min(30.0, self.lifetime.resend))
        resend_at = time.monotonic() + self.lifetime.resend
        retry_at = 0.0  # no request before this (backing off)
        down = False
        while True:
            with self._wake:
                while not self._ready(resend_at, retry_at):
                    self._wake.wait(self._wait(resend_at, retry_at))
                if self._closing and (not self._pending or time.monotonic() > self._deadline):
                    return
                batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
                resend = not batch and time.monotonic() >= resend_at
                alerts = self.lifetime.due(self.clock()) if resend else [a for _, a in batch]
            try:
                self._post_all(alerts, dropping=bool(batch))
            except (OSError, HTTPException) as exc:  # unreachable, timed out, or a 5xx answer
                self.failed_posts += 1
                if not down:
                    log.warning(
                        "Alertmanager at %s: %s; %d posts pending, retrying with backoff",
                        self.url,
                        exc,
                        len(self._pending) + len(batch),
                    )
                    down = True
                with self._wake:
                    self._requeue(batch)
                retry_at = time.monotonic() + backoff.next()
                continue
            backoff.reset()
            if down:
                log.info("Alertmanager at %s answers again: sending every firing alert", self.url)
                down = False
                resend_at = time.monotonic()  # whatever it lost or let lapse meanwhile
            elif resend:
                resend_at = time.monotonic() + self.lifetime.resend

    def _ready(self, resend_at: float, retry_at: float) -> bool:
        now = time.monotonic()
        if self._closing:
            return not self._pending or now >= min(retry_at, self._deadline)
        return now >= retry_at and (bool(self._pending) or now >= resend_at)

    def _wait(self, resend_at: float, retry_at: float) -> float:
        now = time.monotonic()
        if self._closing:
            return max(0.0, min(retry_at, self._deadline) - now)
        return max(0.0, max(retry_at, now if self._pending else resend_at) - now)

    def _requeue(self, batch: list[tuple[int, Alert]]) -> None:
        """A failed batch goes back to the front, the queue's bound still kept."""
        self._pending.extendleft(reversed(batch))
        while len(self._pending) > self.queue_max:
            self._pending.popleft()
            self._dropped += 1

    def _post_all(self, alerts: list[Alert], dropping: bool) -> None:
        """In requests of ``BATCH``; one that is refused is counted and not sent again
        (Alertmanager keeps the valid alerts of a request it refuses)."""
        for start in range(0, len(alerts), BATCH):
            chunk = alerts[start : start + BATCH]
            try:
                self._post(chunk)
            except Refused as exc:
                log.error("Alertmanager refused %d alerts: %s", len(chunk), exc)
                with self._wake:
                    self.failed_posts += 1
                    self._dropped += len(chunk) if dropping else 0

    def _post(self, alerts: list[Alert]) -> None:
        request = urllib.request.Request(
            self.url,
            data=orjson.dumps(alerts),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                body = exc.read()[:300].decode(errors="replace")
                raise Refused(f"HTTP {exc.code}: {body}") from exc
            raise
        self.sent += len(alerts)

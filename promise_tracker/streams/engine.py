"""The rule engine: events and a watermark in, violations, outcomes and rejects out.

Pure: no Kafka, no ClickHouse, no clock of its own (``clock`` is passed in and only
stamps ``detected_at``). The offline replay and the live worker (streams/worker.py) drive it.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
from msgspec import UNSET

from promise_tracker.schemas.models import (
    CapabilityDeclared,
    DeliverByTerms,
    DeliveryObserved,
    Event,
    PromiseIssued,
    ViolationRecord,
    WarningRecord,
    kind_of,
)
from promise_tracker.schemas.reject import Reason, Reject
from promise_tracker.streams.capabilities import (
    CONTRADICTION,
    Capabilities,
    Contradiction,
)
from promise_tracker.streams.clock import Calendar, paused_spans, run_until
from promise_tracker.streams.records import outcome_measures
from promise_tracker.streams.risk import (
    DEFAULT_WARN_AT,
    Fractions,
    alerts,
    contradiction_alerts,
    warn_fractions,
    warn_points,
    warning_id,
)
from promise_tracker.streams.rules import Finding, channels_verdict, verdict
from promise_tracker.streams.snapshot import Entry, Orphan
from promise_tracker.streams.state import (
    CHANNELS,
    DELIVER_BY,
    MAX_STEPS,
    Alert,
    PromiseState,
    apply,
    clocked,
    new_state,
)
from promise_tracker.streams.timers import TimerQueue
from promise_tracker.streams.wording import describe

DAY = 86_400.0
INF = float("inf")
SWEEP = 60.0  # event-time seconds between retention sweeps: eviction is never early, <= 1 min late


@dataclass(frozen=True)
class EngineConfig:
    """The engine's knobs (SPEC section 2)."""

    retention: float = 7 * DAY  # closed promises are kept this long in event time
    orphan_ttl: float = DAY  # observations wait this long (watermark progress) for their promise
    # beyond this the oldest orphan is rejected: hostile input is bounded
    max_orphans: int = 100_000
    max_future: float = 300.0  # live only: how far ahead of the wall clock an event may be
    # The watermark's lateness, set by the driver that computes the watermark. The engine
    # uses it once: an orphan's TTL never starts before its own time minus the lateness (in
    # a replay that is always the watermark that counts it; live, the promises topic may
    # lag the deliveries topic by hours while a backlog is read).
    lateness: float = 0.0
    # v2: business calendars by name (SPEC 2.1) and the warning fractions (SPEC 4.1)
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    warn_at: Fractions = warn_fractions(DEFAULT_WARN_AT)


class _RoundTheClock:
    """The clock of a promise that names no calendar: every second counts."""

    def open_seconds(self, start: float, end: float) -> float:
        return max(0.0, end - start)

    def advance(self, start: float, seconds: float) -> float:
        return start + seconds


ROUND_THE_CLOCK: Calendar = _RoundTheClock()


class Listener(Protocol):
    """Where the engine's results go (replay files, Kafka topics, or a list in a test)."""

    def violation(self, record: ViolationRecord) -> None: ...

    def warning(self, record: WarningRecord) -> None: ...

    def outcome(self, state: PromiseState) -> None: ...

    def reject(self, reject: Reject) -> None: ...

    def evicted(self, state: PromiseState) -> None: ...


@dataclass
class Stats:
    """Counters a run reports (and, later, the worker's metrics)."""

    promises: int = 0
    observations: int = 0
    declarations: int = 0  # capability.declared events applied
    duplicates: int = 0
    late: int = 0
    emissions: int = 0
    retractions: int = 0
    active: int = 0  # violations whose last emission is active
    evicted: int = 0
    rejects: Counter = field(default_factory=Counter)
    violations: Counter = field(default_factory=Counter)  # (reason, state) -> emissions
    warnings: Counter = field(default_factory=Counter)  # (label, state) -> emissions
    at_risk: int = 0  # warnings whose last emission is active


_encode = msgspec.json.Encoder().encode


def _digest(event: Event) -> bytes:
    """Content fingerprint: equal for equal decoded content (key order and spacing aside)."""
    return hashlib.blake2b(_encode(event), digest_size=12).digest()


def violation_id(promise_id: str, discriminator: str) -> str:
    """SPEC section 4: the same violation always gets the same id."""
    return hashlib.sha256(f"{promise_id}\n{discriminator}".encode()).hexdigest()[:32]


class Engine:
    """Per-promise state, the watermark and the timers that make absence rules fire."""

    def __init__(self, config: EngineConfig, listener: Listener, clock: Callable[[], float]):
        self.config = config
        self.listener = listener
        self.clock = clock
        self.watermark = -INF
        self.stats = Stats()
        self.promises: dict[str, PromiseState] = {}
        # observation id -> digest of its content: enough to tell exact from conflicting
        # duplicates without keeping every observation alive
        self._observations: dict[str, bytes] = {}
        self._timers = TimerQueue()  # promise ids by T: absence rules fire then
        self._warn_timers = TimerQueue()  # promise ids by when a warning next changes
        # declared capabilities (replay: from the input files) and who relies on which
        self.capabilities = Capabilities()
        self._declarations: dict[str, bytes] = {}  # declaration id -> content digest
        self._relying: dict[str, set[str]] = {}  # capability id -> promise ids
        self._evictions = TimerQueue()  # closed promise ids by when they settled
        # evicted promise id -> the watermark at which it is forgotten (one retention later)
        self._tombstones: dict[str, float] = {}
        self._tombstone_queue: deque[tuple[float, str]] = deque()  # (when forgotten, id)
        self._wake_at = -INF  # the watermark at which something next falls due
        self._next_sweep = -INF  # the watermark at which retention is next applied
        # promise id -> {observation id: Orphan} while its promise is awaited
        self._orphans: dict[str, dict[str, Orphan]] = {}
        self._orphan_ids: dict[str, str] = {}  # observation id -> promise id, while waiting
        self._orphan_queue: list[tuple[float, str]] = []  # heap of (TTL start, obs id)
        self._unstamped: list[str] = []  # orphans held since the last advance()
        # Live drivers set this: then the watermark never expires an orphan by itself, only
        # expire_orphans() does, called when the promises topic has been read to its end
        self.hold_orphans = False
        # Live workers persist per-promise entries: when this is a set, every promise id
        # whose entry() changed is added to it (the replay leaves it None and pays nothing).
        self.dirty: set[str] | None = None

    def _changed(self, pid: str) -> None:
        """What the worker must write again (its changelog): the entry of ``pid`` moved."""
        if self.dirty is not None:
            self.dirty.add(pid)

    # --- input -------------------------------------------------------------------

    def process(
        self, event: Event, raw: bytes, origin: object = None, now: float | None = None
    ) -> float | None:
        """Apply one parsed event; its time when accepted (it then counts for the watermark).

        ``raw`` and ``origin`` only travel with a reject; ``now`` (live mode) enables the
        ``from_future`` check. Returns None when the event was rejected.
        """
        t = event.time.timestamp()
        if now is not None and t > now + self.config.max_future:
            self._reject(
                Reason.FROM_FUTURE,
                f"time is {t - now:.0f} s ahead of the clock; the limit "
                f"is {self.config.max_future:g} s: check the emitter's clock",
                raw,
                origin,
                event.id,
            )
            return None
        if type(event) is PromiseIssued:
            return self._promise(event, raw, origin, t)
        if type(event) is CapabilityDeclared:
            return self._capability(event, raw, origin, t)
        return self._observation(event, raw, origin, t)  # type: ignore[arg-type]

    def _capability(
        self, event: CapabilityDeclared, raw: bytes, origin: object, t: float
    ) -> float | None:
        """A declaration (never too late: the answer is the same whenever it comes); every
        promise relying on the capability is looked at again."""
        digest = _digest(event)
        prior = self._declarations.get(event.id)
        if prior is not None:
            return self._duplicate(prior == digest, raw, origin, event.id, t)
        self._declarations[event.id] = digest
        self.stats.declarations += 1
        capability = event.data.capability
        self.capabilities.declare_event(event)
        relying = set(self._relying.get(capability, ()))
        for dependency in self.capabilities.dependents.get(capability, ()):
            relying |= self._relying.get(dependency, set())  # a component's status
        for pid in sorted(relying):
            state = self.promises.get(pid)
            if state is not None:
                self._evaluate(state)
        # accepted, but not an input of any partition: live, declarations move no watermark,
        # and neither do they here (a status declared ahead of a maintenance would fire
        # every absence due before it)
        return None

    def _promise(self, event: PromiseIssued, raw: bytes, origin: object, t: float) -> float | None:
        pid = event.id
        state = self.promises.get(pid)
        if state is not None:
            return self._duplicate(_digest(state.promise) == _digest(event), raw, origin, pid, t)
        state = new_state(event, t)
        if clocked(state):
            name = event.data.terms.calendar  # type: ignore[union-attr]
            if name and name not in self.config.calendars:  # UNSET is falsy
                self._unknown_calendar(name, raw, origin, pid)
                return None
            state.close_time = self._due(state)
        # SPEC 1.3 (v2): too late once settled for longer than the retention; a promise
        # made long ago whose close time is still ahead is accepted. Its T counts the pauses
        # already waiting for it (applied to a copy: if it is refused, they stay orphans)
        close = state.close_time
        waiting_marks = self._orphans.get(pid)
        if waiting_marks and clocked(state):
            trial = new_state(event, t)
            for orphan in waiting_marks.values():
                apply(trial, orphan.event, orphan.time)
            close = self._due(trial)
        settles = t if close is None else close
        if settles + self.config.retention < self.watermark or pid in self._tombstones:
            self._too_late(t, raw, origin, pid, pid)
            return None
        self.stats.promises += 1
        if t < self.watermark:
            self.stats.late += 1
        self.promises[pid] = state
        for capability in event.data.relies_on or ():
            self._relying.setdefault(capability, set()).add(pid)
        self._changed(pid)
        waiting = self._orphans.pop(pid, None)
        if waiting:
            for orphan in waiting.values():
                del self._orphan_ids[orphan.event.id]
                apply(state, orphan.event, orphan.time)
            if state.marks is not None:
                state.close_time = self._due(state)
        close = state.close_time
        if close is not None and close > self.watermark:
            self._timers.add(close, pid)
            if close < self._wake_at:
                self._wake_at = close
            if waiting or event.data.relies_on:  # declared capabilities can decide it now
                self._evaluate(state)
            elif state.kind == DELIVER_BY:
                self._warn(state, "open", None, [])  # open: only its warning points to schedule
        elif waiting or close is not None:
            self._evaluate(state)
        # else: a fresh promise with no T and no observations is open and has nothing to say
        return t

    def _observation(
        self, event: DeliveryObserved, raw: bytes, origin: object, t: float
    ) -> float | None:
        oid = event.id
        digest = _digest(event)
        prior = self._observations.get(oid)
        if prior is not None:
            return self._duplicate(prior == digest, raw, origin, oid, t)
        pid = event.data.promise_id
        state = self.promises.get(pid)
        if (
            state is None and t < self.watermark - self.config.retention
        ) or pid in self._tombstones:
            self._too_late(t, raw, origin, oid, pid)
            return None
        self.stats.observations += 1
        if t < self.watermark:
            self.stats.late += 1
        self._observations[oid] = digest
        self._changed(pid)
        if state is None:
            self._hold(event, raw, origin, t)
        elif apply(state, event, t):
            if state.marks is not None:
                self._move_due(state)
            self._evaluate(state)
        return t

    def _due(self, state: PromiseState) -> float | None:
        """D of a within_seconds promise from its clock (None while infinite: paused)."""
        terms = state.promise.data.terms
        assert type(terms) is DeliverByTerms and type(terms.within_seconds) is float
        due = run_until(
            self._calendar(state),
            state.issued,
            terms.within_seconds,
            paused_spans(state.marks, state.cancelled_at),
        )
        return None if due == INF else due

    def _calendar(self, state: PromiseState) -> Calendar:
        terms = state.promise.data.terms
        name = terms.calendar if type(terms) is DeliverByTerms else UNSET
        return self.config.calendars[name] if name else ROUND_THE_CLOCK

    def _move_due(self, state: PromiseState) -> None:
        """A pause, resume or cancellation moved D (SPEC 3): absence rules fire at the new D,
        and the promise settles (for retention) no earlier than it."""
        due = self._due(state)
        if due == state.close_time:
            return
        state.close_time = due
        self._changed(state.promise.id)
        if due is not None and due > self.watermark:
            self._timers.add(due, state.promise.id)
            if due < self._wake_at:
                self._wake_at = due
        if state.status != "open":
            self._evictions.add(-(-_settled_at(state) // SWEEP) * SWEEP, state.promise.id)

    def _duplicate(
        self, same: bool, raw: bytes, origin: object, event_id: str, t: float
    ) -> float | None:
        if same:
            self.stats.duplicates += 1
            return t
        self._reject(
            Reason.CONFLICTING_DUPLICATE,
            f"id {event_id!r} was already used for different content; the first one stays: "
            "give every event its own id",
            raw,
            origin,
            event_id,
        )
        return None

    def _unknown_calendar(self, name: str, raw: bytes, origin: object, pid: str) -> None:
        known = ", ".join(sorted(self.config.calendars)) or "none: no calendars file was given"
        self._reject(
            Reason.UNKNOWN_CALENDAR,
            f"data.terms.calendar {name!r} is not a calendar of the running configuration "
            f"(known: {known}): define it in the calendars file or name a known one",
            raw,
            origin,
            pid,
        )

    def _too_late(self, t: float, raw: bytes, origin: object, event_id: str, pid: str) -> None:
        if pid in self._tombstones:
            message = (
                f"promise {pid!r} closed more than the retention "
                f"({self.config.retention:g} s) ago and its state is gone"
            )
        else:
            message = (
                f"time is {self.watermark - self.config.retention - t:.0f} s older than "
                f"the watermark minus the retention ({self.config.retention:g} s): "
                "its promise's state is gone"
            )
        self._reject(Reason.TOO_LATE, message, raw, origin, event_id)

    def _reject(
        self, reason: Reason, message: str, raw: bytes, origin: object, event_id: str | None
    ) -> None:
        self.refuse(Reject(reason, message, raw, event_id, origin))

    def refuse(self, reject: Reject) -> None:
        """Count and forward a reject (the engine's own, or the parser's)."""
        self.stats.rejects[reject.reason] += 1
        self.listener.reject(reject)

    # --- orphans -------------------------------------------------------------------

    def _hold(self, event: DeliveryObserved, raw: bytes, origin: object, t: float) -> None:
        pid = event.data.promise_id
        self._orphans.setdefault(pid, {})[event.id] = Orphan(event, raw, origin, t)
        self._orphan_ids[event.id] = pid
        self._unstamped.append(event.id)  # stamped by the advance() that counts its time
        while len(self._orphan_ids) > self.config.max_orphans:
            self._drop_oldest_orphan()

    def _drop_oldest_orphan(self) -> None:
        if self._orphan_queue:
            oid = heapq.heappop(self._orphan_queue)[1]
        else:
            oid = self._unstamped.pop(0)
        self._drop_orphan(oid, f"the orphan buffer is full ({self.config.max_orphans})")

    def _drop_orphan(self, oid: str, why: str) -> None:
        pid = self._orphan_ids.pop(oid, None)
        if pid is None:
            return  # its promise arrived meanwhile
        waiting = self._orphans[pid]
        orphan = waiting.pop(oid)
        raw, origin = orphan.raw, orphan.origin
        if not waiting:
            del self._orphans[pid]
        del self._observations[oid]
        self._changed(pid)
        self._reject(
            Reason.UNKNOWN_PROMISE,
            f"data.promise_id {pid!r} names no promise: {why}; "
            "issue the promise before observing it",
            raw,
            origin,
            oid,
        )

    @property
    def orphans_held(self) -> int:
        """Observations waiting for their promise: at most ``max_orphans`` (a metric)."""
        return len(self._orphan_ids)

    # --- time ----------------------------------------------------------------------

    def advance(self, watermark: float) -> None:
        """Move the watermark (never backwards) and fire what it makes due.

        Drivers call it after every accepted event, with the watermark that counts that
        event: an orphan's TTL runs from there.
        """
        if self._unstamped:
            self._stamp_orphans(max(self.watermark, watermark))
        if watermark <= self.watermark:
            return
        self.watermark = watermark
        if watermark >= self._wake_at:
            self._wake(watermark)

    def _wake(self, watermark: float) -> None:
        """Absence rules, orphan expiry and (every SWEEP of event time) retention."""
        if self._timers.next_due() <= watermark:
            promises = self.promises
            for pid in self._timers.pop_due(watermark):
                state = promises.get(pid)
                # only an open promise waits on T; a decided one changes with events alone
                if state is not None and state.status == "open":
                    self._evaluate(state)
        if self._warn_timers.next_due() <= watermark:
            promises = self.promises
            for pid in self._warn_timers.pop_due(watermark):
                state = promises.get(pid)
                if state is not None and state.warn_wake is not None:
                    if state.warn_wake <= watermark:
                        self._evaluate(state)
        queue, ttl = self._orphan_queue, self.config.orphan_ttl
        if not self.hold_orphans:
            self._expire_orphans(watermark)
        if watermark >= self._next_sweep:
            self._evict(watermark, watermark - self.config.retention)
            self._next_sweep = watermark + SWEEP
        orphan_due = queue[0][0] + ttl if queue and not self.hold_orphans else INF
        self._wake_at = min(
            self._timers.next_due(), self._warn_timers.next_due(), orphan_due, self._next_sweep
        )

    def expire_orphans(self) -> None:
        """Live, with ``hold_orphans``: reject the orphans whose TTL has run out at the
        current watermark. The driver calls it only when the promises topic has been read to
        its end: the watermark of a topic read out of event-time order (a promise a day newer
        than the rest read first) can pass an orphan's TTL while its promise is still unread,
        and SPEC 1.3 says a lagging promises topic never expires an orphan."""
        self._expire_orphans(self.watermark)

    def _expire_orphans(self, watermark: float) -> None:
        queue, ttl = self._orphan_queue, self.config.orphan_ttl
        while queue and queue[0][0] + ttl <= watermark:
            self._drop_orphan(
                heapq.heappop(queue)[1], f"it was not issued within {ttl:g} s of watermark"
            )

    def _stamp_orphans(self, watermark: float) -> None:
        queue, lateness = self._orphan_queue, self.config.lateness
        for oid in self._unstamped:
            pid = self._orphan_ids.get(oid)
            if pid is None:
                continue  # its promise arrived meanwhile
            orphan = self._orphans[pid][oid]
            orphan.stamp = max(watermark, orphan.time - lateness)
            heapq.heappush(queue, (orphan.stamp, oid))
            self._changed(pid)
        self._unstamped.clear()
        if queue and not self.hold_orphans:
            self._wake_at = min(self._wake_at, queue[0][0] + self.config.orphan_ttl)

    def _evict(self, watermark: float, horizon: float) -> None:
        for pid in self._evictions.pop_before(horizon):
            state = self.promises.get(pid)
            if state is None or state.status == "open" or _settled_at(state) >= horizon:
                continue  # gone already, or it settled later and has a later entry
            del self.promises[pid]
            for capability in state.promise.data.relies_on or ():
                relying = self._relying.get(capability)
                if relying is not None:
                    relying.discard(pid)
            for oid in state.obs_ids or ():
                self._observations.pop(oid, None)
            forget = watermark + self.config.retention
            self._tombstones[pid] = forget
            self._tombstone_queue.append((forget, pid))
            self.stats.evicted += 1
            self._changed(pid)
            self.listener.evicted(state)
        # a FIFO, not next(iter(dict)): popping a dict's oldest keys one by one is quadratic
        queue = self._tombstone_queue
        while queue and queue[0][0] <= watermark:
            pid = queue.popleft()[1]
            if self._tombstones.pop(pid, None) is not None:
                self._changed(pid)

    def finish(self) -> None:
        """End of a finite input: every observation still waiting is rejected."""
        for oid in list(self._orphan_ids):
            self._drop_orphan(oid, "the input ended before the promise arrived")
        self._orphan_queue.clear()
        self._unstamped.clear()

    # --- verdicts and emissions ----------------------------------------------------

    def _evaluate(self, state: PromiseState) -> None:
        if state.kind == CHANNELS and state.promise.data.relies_on:
            outages = self.capabilities.outages(state)
            status, closed_at, findings = channels_verdict(state, self.watermark, outages)
        else:
            status, closed_at, findings = verdict(state, self.watermark)
        # needed by both the violations (predicted_by) and the warnings: computed once
        relies_on = state.promise.data.relies_on
        contradictions = self.capabilities.contradictions(state) if relies_on else []
        if findings and state.emitted is None:
            state.emitted = {}
        emitted = state.emitted
        if emitted is not None:
            for disc, finding in findings.items():
                prior = emitted.get(disc)
                predicted = _predicted_by(state, contradictions, finding.occurred_at)
                if (
                    prior is None
                    or prior[0] != finding
                    or prior[1].state != "active"
                    or prior[1].predicted_by != predicted
                ):
                    record = self._record(state, disc, finding, predicted)
                    emitted[disc] = (finding, record)
                    self.stats.emissions += 1
                    self.stats.violations[(finding.reason, "active")] += 1
                    self._changed(state.promise.id)
                    if prior is None or prior[1].state != "active":
                        self.stats.active += 1
                    self.listener.violation(record)
            for disc, (finding, record) in list(emitted.items()):
                if disc not in findings and record.state == "active":
                    retraction = msgspec.structs.replace(
                        record, state="retracted", detected_at=self.clock()
                    )
                    emitted[disc] = (finding, retraction)
                    self.stats.retractions += 1
                    self.stats.violations[(record.reason, "retracted")] += 1
                    self._changed(state.promise.id)
                    self.stats.active -= 1
                    self.listener.violation(retraction)
        decided = status != state.status or closed_at != state.closed_at
        if decided:
            self._changed(state.promise.id)
            reopened = status == "open" and state.status != "open"
            state.status, state.closed_at = status, closed_at
            if status != "open":
                # rounded up to the sweep grid: never early, and far fewer heap entries
                self._evictions.add(-(-_settled_at(state) // SWEEP) * SWEEP, state.promise.id)
            elif reopened and state.close_time is not None and state.close_time > self.watermark:
                # a late event took the decision back (a restore only arms open promises)
                self._timers.add(state.close_time, state.promise.id)
                self._wake_at = min(self._wake_at, state.close_time)
        # the outcome also says what was allowed and measured: a late delivery makes a
        # not_delivered delivered_late without changing status or closed_at, and live must
        # then say the outcome again as the replay's final one does
        measures = outcome_measures(state)
        if decided or measures != state.measures:
            state.measures = measures
            self._changed(state.promise.id)
            self.listener.outcome(state)
        if state.kind in _WARNED_KINDS or relies_on:
            self._warn(state, status, closed_at, contradictions)

    def _warn(
        self,
        state: PromiseState,
        status: str,
        closed_at: float | None,
        contradictions: list[Contradiction],
    ) -> None:
        """Emit what changed in the promise's warnings (SPEC 4.1) and set their next wake;
        ``contradictions`` are the promise's (empty when it relies on nothing)."""
        points = warn_points(state, self.config.warn_at, self._calendar(state))
        found, wake = alerts(state, status, closed_at, self.watermark, points)
        if contradictions:
            found.update(contradiction_alerts(state, status, closed_at, contradictions))
        pid = state.promise.id
        if wake != (state.warn_wake if state.warn_wake is not None else INF):
            state.warn_wake = None if wake == INF else wake
            self._changed(pid)
            if wake != INF:
                self._warn_timers.add(wake, pid)
                if wake < self._wake_at:
                    self._wake_at = wake
        if not found and state.warned is None:
            return
        if state.warned is None:
            state.warned = {}
        warned = state.warned
        for label, alert in found.items():
            prior = warned.get(label)
            if prior is None or prior[0] != alert or prior[1].state == "retracted":
                self._emit_warning(state, label, alert, self._warning(state, label, alert))
        for label, (alert, record) in list(warned.items()):
            if label not in found and record.state != "retracted":
                retraction = msgspec.structs.replace(
                    record, state="retracted", outcome=None, detected_at=self.clock()
                )
                self._emit_warning(state, label, alert, retraction)

    def _emit_warning(
        self, state: PromiseState, label: str, alert: Alert, record: WarningRecord
    ) -> None:
        warned = state.warned
        assert warned is not None
        prior = warned.get(label)
        was_active = prior is not None and prior[1].state == "active"
        warned[label] = (alert, record)
        self.stats.warnings[(label, record.state)] += 1
        self.stats.at_risk += (record.state == "active") - was_active
        self._changed(state.promise.id)
        self.listener.warning(record)

    def _warning(self, state: PromiseState, label: str, alert: Alert) -> WarningRecord:
        promise = state.promise
        data = promise.data
        return WarningRecord(
            warning_id=warning_id(promise.id, label),
            promise_id=promise.id,
            service=promise.source,
            channel=data.channel,
            subject=promise.subject,
            kind=kind_of(promise),
            label=label,
            warn_at=alert.warn_at,
            due_at=alert.due_at,
            time_left=alert.time_left,
            promise_text=data.text,
            labels=data.labels or {},
            state=alert.state,  # type: ignore[arg-type]
            outcome=alert.outcome,  # type: ignore[arg-type]
            detected_at=self.clock(),
            detail=alert.detail,
        )

    def _record(
        self, state: PromiseState, disc: str, finding: Finding, predicted: str | None
    ) -> ViolationRecord:
        promise = state.promise
        data = promise.data
        seen = finding.seen
        expected, observed = describe(state, finding)
        return ViolationRecord(
            violation_id=violation_id(promise.id, disc),
            promise_id=promise.id,
            service=promise.source,
            channel=data.channel,
            subject=promise.subject,
            kind=kind_of(promise),
            reason=finding.reason,
            expected=expected,
            observed=observed,
            excess=finding.excess,
            unit=finding.unit,  # type: ignore[arg-type]
            occurred_at=finding.occurred_at,
            detected_at=self.clock(),
            observation_id=seen.id if seen else None,
            observed_by=seen.source if seen else None,
            promise_text=data.text,
            labels=data.labels or {},
            state="active",
            predicted_by=predicted,
        )

    # --- persistence (live workers) -------------------------------------------------

    def entry(self, pid: str) -> Entry | None:
        """All the engine holds under one promise id; None when it holds nothing."""
        state = self.promises.get(pid)
        waiting = self._orphans.get(pid)
        forget = self._tombstones.get(pid)
        if state is None and not waiting and forget is None:
            return None
        seen = self._observations
        entry = Entry(promise_id=pid, state=state, forget_at=forget)
        ids = list(state.obs_ids or ()) if state is not None else []
        if waiting:
            ids.extend(waiting)
            entry.orphans = list(waiting.values())
        if ids:
            entry.seen = {oid: seen[oid] for oid in ids}
        return entry

    def restore(self, entries: Iterable[Entry], watermark: float) -> None:
        """Rebuild a fresh engine from persisted entries; timers and queues are derived."""
        assert not self.promises and not self._orphans, "restore() needs a fresh engine"
        stamped: list[tuple[float, str]] = []
        tombstones: list[tuple[float, str]] = []
        for entry in entries:
            pid = entry.promise_id
            self._observations.update(entry.seen)
            if entry.forget_at is not None:
                self._tombstones[pid] = entry.forget_at
                tombstones.append((entry.forget_at, pid))
            for orphan in entry.orphans:
                oid = orphan.event.id
                self._orphans.setdefault(pid, {})[oid] = orphan
                self._orphan_ids[oid] = pid
                if orphan.stamp is None:
                    self._unstamped.append(oid)
                else:
                    stamped.append((orphan.stamp, oid))
            state = entry.state
            if state is None:
                continue
            self.promises[pid] = state
            for capability in state.promise.data.relies_on or ():
                self._relying.setdefault(capability, set()).add(pid)
            if state.status == "open":
                if state.close_time is not None:
                    self._timers.add(state.close_time, pid)
            else:
                self._evictions.add(-(-_settled_at(state) // SWEEP) * SWEEP, pid)
            if state.warn_wake is not None:
                self._warn_timers.add(state.warn_wake, pid)
            for _, record in (state.emitted or {}).values():
                self.stats.active += record.state == "active"
            for _, warning in (state.warned or {}).values():
                self.stats.at_risk += warning.state == "active"
        heapq.heapify(stamped)
        self._orphan_queue = stamped
        self._tombstone_queue.extend(sorted(tombstones))
        self._wake_at = self._next_sweep = -INF
        self.advance(watermark)  # whatever fell due before the crash fires now
        # the declarations were given before the restore (a live worker re-reads them at
        # every start): what relies on them is judged once against all of them
        for pid in sorted({p for relying in self._relying.values() for p in relying}):
            state = self.promises.get(pid)
            if state is not None:
                self._evaluate(state)

    def announce(self) -> None:
        """Hand every held promise's last emissions and outcome to the listener again.

        After a restore, whatever was emitted just before a crash may never have reached
        the output; emissions carry deterministic ids, so saying them twice is harmless.
        """
        for state in self.promises.values():
            for _, record in (state.emitted or {}).values():
                self.listener.violation(record)
            for _, warning in (state.warned or {}).values():
                self.listener.warning(warning)
            self.listener.outcome(state)

    def states(self) -> Iterator[PromiseState]:
        """Every promise still held (evicted ones were handed to the listener already)."""
        return iter(self.promises.values())


_WARNED_KINDS = frozenset((DELIVER_BY, MAX_STEPS))


def _predicted_by(
    state: PromiseState, contradictions: list[Contradiction], occurred_at: float
) -> str | None:
    """The contradiction warning in force before the breach, if one said it would
    happen (SPEC-to-be: broken promises we could have caught before issuing them)."""
    for c in contradictions:
        if c.since <= occurred_at and (c.resolved_at is None or c.resolved_at > occurred_at):
            return warning_id(state.promise.id, CONTRADICTION + c.capability)
    return None


def _settled_at(state: PromiseState) -> float:
    """After this (plus retention) no in-window event can change the promise: forget it then."""
    closed = state.closed_at if state.closed_at is not None else state.issued
    return max(closed, state.close_time) if state.close_time is not None else closed

"""Builders for events and an in-memory listener: the engine's twin of the file/Kafka outputs."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from promise_tracker.schemas import Reject
from promise_tracker.schemas.models import ViolationRecord, WarningRecord
from promise_tracker.streams.engine import Engine, EngineConfig
from promise_tracker.streams.replay import drive
from promise_tracker.streams.state import PromiseState

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parents[1]
# chdb allows one data directory per process: the unit tests all use this one, each with a
# database of its own, and close their connections (the integration tests open others)
CHDB = ROOT / ".data" / "unit-chdb"
# the published conformance cases, copied into the repository (SHA256SUMS lists the copies)
CASES = ROOT / "tests" / "conformance" / "cases"
# where they are published: ../shared/conformance beside the workspace, when it is there
PUBLISHED = Path(
    os.environ.get("PROMISE_TRACKER_CONFORMANCE", ROOT.parent / "shared" / "conformance")
)


def ts(hours: float = 0.0, seconds: float = 0.0) -> str:
    """An RFC 3339 time, hours and seconds after 2026-01-01T00:00:00Z."""
    stamp = BASE + dt.timedelta(hours=hours, seconds=seconds)
    return stamp.isoformat().replace("+00:00", "Z")


def unix(hours: float = 0.0, seconds: float = 0.0) -> float:
    return (BASE + dt.timedelta(hours=hours, seconds=seconds)).timestamp()


def promise(pid: str, kind: str, terms: dict, at: str = ts(), **data: Any) -> dict:
    body = {"kind": kind, "channel": data.pop("channel", "web"), "terms": terms, **data}
    return {
        "specversion": "1.0",
        "type": "promise.issued",
        "source": "svc/test",
        "id": pid,
        "time": at,
        "data": body,
    }


def observe(oid: str, pid: str, kind: str, at: str, **value: Any) -> dict:
    return {
        "specversion": "1.0",
        "type": "delivery.observed",
        "source": "svc/obs",
        "id": oid,
        "time": at,
        "data": {"promise_id": pid, "kind": kind, "value": value},
    }


def line(event: dict) -> bytes:
    return orjson.dumps(event)


@dataclass
class Collected:
    """Listener that keeps everything, in order."""

    emissions: list[ViolationRecord] = field(default_factory=list)
    warnings: list[WarningRecord] = field(default_factory=list)
    outcome_changes: list[tuple[str, str]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    evicted_ids: list[str] = field(default_factory=list)

    def violation(self, record: ViolationRecord) -> None:
        self.emissions.append(record)

    def warning(self, record: WarningRecord) -> None:
        self.warnings.append(record)

    def outcome(self, state: PromiseState) -> None:
        self.outcome_changes.append((state.promise.id, state.status))

    def reject(self, reject: Reject) -> None:
        self.rejects.append(reject)

    def evicted(self, state: PromiseState) -> None:
        self.evicted_ids.append(state.promise.id)

    def active(self) -> dict[str, ViolationRecord]:
        last: dict[str, ViolationRecord] = {}
        for record in self.emissions:
            last[record.violation_id] = record
        return {vid: r for vid, r in last.items() if r.state == "active"}

    def reasons(self) -> dict[str, list[str]]:
        """promise id -> sorted reasons of its active violations."""
        out: dict[str, list[str]] = {}
        for record in self.active().values():
            out.setdefault(record.promise_id, []).append(record.reason)
        return {pid: sorted(reasons) for pid, reasons in out.items()}


@dataclass
class Run:
    engine: Engine
    out: Collected

    def status(self, pid: str) -> str:
        return self.engine.promises[pid].status

    def closed_at(self, pid: str) -> float | None:
        return self.engine.promises[pid].closed_at


def run(
    events: list[dict | bytes],
    lateness: float = 0.0,
    watermark: float | None = None,
    config: EngineConfig | None = None,
    now: float | None = None,
) -> Run:
    """Feed events in order as replay does; ``watermark`` optionally moves it further at the end."""
    out = Collected()
    engine = Engine(config or EngineConfig(), out, clock=lambda: 0.0)
    raws = (item if isinstance(item, bytes) else line(item) for item in events)
    drive(engine, (("test", number, raw) for number, raw in enumerate(raws, 1)), lateness, now)
    if watermark is not None:
        engine.advance(watermark)
    return Run(engine, out)

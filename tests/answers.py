"""The answer a run gives, to compare: the replay's, read from its files, and the live
worker's, read from its output topics."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from promise_tracker.runtime.settings import Settings
from promise_tracker.streams.records import read_jsonl
from tests.live import TopicReader, last_by_key
from tests.streams import ORPHAN_TTL, RETENTION
from tests.support import ROOT


@dataclass
class Answer:
    violations: dict[str, dict]  # violation id -> last emission (detected_at dropped)
    outcomes: dict[str, dict]  # promise id -> final outcome
    rejects: Counter  # reason -> count, unknown_promise aside
    # live holds an orphan until the watermark is a day past it; replay rejects every one
    # left at the end: live's must be some of replay's
    orphans: set[str]


def active(last: dict[str, dict]) -> dict[str, dict]:
    """SPEC section 4: the last emission per id is the truth; compare the active ones (a
    violation the replay emitted and retracted may never have been emitted live at all)."""
    return {vid: record for vid, record in last.items() if record["state"] == "active"}


def live_answer(violations: list, outcomes: list, dlq_headers: list[dict]) -> Answer:
    """The answer a live run gives: the messages of its output topics, and the headers of
    its dead letters (each reject once)."""
    orphans = {h["event_id"].decode() for h in dlq_headers if h["reason"] == b"unknown_promise"}
    reasons = Counter(
        h["reason"].decode() for h in dlq_headers if h["reason"] != b"unknown_promise"
    )
    return Answer(active(last_by_key(violations)), last_by_key(outcomes), reasons, orphans)


def replay_answer(stream: Path, tmp_path: Path) -> Answer:
    files = {name: tmp_path / f"replay-{name}.jsonl" for name in ("v", "o", "r")}
    subprocess.run(
        [sys.executable, "-m", "promise_tracker.cli", "replay", str(stream), "--quiet"]
        + ["--violations", str(files["v"]), "--outcomes", str(files["o"])]
        + ["--rejects", str(files["r"]), "--orphan-ttl", str(ORPHAN_TTL)]
        + ["--retention", str(RETENTION)],
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    violations = {}
    for record in read_jsonl(files["v"]):
        record.pop("detected_at")
        violations[record["violation_id"]] = record
    violations = active(violations)
    outcomes = {record["promise_id"]: record for record in read_jsonl(files["o"])}
    rejects = read_jsonl(files["r"])
    orphans = {r["event_id"] for r in rejects if r["reason"] == "unknown_promise"}
    reasons = Counter(r["reason"] for r in rejects if r["reason"] != "unknown_promise")
    return Answer(violations, outcomes, reasons, orphans)


class Outputs:
    def __init__(self, settings: Settings):
        self.violations = TopicReader(settings.kafka, settings.violations)
        self.outcomes = TopicReader(settings.kafka, settings.outcomes)
        self.dlq = TopicReader(settings.kafka, settings.dlq)

    def poll(self) -> None:
        for reader in (self.violations, self.outcomes, self.dlq):
            reader.poll(0.2)

    def answer(self) -> Answer:
        # at-least-once: a reject may be said again after a crash; its origin identifies it
        unique = {}
        for message in self.dlq.messages:
            h = dict(message.headers())
            unique[(h.get("topic"), h.get("partition"), h.get("offset"))] = h
        return live_answer(self.violations.messages, self.outcomes.messages, list(unique.values()))

    def reached(self, expected: Answer) -> bool:
        self.poll()
        got = self.answer()
        return got.orphans <= expected.orphans and replace(got, orphans=expected.orphans) == (
            expected
        )

    def close(self) -> None:
        for reader in (self.violations, self.outcomes, self.dlq):
            reader.close()

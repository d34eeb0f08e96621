"""SPEC v2 5: replay merges its inputs by event time, so files concatenated from several
services give the answer of their merged history; ``--in-file-order`` keeps arrival order."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.cli import cli
from tests.support import line, observe, promise, ts

WEEK = 7 * 24.0


def service(name: str, start_h: float, count: int) -> list[dict]:
    """A service's own file, in time order: promises due a day later, delivered in time."""
    events = []
    for i in range(count):
        at = start_h + i * 6
        pid = f"{name}-{i}"
        events.append(promise(pid, "deliver_by", {"due_at": ts(at + 24)}, at=ts(at)))
        events.append(observe(f"{pid}-d", pid, "delivered", ts(at + 12)))
    return events


def replay(path: Path, tmp: Path, *options: str) -> tuple[list[dict], list[dict]]:
    out = {name: tmp / f"{name}.jsonl" for name in ("violations", "outcomes", "rejects")}
    args = [arg for name, p in out.items() for arg in (f"--{name}", str(p))]
    done = cli("replay", str(path), *args, "--quiet", *options)
    assert done.returncode == 0, done.stderr

    def read(name: str) -> list[dict]:
        return [orjson.loads(x) for x in out[name].read_bytes().splitlines()]

    return read("outcomes"), read("rejects")


def test_two_services_concatenated_give_the_merged_history(tmp_path: Path):
    # the second file starts three weeks before the first one ends (retention: 7 days)
    first = service("a", 3 * WEEK, 40)
    second = service("b", 0.0, 40)
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(b"\n".join(line(e) for e in first + second) + b"\n")

    outcomes, rejects = replay(joined, tmp_path)
    assert rejects == []
    assert len(outcomes) == 80 and {o["status"] for o in outcomes} == {"kept"}

    # as live arrival would have it: the second service's promises settled more than the
    # retention before the watermark, so they and their deliveries are too late
    outcomes, rejects = replay(joined, tmp_path, "--in-file-order")
    assert {r["reason"] for r in rejects} == {"too_late"}
    rejected = {r["event_id"] for r in rejects}
    assert {f"b-{i}" for i in range(40)} <= rejected
    assert len(outcomes) == 40


def test_lines_in_any_order_give_the_answer_of_time_order(tmp_path: Path):
    events = service("a", 0.0, 30) + service("b", 2 * WEEK, 30)
    ordered, shuffled = tmp_path / "ordered.jsonl", tmp_path / "shuffled.jsonl"
    ordered.write_bytes(b"\n".join(line(e) for e in events) + b"\n")
    backwards = list(reversed(events))
    shuffled.write_bytes(b"\n".join(line(e) for e in backwards) + b"\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    want, _ = replay(ordered, tmp_path / "a")
    got, rejects = replay(shuffled, tmp_path / "b")
    assert rejects == []
    key = lambda o: o["promise_id"]  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)

"""The published conformance cases (../shared/conformance), compared as their README says.

Runs the real ``promise-tracker replay`` command, exactly as an independent checker would.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.compare import differences, read_jsonl
from tests.support import CASES, ROOT

NAMES = ["rules", "stream-local", "stream-shuffled"]


def replay(inputs: list[Path], out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    paths = {name: out / f"{name}.jsonl" for name in ("violations", "outcomes", "rejects")}
    command = [sys.executable, "-m", "promise_tracker.cli", "replay", *map(str, inputs)]
    for name, path in paths.items():
        command += [f"--{name}", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return tuple(read_jsonl(paths[name]) for name in ("violations", "outcomes", "rejects"))


@pytest.mark.parametrize("name", NAMES)
def test_published_case(name: str, tmp_path: Path):
    assert CASES.is_dir(), (
        f"conformance cases not found at {CASES}: set PROMISE_TRACKER_CONFORMANCE"
    )
    violations, outcomes, rejects = replay([CASES / f"{name}.jsonl"], tmp_path)
    problems = differences(
        violations,
        outcomes,
        read_jsonl(CASES / f"{name}.expected-violations.jsonl"),
        read_jsonl(CASES / f"{name}.expected-outcomes.jsonl"),
    )
    assert problems == [], "\n".join(problems[:20])
    assert rejects and all(r["reason"] and r["message"] and "line" in r for r in rejects)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stream_reshuffled_gives_the_same_answer(seed: int, tmp_path: Path):
    """Beyond the published shuffle: our own permutations of the same lines.

    Only the shuffled case spans less than the orphan TTL, so only its answer is free of
    order (stream-local's orphans may wait more than a day when fully shuffled).
    """
    lines = (CASES / "stream-shuffled.jsonl").read_bytes().splitlines()
    random.Random(seed).shuffle(lines)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_bytes(b"\n".join(lines) + b"\n")
    violations, outcomes, _ = replay([shuffled], tmp_path)
    problems = differences(
        violations,
        outcomes,
        read_jsonl(CASES / "stream-shuffled.expected-violations.jsonl"),
        read_jsonl(CASES / "stream-shuffled.expected-outcomes.jsonl"),
    )
    assert problems == [], "\n".join(problems[:20])


def test_unreadable_input_is_a_one_line_error(tmp_path: Path):
    command = [
        sys.executable,
        "-m",
        "promise_tracker.cli",
        "replay",
        str(tmp_path / "missing.jsonl"),
        "--violations",
        str(tmp_path / "v"),
        "--outcomes",
        str(tmp_path / "o"),
        "--rejects",
        str(tmp_path / "r"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "missing.jsonl" in done.stderr
    assert not (tmp_path / "v").exists()


OUTPUTS = ["--violations", "v", "--outcomes", "o", "--rejects", "r"]


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "in.jsonl"],
        ["replay", "in.jsonl", *OUTPUTS, "--lateness", "soon"],
        ["replay", "in.jsonl", *OUTPUTS, "--lateness", "-1"],
    ],
)
def test_unusable_arguments_are_a_one_line_error(args: list[str], tmp_path: Path):
    (tmp_path / "in.jsonl").write_text("")
    command = [sys.executable, "-m", "promise_tracker.cli", *args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def test_outputs_to_a_pipe_are_written_in_place(tmp_path: Path):
    """Review finding: renaming PATH.tmp over a special file (as root: /dev/null) replaced it."""
    import threading

    fifo = tmp_path / "violations.pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    command = [
        sys.executable,
        "-m",
        "promise_tracker.cli",
        "replay",
        str(CASES / "rules.jsonl"),
        "--violations",
        str(fifo),
        "--outcomes",
        str(tmp_path / "o"),
        "--rejects",
        str(tmp_path / "r"),
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert fifo.exists() and not fifo.is_file()  # still the pipe
    assert received and received[0].count(b"\n") >= 9

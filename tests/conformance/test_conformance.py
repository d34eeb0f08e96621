"""The published conformance cases, compared as their README says.

The cases are copied into tests/conformance/cases (SHA256SUMS lists the copies), so a clone
runs them; when the published folder is there (../shared/conformance, or
PROMISE_TRACKER_CONFORMANCE), a test fails as soon as it holds a case the copy does not.
Runs the real ``promise-tracker replay`` command, exactly as an independent checker would.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.compare import differences, read_jsonl, warning_differences
from tests.support import CASES, PUBLISHED, ROOT

NAMES = ["rules", "stream-local", "stream-shuffled"]


def replay(inputs: list[Path], out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    paths = {name: out / f"{name}.jsonl" for name in ("violations", "outcomes", "rejects")}
    command = [sys.executable, "-m", "promise_tracker.cli", "replay", *map(str, inputs)]
    for name, path in paths.items():
        command += [f"--{name}", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return tuple(read_jsonl(paths[name]) for name in ("violations", "outcomes", "rejects"))


V2 = CASES / "v2"


def replay_v2(
    inputs: list[Path], out: Path, *options: str
) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """The v2 README's command: calendars, warnings at 0.75."""
    names = ("violations", "outcomes", "rejects", "warnings")
    paths = {name: out / f"{name}.jsonl" for name in names}
    command = [sys.executable, "-m", "promise_tracker.cli", "replay", *map(str, inputs)]
    command += ["--calendars", str(V2 / "calendars.toml"), "--warn-at", "0.75", *options]
    # a later --warn-at in options wins (argparse keeps the last)
    for name, path in paths.items():
        command += [f"--{name}", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return tuple(read_jsonl(paths[name]) for name in names)  # type: ignore[return-value]


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under the folder, by relative path (SHA256SUMS itself aside)."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "SHA256SUMS"
    }


def test_the_copied_cases_are_intact():
    listed = {}
    for line in (CASES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    assert digests(CASES) == listed, "tests/conformance/cases differs from its SHA256SUMS"
    assert {f"{name}.jsonl" for name in NAMES} <= set(listed)


def test_the_copy_matches_the_published_cases():
    """A newer published case is noticed here (copy it: see tests/conformance/cases)."""
    if not PUBLISHED.is_dir():
        # a clone outside the workspace: the copy is all there is, and it is checked above
        assert not os.environ.get("PROMISE_TRACKER_CONFORMANCE"), (
            f"PROMISE_TRACKER_CONFORMANCE={PUBLISHED} is not a folder"
        )
        return
    published, copied = digests(PUBLISHED), digests(CASES)
    changed = sorted(name for name in published if copied.get(name) != published[name])
    assert changed == [], (
        f"published cases in {PUBLISHED} differ from the copy: {changed}; refresh with "
        f"cp -r {PUBLISHED}/. tests/conformance/cases/ and regenerate SHA256SUMS"
    )


@pytest.mark.parametrize("name", NAMES)
def test_published_case(name: str, tmp_path: Path):
    violations, outcomes, rejects = replay([CASES / f"{name}.jsonl"], tmp_path)
    problems = differences(
        violations,
        outcomes,
        read_jsonl(CASES / f"{name}.expected-violations.jsonl"),
        read_jsonl(CASES / f"{name}.expected-outcomes.jsonl"),
    )
    assert problems == [], "\n".join(problems[:20])
    assert rejects and all(r["reason"] and r["message"] and "line" in r for r in rejects)


@pytest.mark.parametrize("order", [[], ["--in-file-order"]], ids=["event-time", "file-order"])
def test_published_v2_case(order: list[str], tmp_path: Path):
    """Calendars, pauses, unknown_calendar and warnings (SPEC v2), in both replay orders."""
    violations, outcomes, rejects, warnings = replay_v2([V2 / "rules-v2.jsonl"], tmp_path, *order)
    problems = differences(
        violations,
        outcomes,
        read_jsonl(V2 / "rules-v2.expected-violations.jsonl"),
        read_jsonl(V2 / "rules-v2.expected-outcomes.jsonl"),
    )
    problems += warning_differences(warnings, read_jsonl(V2 / "rules-v2.expected-warnings.jsonl"))
    assert problems == [], "\n".join(problems[:20])
    assert sorted((r["event_id"], r["reason"]) for r in rejects) == [
        ("bad-calendar-with-due", "invalid_event"),
        ("unknown-calendar", "unknown_calendar"),
    ]


OWN = Path(__file__).parent / "own"


@pytest.mark.parametrize("order", [[], ["--in-file-order"]], ids=["event-time", "file-order"])
def test_own_v2_case(order: list[str], tmp_path: Path):
    """Our own hand-computed cases (tests/conformance/own/README.md): a late resume, a pause
    after a cancellation, a late pause that takes back a violation and two warnings."""
    violations, outcomes, rejects, warnings = replay_v2(
        [OWN / "own-v2.jsonl"], tmp_path, *order, "--warn-at", "0.5, 0.75"
    )
    problems = differences(
        violations,
        outcomes,
        read_jsonl(OWN / "own-v2.expected-violations.jsonl"),
        read_jsonl(OWN / "own-v2.expected-outcomes.jsonl"),
    )
    problems += warning_differences(warnings, read_jsonl(OWN / "own-v2.expected-warnings.jsonl"))
    assert problems == [], "\n".join(problems[:20])
    assert rejects == []
    if order:  # arrival order: what the late pause took back was said first, then retracted
        taken_back = [w for w in warnings if w["promise_id"] == "pause-takes-back"]
        assert [w["state"] for w in taken_back][-2:] == ["retracted", "retracted"]
        assert [v["state"] for v in violations if v["promise_id"] == "pause-takes-back"] == [
            "active",
            "retracted",
        ]


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
    # a daemon: if the replay fails before opening the pipe, the reader must not keep the
    # test process alive (it once hung the whole run)
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
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
    if reader.is_alive() and done.returncode != 0:
        with contextlib.suppress(OSError):  # unblock the reader, if it is at open()
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert fifo.exists() and not fifo.is_file()  # still the pipe
    assert received and received[0].count(b"\n") >= 9

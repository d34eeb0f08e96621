"""The command line as a user runs it: the real entry point, in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "promise_tracker.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


def replay_generated(root: Path, seed: int = 3) -> tuple[Path, list[dict], list[dict]]:
    """A generated stream (20k events) replayed into files and a chdb store under ``root``:
    (the chdb directory, the outcomes, the violation emissions)."""
    from promise_tracker.streams.records import read_jsonl
    from promise_tracker.synthetic import generate

    stream = root / "stream.jsonl"
    generate(stream, events=20_000, open_promises=2_000, seed=seed)
    files = [root / f"{n}.jsonl" for n in ("v", "o", "r")]
    done = cli(
        "replay", str(stream), "--violations", str(files[0]), "--outcomes", str(files[1]),
        "--rejects", str(files[2]), "--clickhouse", str(root / "chdb"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root / "chdb", read_jsonl(files[1]), read_jsonl(files[0])

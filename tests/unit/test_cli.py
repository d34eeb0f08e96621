"""Every documented command runs as documented (through the real entry point)."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.cli import cli
from tests.support import line, observe, promise, ts


def test_demo_shows_the_broken_promises_and_the_keep_rate():
    done = cli("demo", "--offline")
    assert done.returncode == 0, done.stderr
    assert "enforced_early" in done.stdout and "channel_unavailable" in done.stdout
    assert "the customer read:" in done.stdout
    assert "keep-rate across the stories: 56%" in done.stdout
    # the root cause of the letter's three broken channels, and the card caught at issue time
    assert done.stdout.count("(it depends on gov/eligibility-portal, which was down)") == 3
    assert (
        "could have been caught before it was issued: flagged when it was made "
        "(2013-10-07T14:00:00Z): card says open until 2013-11-01 23:59 -0400;" in done.stdout
    )


def test_schemas_check_passes_on_the_committed_files_and_write_is_a_real_flag():
    assert cli("schemas", "--check").returncode == 0
    assert cli("schemas").returncode == 2  # one of --write / --check is required
    assert "--write" in cli("schemas", "--help").stdout


def test_replay_knobs_and_quiet(tmp_path: Path):
    source = tmp_path / "in.jsonl"
    events = [
        observe("d", "late-promise", "delivered", ts(1)),
        observe("x", "other", "page_reached", ts(3), page="a"),
        promise("late-promise", "deliver_by", {"due_at": ts(48)}),
    ]
    source.write_bytes(b"\n".join(line(e) for e in events) + b"\n")
    out = [str(tmp_path / n) for n in ("v", "o", "r")]
    outputs = ["--violations", out[0], "--outcomes", out[1], "--rejects", out[2]]
    # in file order, as live arrival: the delivery waits an hour of watermark for its promise
    done = cli(
        "replay", str(source), *outputs, "--orphan-ttl", "3600", "--quiet", "--in-file-order"
    )
    assert done.returncode == 0 and done.stderr == ""
    rejects = [orjson.loads(x) for x in Path(out[2]).read_bytes().splitlines()]
    assert [r["reason"] for r in rejects] == ["unknown_promise", "unknown_promise"]
    assert [(r["line_no"], r["event_id"]) for r in rejects] == [(1, "d"), (2, "x")]
    done = cli("replay", str(source), *outputs, "--retention", "0")
    assert done.returncode == 2 and "--retention" in done.stderr
    done = cli("replay", str(source), *outputs)  # default TTL: the delivery waits for its promise
    assert done.returncode == 0 and "3 lines" in done.stderr, done.stderr
    assert "1 rejected {'unknown_promise': 1}" in done.stderr  # only x: its promise never came
    (outcome,) = [orjson.loads(x) for x in Path(out[1]).read_bytes().splitlines()]
    assert outcome["status"] == "kept"
    # event-time order (the default): the promise comes first, whatever the TTL
    done = cli("replay", str(source), *outputs, "--orphan-ttl", "3600", "--quiet")
    assert [orjson.loads(x)["event_id"] for x in Path(out[2]).read_bytes().splitlines()] == ["x"]

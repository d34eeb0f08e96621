"""``promise-tracker serve`` as a real server process, over real HTTP (urllib), on a chdb
store written by a real replay: the check, a promise's state, bad input as a 4xx."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from promise_tracker.streams.records import final_active
from tests.cli import replay_generated
from tests.support import ROOT

DATABASE = "promise_tracker_replay"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> tuple[Path, list[dict], list[dict]]:
    return replay_generated(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(replayed) -> Iterator[str]:
    store, _, _ = replayed
    command = [sys.executable, "-m", "promise_tracker.cli", "serve", "--port", "0",
               "--clickhouse", str(store), "--database", DATABASE]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = process.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("serving on http://"), first + process.stderr.read()  # type: ignore[union-attr]
        yield first.split()[2]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _call(url: str, body: object | None = None, raw: bytes | None = None) -> tuple[int, object]:
    data = raw if raw is not None else None if body is None else orjson.dumps(body)
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def _planned(pid: str, service: str, channel: str, **terms: object) -> dict:
    return {
        "specversion": "1.0",
        "type": "promise.issued",
        "source": service,
        "id": pid,
        "time": "2026-03-06T00:00:00Z",
        "data": {"kind": "max_wait", "channel": channel, "terms": terms or {"max_seconds": 900}},
    }


def _busiest(outcomes: list[dict]) -> tuple[str, str]:
    groups = Counter((o["service"], o["channel"]) for o in outcomes if o["kind"] == "max_wait")
    return groups.most_common(1)[0][0]


def test_check_one_and_a_list_as_the_command_does(server, replayed):
    _, outcomes, _ = replayed
    service, channel = _busiest(outcomes)
    event = _planned("plan-1", service, channel)
    status, one = _call(f"{server}/v1/check", event)
    assert status == 200
    assert isinstance(one, list) and one[0]["promise_id"] == "plan-1"
    assert one[0]["enough_history"] is True and 0 <= one[0]["probability_kept"] <= 1
    status, two = _call(f"{server}/v1/check?confidence=0.9", [event, {**event, "id": "plan-2"}])
    assert status == 200 and [a["promise_id"] for a in two] == ["plan-1", "plan-2"]  # type: ignore[union-attr]
    assert two[0]["probability_kept"] == one[0]["probability_kept"]  # type: ignore[index]


def test_bad_input_is_a_4xx_naming_the_field(server):
    status, body = _call(f"{server}/v1/check", _planned("p", "s", "web", max_seconds="soon"))
    assert status == 422
    [error] = body["detail"]  # type: ignore[index,call-overload]
    assert error["field"] == "data.terms.max_seconds"
    assert error["loc"] == ["body", "data", "terms", "max_seconds"]
    status, body = _call(f"{server}/v1/check", [_planned("ok", "s", "web"), {"type": "x"}])
    assert status == 422 and body["detail"][0]["loc"][:2] == ["body", 1]  # type: ignore[index,call-overload]
    status, body = _call(f"{server}/v1/check", raw=b"{not json")
    assert status == 422 and "body" in orjson.dumps(body).decode()
    status, body = _call(f"{server}/v1/check?confidence=2", _planned("p", "s", "web"))
    assert status == 422 and body["detail"][0]["loc"] == ["query", "confidence"]  # type: ignore[index,call-overload]
    status, body = _call(f"{server}/v1/promises/{'x' * 201}")
    assert status == 422 and body["detail"][0]["loc"] == ["path", "promise_id"]  # type: ignore[index,call-overload]


def test_a_promise_with_its_violations(server, replayed):
    _, outcomes, violations = replayed
    active = final_active(violations)
    broken = next(v for v in active.values())
    status, body = _call(f"{server}/v1/promises/{broken['promise_id']}")
    assert status == 200
    want = next(o for o in outcomes if o["promise_id"] == broken["promise_id"])
    assert body["status"] == want["status"] == "broken"  # type: ignore[index,call-overload]
    assert body["terms"] == want["terms"]  # type: ignore[index,call-overload]
    assert broken["violation_id"] in [v["violation_id"] for v in body["violations"]]  # type: ignore[index,call-overload]
    assert isinstance(body["warnings"], list)  # type: ignore[index,call-overload]
    status, body = _call(f"{server}/v1/promises/no-such-promise")
    assert status == 404 and "promise_id" in body["detail"]  # type: ignore[index,call-overload]


def test_the_openapi_docs(server):
    with urllib.request.urlopen(f"{server}/openapi.json", timeout=30) as answer:
        spec = orjson.loads(answer.read())
    assert {"/v1/check", "/v1/promises/{promise_id}"} <= set(spec["paths"])
    with urllib.request.urlopen(f"{server}/docs", timeout=30) as answer:
        assert answer.status == 200 and b"swagger" in answer.read().lower()


def test_the_sdk_checks_through_the_api(server, replayed, monkeypatch):
    """Emitter.check: issue_promise's arguments, answered by the server; nothing sent."""
    from promise_tracker.emit import CheckFailed, Emitter, InvalidEvent

    _, outcomes, _ = replayed
    service, channel = _busiest(outcomes)
    monkeypatch.setenv("PROMISE_TRACKER_CHECK_URL", server)
    with Emitter(kafka="127.0.0.1:19992") as emitter:  # no broker needed: nothing is sent
        got = emitter.check(
            id="sdk-1", source=service, kind="max_wait", channel=channel,
            terms={"max_seconds": 900}, time="2026-03-06T00:00:00Z",
        )  # fmt: skip
        assert got["promise_id"] == "sdk-1" and got["enough_history"] is True
        _, [direct] = _call(f"{server}/v1/check", _planned("sdk-1", service, channel))  # type: ignore[misc]
        assert got["probability_kept"] == direct["probability_kept"]
        with pytest.raises(InvalidEvent, match="max_seconds"):
            emitter.check(id="x", source="s", kind="max_wait", channel="web", terms={})
        with pytest.raises(CheckFailed, match="cannot be reached"):
            emitter.check(
                id="x", source="s", kind="max_wait", channel="web",
                terms={"max_seconds": 5}, check_url="http://127.0.0.1:9",
            )  # fmt: skip
        assert emitter.sent == 0

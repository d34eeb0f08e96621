"""``promise-tracker serve`` as a real server process, over real HTTP (urllib), on a chdb
store written by a real replay: the check, a promise's state, bad input as a 4xx; the
capabilities a check is judged against, from the request and (``--kafka``) from a real
broker."""

from __future__ import annotations

import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from promise_tracker.streams.records import final_active
from tests.cli import cli, replay_generated
from tests.live import fresh_settings, raw_producer, settings_env
from tests.support import ROOT

DATABASE = "promise_tracker_replay"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> tuple[Path, list[dict], list[dict]]:
    return replay_generated(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(replayed) -> Iterator[str]:
    store, _, _ = replayed
    with _serving(store) as url:
        yield url


@contextmanager
def _serving(store: Path, *more: str, env: dict[str, str] | None = None,
             log: Path | None = None) -> Iterator[str]:  # fmt: skip
    """``promise-tracker serve`` on any free port; its address once it says it serves
    (within 90 s: it never hangs a test); stopped after."""
    command = [sys.executable, "-m", "promise_tracker.cli", "serve", "--port", "0",
               "--clickhouse", str(store), "--database", DATABASE, *more]  # fmt: skip
    errors = log.open("wb") if log is not None else subprocess.PIPE
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 90)
        first = process.stdout.readline() if ready else ""  # type: ignore[union-attr]
        if not first.startswith("serving on http://"):
            process.kill()
            said = log.read_text() if log is not None else process.stderr.read()  # type: ignore[union-attr]
            raise AssertionError(f"serve did not start: {first!r} {said}")
        yield first.split()[2]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log is not None:
            errors.close()  # type: ignore[union-attr]


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


# --- declared capabilities ----------------------------------------------------------------

SHOP = "prestige/shop:selection"
# a deadline on 2026-03-20 that relies on a selection window closing a day earlier
DETAIL = (
    "card says open until 2026-03-20 00:00 UTC; prestige/shop:selection closes the selection "
    "at 2026-03-19 00:00 UTC (24 h earlier)"
)


def _card(pid: str = "card") -> dict:
    event = _planned(pid, "prestige/marketing", "card")
    event["data"] = {"kind": "deadline", "channel": "card", "relies_on": [SHOP],
                     "terms": {"open_until": "2026-03-20T00:00:00Z"}}  # fmt: skip
    return event


def _window(did: str, closes_at: str, time: str = "2026-01-01T00:00:00Z") -> dict:
    return {
        "specversion": "1.0",
        "type": "capability.declared",
        "source": "prestige/shop",
        "id": did,
        "time": time,
        "data": {"kind": "window", "capability": SHOP, "text": "the selection",
                 "window": {"closes_at": closes_at}},
    }  # fmt: skip


def test_capabilities_in_the_body_are_what_its_promises_are_checked_against(server):
    body = [_card(), _window("w1", "2026-03-19T00:00:00Z"), _planned("plain", "s", "web")]
    status, answers = _call(f"{server}/v1/check", body)
    assert status == 200 and [a["promise_id"] for a in answers] == ["card", "plain"]  # type: ignore[union-attr]
    card, plain = answers  # type: ignore[misc]
    (said,) = card["contradictions"]
    assert said == {"capability": SHOP, "since": "2026-03-06T00:00:00Z", "resolved_at": None,
                    "detail": DETAIL}  # fmt: skip
    assert card["capabilities"] == plain["capabilities"] == {"declared": 1}
    assert plain["contradictions"] == []
    # the request's declarations are for that request only
    status, [alone] = _call(f"{server}/v1/check", _card())  # type: ignore[misc]
    assert status == 200 and alone["contradictions"] == []
    assert alone["capabilities"] == {"declared": 0}


def test_a_bad_capability_in_the_list_is_a_422_naming_it(server):
    status, body = _call(f"{server}/v1/check", [_card(), _window("w1", "soon")])
    assert status == 422
    [error] = body["detail"]  # type: ignore[index,call-overload]
    assert error["field"] == "data.window.closes_at"
    assert error["loc"] == ["body", 1, "data", "window", "closes_at"]
    alone = _window("w1", "2026-03-19T00:00:00Z")
    status, body = _call(f"{server}/v1/check", alone)  # capabilities alone: nothing to check
    assert status == 422
    (error,) = body["detail"]  # type: ignore[index,call-overload]
    assert error["field"] == "type" and "no promise.issued event to check" in error["msg"]


def test_the_sdk_sends_capabilities_with_the_promise(server, monkeypatch):
    from promise_tracker.emit import Emitter, InvalidEvent

    monkeypatch.setenv("PROMISE_TRACKER_CHECK_URL", server)
    card = {"id": "card", "source": "prestige/marketing", "kind": "deadline", "channel": "card",
            "terms": {"open_until": "2026-03-20T00:00:00Z"}, "time": "2026-03-06T00:00:00Z",
            "relies_on": [SHOP]}  # fmt: skip
    with Emitter(kafka="127.0.0.1:19992") as emitter:  # no broker needed: nothing is sent
        got = emitter.check(**card, capabilities=[_window("w1", "2026-03-19T00:00:00Z")])
        assert [c["detail"] for c in got["contradictions"]] == [DETAIL]
        assert got["capabilities"] == {"declared": 1}
        assert emitter.check(**card)["contradictions"] == []
        with pytest.raises(InvalidEvent, match="data.window.closes_at"):
            emitter.check(**card, capabilities=[_window("w1", "soon")])
        with pytest.raises(InvalidEvent, match="capability.declared events, not promise"):
            emitter.check(**card, capabilities=[_card("other")])
        assert emitter.sent == 0


def _small_store(root: Path) -> Path:
    """A chdb store of its own (the module's server holds the other one): one promise
    replayed, the tables created."""
    events = root / "one.jsonl"
    events.write_bytes(orjson.dumps(_planned("seed", "s", "web")) + b"\n")
    files = [str(root / f"{n}.jsonl") for n in ("v", "o", "r")]
    done = cli("replay", str(events), "--violations", files[0], "--outcomes", files[1],
               "--rejects", files[2], "--clickhouse", str(root / "chdb"), "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root / "chdb"


def _until_contradicted(url: str, timeout: float = 30) -> dict:
    """The card's answer once the server has read a declaration it contradicts (or after
    ``timeout`` seconds: the caller's assertion then says what it got)."""
    deadline = time.monotonic() + timeout
    while True:
        _, [now] = _call(f"{url}/v1/check", _card())  # type: ignore[misc]
        if now["contradictions"] or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def test_serve_judges_against_what_is_declared_on_the_broker(kafka, tmp_path):
    """serve --kafka follows capabilities.declared: a declaration sent with the SDK while it
    runs contradicts the next check; a request's own declarations go on top, for it only;
    a message that is not a declaration is skipped with a log line."""
    from promise_tracker.emit import Emitter
    from promise_tracker.runtime.topics import ensure_topics

    settings = fresh_settings(kafka, partitions=2)
    ensure_topics(settings)
    junk = raw_producer(kafka)
    junk.produce(settings.capabilities, b"{not json", SHOP.encode())
    assert junk.flush(30) == 0
    log = tmp_path / "serve.log"
    store = _small_store(tmp_path)
    with _serving(store, "--kafka", kafka, env=settings_env(settings), log=log) as url:
        status, [before] = _call(f"{url}/v1/check", _card())  # type: ignore[misc]
        assert status == 200 and before["contradictions"] == []
        assert before["capabilities"] == {"declared": 0}  # the topic was read before serving
        with Emitter(settings) as emitter:  # as the shop's system would declare it
            emitter.declare_capability(
                capability=SHOP, source="prestige/shop", kind="window", id="w1",
                time="2026-01-01T00:00:00Z", text="the selection",
                window={"closes_at": "2026-03-19T00:00:00Z"},
            )  # fmt: skip
        now = _until_contradicted(url)
        assert [c["detail"] for c in now["contradictions"]] == [DETAIL], log.read_text()
        assert now["capabilities"] == {"declared": 1}
        # a later declaration in the request (the window moved past the deadline) resolves it
        fixed = _window("w2", "2026-03-21T00:00:00Z", time="2026-02-01T00:00:00Z")
        _, [what_if] = _call(f"{url}/v1/check", [fixed, _card()])  # type: ignore[misc]
        assert what_if["contradictions"] == [] and what_if["capabilities"] == {"declared": 2}
        _, [again] = _call(f"{url}/v1/check", _card())  # type: ignore[misc]
        assert len(again["contradictions"]) == 1 and again["capabilities"] == {"declared": 1}
    said = log.read_text()
    assert f"{settings.capabilities}[" in said and "skipped" in said, said


def test_front_line_staff_see_the_contradiction_beside_the_breach(tmp_path):
    """GET /v1/promises/{id} on the Prestige story: the card's violation names the
    contradiction warning that predicted it, and that warning carries both sides' words."""
    story = ROOT / "examples" / "prestige-portraits.jsonl"
    v, o, r = (str(tmp_path / f"{n}.jsonl") for n in ("v", "o", "r"))
    store = str(tmp_path / "chdb")
    done = cli("replay", str(story), "--violations", v, "--outcomes", o, "--rejects", r,
               "--clickhouse", store, "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    with _serving(tmp_path / "chdb") as url:
        status, body = _call(f"{url}/v1/promises/prestige-2013-card-8841")
    assert status == 200 and body["status"] == "broken"  # type: ignore[index,call-overload]
    (warning,) = [w for w in body["warnings"] if w["label"].startswith("contradiction:")]  # type: ignore[index,call-overload]
    assert warning["detail"].endswith(
        "closes yearbook selection at 2013-10-31 23:59 -0400 (24 h earlier)"
    )
    assert warning["state"] == "resolved" and warning["outcome"] == "broken"
    (violation,) = body["violations"]  # type: ignore[index,call-overload]
    assert violation["reason"] == "enforced_early"
    assert violation["predicted_by"] == warning["warning_id"]


def test_serve_starts_at_once_before_the_capabilities_topic_exists(kafka, tmp_path):
    """No capabilities.declared yet: the server says so in one line and serves at once,
    then follows the topic from the moment it is made."""
    from promise_tracker.emit import Emitter
    from promise_tracker.runtime.topics import ensure_topics

    settings = fresh_settings(kafka, partitions=1)  # its topics are not made yet
    log = tmp_path / "serve.log"
    store = _small_store(tmp_path)
    started = time.monotonic()
    with _serving(store, "--kafka", kafka, env=settings_env(settings), log=log) as url:
        assert time.monotonic() - started < 20, log.read_text()
        assert "does not exist yet" in log.read_text()
        ensure_topics(settings)
        with Emitter(settings) as emitter:
            emitter.send_event(_window("w1", "2026-03-19T00:00:00Z"))
        now = _until_contradicted(url)
        assert [c["detail"] for c in now["contradictions"]] == [DETAIL], log.read_text()

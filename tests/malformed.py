"""Lines the parser must reject, made by damaging valid events in one of several ways."""

from __future__ import annotations

import random

import orjson

from tests.support import observe, promise, ts

VALID = [
    promise("p", "deadline", {"open_until": ts(24)}, text="t", labels={"team": "a"}),
    promise("p", "max_wait", {"max_seconds": 60}, expires_at=ts(3)),
    promise("p", "max_steps", {"max_steps": 3, "goal": "pose"}),
    promise("p", "deliver_by", {"due_at": ts(24)}),
    promise("p", "channels_available", {"channels": ["phone"], "until": ts(24)}),
    observe("o", "p", "hold_time", ts(1), seconds=5),
    observe("o", "p", "channel_status", ts(1), channel="phone", available=False),
    observe("o", "p", "page_reached", ts(1), page="x"),
]
REQUIRED = [
    ("specversion",),
    ("type",),
    ("source",),
    ("id",),
    ("time",),
    ("data",),
    ("data", "kind"),
]
WRONG = [None, 7, -1.5, True, [], ""]


def _set(event: dict, path: tuple, value) -> None:
    target = event
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


def malformed(rng: random.Random) -> bytes:
    """One line that must be rejected, by one of several kinds of damage."""
    event = orjson.loads(orjson.dumps(rng.choice(VALID)))
    damage = rng.randrange(8)
    if damage == 0:  # truncated JSON
        raw = orjson.dumps(event)
        return raw[: rng.randrange(1, len(raw) - 1)]
    if damage == 1:  # random bytes, never an object
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"{", b"(")
    if damage == 2:
        _set(event, rng.choice(REQUIRED), KeyError)
    elif damage == 3:  # wrong type for a required field (an empty string is never valid either)
        shaped = ("data", "terms") if event["type"] == "promise.issued" else ("data", "value")
        path = rng.choice(REQUIRED + [shaped])
        _set(event, path, rng.choice(WRONG))
    elif damage == 4:  # bad timestamps
        _set(
            event,
            ("time",),
            rng.choice(
                [
                    "2026-01-01T00:00:00",
                    "2026-01-01",
                    "01/11/2013",
                    "2026-01-01T25:00:00Z",
                    "",
                    "now",
                ]
            ),
        )
    elif damage == 5:  # unknown kinds or types
        if rng.random() < 0.5:
            _set(event, ("data", "kind"), rng.choice(["", "teleport", "DEADLINE", "hold"]))
        else:
            _set(event, ("type",), rng.choice(["promise.kept", "com.example.x", ""]))
    elif damage == 6:  # huge strings: a promise id over 200 characters, or an event over 1 MiB
        if rng.random() < 0.5:
            own = ("id",) if event["type"] == "promise.issued" else ("data", "promise_id")
            _set(event, own, "x" * rng.choice([201, 10_001]))
        else:
            _set(event, rng.choice([("id",), ("source",), ("subject",)]), "x" * 1_100_000)
    else:  # deep nesting where a value should be
        depth = rng.choice([10, 1000, 50_000])
        return orjson.dumps(event)[:-1] + b',"data":' + b"[" * depth + b"]" * depth + b"}"
    return orjson.dumps(event)

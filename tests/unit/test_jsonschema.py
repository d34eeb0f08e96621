"""The published JSON Schema files say what the parser says: emitters can trust them."""

from __future__ import annotations

import functools
import json
import random

import jsonschema
import orjson
import pytest

from promise_tracker.schemas import Reject, parse
from promise_tracker.schemas.jsonschema import SCHEMA_DIR
from tests.malformed import malformed
from tests.support import CASES, ROOT

TYPES = ("promise.issued", "delivery.observed")


@functools.cache
def validators() -> dict[str, jsonschema.Draft202012Validator]:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return {
        name: jsonschema.Draft202012Validator(
            json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text()), format_checker=checker
        )
        for name in TYPES
    }


def lines() -> list[bytes]:
    """Event lines a schema applies to: JSON objects of our types (valid or not)."""
    files = sorted((ROOT / "examples").glob("*.jsonl"))
    conformance = CASES / "rules.jsonl"  # test_conformance fails loudly when it is missing
    candidates = [line for path in files for line in path.read_bytes().splitlines()]
    if conformance.exists():
        candidates += conformance.read_bytes().splitlines()
    rng = random.Random(7)
    candidates += [malformed(rng) for _ in range(500)]
    return [line for line in candidates if _applies(line)]


def _applies(line: bytes) -> bool:
    # the size limit is the transport's and the nesting limit the parser's, not the schema's
    if len(line) > 1 << 20 or line.count(b"[") > 100:
        return False
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and event.get("type") in TYPES


def test_the_schemas_are_valid_json_schema():
    for validator in validators().values():
        jsonschema.Draft202012Validator.check_schema(validator.schema)


def test_both_valid_and_invalid_events_are_compared():
    verdicts = {isinstance(parse(line), Reject) for line in lines()}
    assert verdicts == {True, False}


@pytest.mark.parametrize("line", lines(), ids=lambda raw: raw[:40].decode("utf-8", "replace"))
def test_schema_and_parser_agree(line: bytes):
    event = orjson.loads(line)
    schema_ok = validators()[event["type"]].is_valid(event)
    parser_ok = not isinstance(parse(line), Reject)
    assert schema_ok == parser_ok

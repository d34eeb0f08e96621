"""The published JSON Schema files say what the parser says: emitters can trust them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import jsonschema
import orjson
import pytest

from schemas import Reject, parse
from schemas.jsonschema import SCHEMA_DIR
from tests.unit.test_fuzz import malformed

ROOT = Path(__file__).resolve().parents[2]
TYPES = ("promise.issued", "delivery.observed")


def validators() -> dict[str, jsonschema.Draft202012Validator]:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return {
        name: jsonschema.Draft202012Validator(
            json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text()), format_checker=checker
        )
        for name in TYPES
    }


def lines() -> list[bytes]:
    files = sorted((ROOT / "examples").glob("*.jsonl"))
    conformance = ROOT.parent / "shared" / "conformance" / "rules.jsonl"
    out = [line for path in files for line in path.read_bytes().splitlines()]
    if conformance.exists():
        out += conformance.read_bytes().splitlines()
    rng = random.Random(7)
    return out + [malformed(rng) for _ in range(500)]


def test_the_schemas_are_valid_json_schema():
    for validator in validators().values():
        jsonschema.Draft202012Validator.check_schema(validator.schema)


@pytest.mark.parametrize("line", lines(), ids=lambda raw: raw[:40].decode("utf-8", "replace"))
def test_schema_and_parser_agree(line: bytes):
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        pytest.skip("not JSON: no schema applies")
    if not isinstance(event, dict) or event.get("type") not in TYPES:
        pytest.skip("not one of our event types")
    if len(line) > 1 << 20:
        pytest.skip("the size limit is the transport's, not the schema's")
    if line.count(b"[") > 100:
        pytest.skip("nesting depth is the parser's limit, not the schema's")
    schema_ok = validators()[event["type"]].is_valid(event)
    parser_ok = not isinstance(parse(line), Reject)
    assert schema_ok == parser_ok

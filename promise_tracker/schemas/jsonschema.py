"""The published JSON Schema files, generated from the typed models so they cannot drift.

Teams that emit from other languages validate against these files; ``write()`` regenerates
them and a test fails when the committed files differ from what the models say.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import msgspec
import orjson

from promise_tracker.schemas.models import (
    CapabilityDeclared,
    DeliveryObserved,
    PromiseIssued,
    ViolationEvent,
    WarningEvent,
)

SCHEMA_DIR = Path(__file__).parent / "json"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"

_PUBLISHED: dict[str, tuple[type, str]] = {
    "promise.issued.schema.json": (
        PromiseIssued,
        "promise.issued: a promise made to a customer (topic promises.issued, key = id)",
    ),
    "delivery.observed.schema.json": (
        DeliveryObserved,
        "delivery.observed: what operations did (topic deliveries.observed, key = data.promise_id)",
    ),
    "promise.violated.schema.json": (
        ViolationEvent,
        "promise.violated: a broken promise (topic promises.violations, key = violation_id)",
    ),
    "capability.declared.schema.json": (
        CapabilityDeclared,
        "capability.declared: what an operational system will do (topic capabilities.declared, "
        "key = data.capability)",
    ),
    "promise.at_risk.schema.json": (
        WarningEvent,
        "promise.at_risk: a promise about to break (topic promises.warnings, key = warning_id)",
    ),
}

# What a struct's __post_init__ checks, which msgspec cannot say in a schema: added by hand
_CONSTRAINTS: dict[str, dict[str, Any]] = {
    # exactly one of due_at and within_seconds; calendar only with within_seconds
    "DeliverByTerms": {
        "oneOf": [
            {
                "required": ["due_at"],
                "not": {"anyOf": [{"required": ["within_seconds"]}, {"required": ["calendar"]}]},
            },
            {"required": ["within_seconds"], "not": {"required": ["due_at"]}},
        ]
    },
}


def _clean(node: Any) -> Any:
    """Docstring descriptions with their indentation removed, whatever msgspec did with them.

    msgspec 0.23 started cleaning docstrings the way ``inspect.cleandoc`` does; doing it here
    too keeps the files the same under any version, so the drift test fails only when the
    contract changes.
    """
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _clean(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_clean(value) for value in node]
    return node


def render(model: type, title: str) -> bytes:
    """One schema document, deterministic (sorted keys) so that diffs are reviewable."""
    (schema,), components = msgspec.json.schema_components([model], ref_template="#/$defs/{name}")
    schema, components = _clean(schema), _clean(components)
    for name, extra in _CONSTRAINTS.items():
        if name in components:
            components[name] = {**components[name], **extra}
    document: dict[str, Any] = {"$schema": _DRAFT, "title": title, **schema, "$defs": components}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (model, title) in _PUBLISHED.items():
        path = directory / name
        path.write_bytes(render(model, title))
        written.append(path)
    return written


def check(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of the committed files that differ from the models (empty when up to date)."""
    stale = []
    for name, (model, title) in _PUBLISHED.items():
        path = directory / name
        if not path.exists() or path.read_bytes() != render(model, title):
            stale.append(name)
    return stale
